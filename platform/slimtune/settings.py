"""One settings object per stage, built the same way from CLI flags, a job file's section and the
Python API's keyword arguments: flat names (`epochs=`, `text_column=`, `temperature=`) go to the
stage's spec or to the nested spec that owns them (DataSpec, TrainSpec, LossSpec); `data=` is
the data source; `seed=` seeds the data split and training alike. Every value is type-checked
here and range-checked by the spec's own `__post_init__`, once, before any work starts.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import re
import types
import typing

from slimtune.errors import SlimtuneError


def _unwrap(annotation):
    """`X | None` -> X."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [o for o in typing.get_args(annotation) if o is not type(None)]
        return options[0] if len(options) == 1 else annotation
    return annotation


def _nested(cls) -> dict[str, type]:
    """Fields of `cls` that are themselves settings (data, train, loss), by field name."""
    hints = typing.get_type_hints(cls)
    return {f.name: _unwrap(hints[f.name]) for f in dataclasses.fields(cls)
            if dataclasses.is_dataclass(_unwrap(hints[f.name])) and f.name in ("data", "train", "loss")}


def flat_keys(cls, owned: tuple[str, ...] = ()) -> list[str]:
    """Every flat key `build_spec(cls, ...)` accepts (minus `owned`, which a job sets itself)."""
    nested = _nested(cls)
    keys = {f.name for f in dataclasses.fields(cls) if f.name not in nested or f.name == "data"}
    for name, sub in nested.items():
        keys |= {f.name for f in dataclasses.fields(sub) if not (name == "data" and f.name == "source")}
    return sorted(keys - set(owned))


_EXPONENT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def check_type(value, annotation, path: str):
    """`value` as `annotation` wants it (YAML lists become tuples, ints become floats), else one line."""
    origin = typing.get_origin(annotation)
    if annotation is typing.Any or annotation is object:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return check_type(value, option, path)
            except SlimtuneError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is tuple:
        if isinstance(value, str) and typing.get_args(annotation)[0] is str and not path.startswith("job"):
            value = value.split(",")  # objectives="accuracy,latency_ms", as on the command line
        if not isinstance(value, (list, tuple)):
            raise SlimtuneError(f"{path} must be a list, got {value!r}")
        item = typing.get_args(annotation)[0]
        return tuple(check_type(v, item, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is collections.abc.Callable or annotation is collections.abc.Callable:
        if not callable(value):
            raise SlimtuneError(f"{path} must be a function, got {value!r}")
        return value
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        return build_section(annotation, value, path)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
        return float(value)  # YAML 1.1 (PyYAML) reads `lr: 1e-4` as a string: it wants `1.0e-4`
    if (annotation is bool and not isinstance(value, bool)) or (annotation is int and isinstance(value, bool)) \
            or not isinstance(value, annotation):
        raise SlimtuneError(f"{path} must be {getattr(annotation, '__name__', annotation)}, got {value!r}")
    return value


def build_section(cls, raw, path: str = ""):
    """A plain settings dataclass from a mapping whose keys are its own field names."""
    if not isinstance(raw, dict):
        raise SlimtuneError(f"{path or 'the file'} must be a mapping of keys, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in known:
            where = f"{path}.{key}" if path else str(key)
            raise SlimtuneError(f"unknown key '{where}'; known keys here: {', '.join(sorted(known))}")
    return cls(**{k: check_type(v, hints[k], f"{path}.{k}" if path else k) for k, v in raw.items()})


def build_spec(cls, values: dict, where: str = "", owned: tuple[str, ...] = ()):
    """A stage's spec from flat keys. `where` prefixes messages (a job section's name, or '' for
    flags and keyword arguments, named as `--flag`); keys in `owned` may be given only by the
    caller itself (a job sets the model, data and out of each stage)."""
    nested = _nested(cls)
    hints = typing.get_type_hints(cls)
    top = {f.name for f in dataclasses.fields(cls)}
    parts: dict[str, dict] = {name: {} for name in nested}
    direct = {}

    def name(key: str) -> str:
        return f"{where}.{key}" if where else f"--{key.replace('_', '-')}"

    for key, value in values.items():
        if key == "data" and "data" in nested:
            if isinstance(value, nested["data"]):
                direct["data"] = value
            else:
                parts["data"]["source"] = check_type(value, str, name(key))
            continue
        if key == "seed":  # one seed: the data's splits and the training run
            for part, sub in nested.items():
                if "seed" in {f.name for f in dataclasses.fields(sub)}:
                    parts[part]["seed"] = check_type(value, int, name(key))
            if "seed" in top:
                direct["seed"] = check_type(value, int, name(key))
            continue
        if key in top and key not in nested:
            direct[key] = check_type(value, hints[key], name(key))
            continue
        for part, sub in nested.items():
            sub_hints = typing.get_type_hints(sub)
            if key in sub_hints and not (part == "data" and key == "source"):
                parts[part][key] = check_type(value, sub_hints[key], name(key))
                break
        else:
            known = ", ".join(flat_keys(cls, owned))
            raise SlimtuneError(f"unknown {'key ' + repr(name(key)) if where else 'setting ' + key!s}; known: {known}")
    for part, sub in nested.items():
        base = direct.get(part)
        if isinstance(base, sub):
            if parts[part]:
                direct[part] = dataclasses.replace(base, **parts[part])
        elif parts[part] or (part == "data" and _unwrap(hints[part]) is hints[part]):
            if part == "data" and "source" not in parts[part]:
                raise SlimtuneError(f"{name('data')}: give a dataset (e.g. builtin:tweets or a CSV file)")
            direct[part] = sub(**parts[part])
    missing = [f.name for f in dataclasses.fields(cls)
               if f.name not in direct and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise SlimtuneError(f"{name(missing[0])} is required")
    return cls(**direct)
