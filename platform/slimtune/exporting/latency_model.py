"""A latency model of the target runtime: ONNX Runtime at fixed threads, batch and sequence length,
fp32 and dynamic int8, built from timings of measured layer shapes.

A model's latency is a fixed part (embeddings, the head, the runtime's own overhead) plus one
term per encoder layer, and a layer's term is close to linear in the heads and the FFN neurons it
keeps (each head adds its q/k/v/o columns and its score matrix; each neuron a row and a column).
So `profile` times models of 1 and of 3 same-shaped layers at a grid of (heads, neurons) shapes in
turns in one process: the difference gives the layer term at each shape, the rest the fixed part,
and least squares gives `c0 + per_head * heads + per_neuron * neurons`. The prediction is the same
on every run and needs no export (a search's measured latency moves with the machine's load); it
never replaces a measurement: `bench/latency_model.py` prints its error against measured latency
on random shapes. Hidden width and sequence length are fixed by the profile: profile again for
another width, length, thread count or batch.
"""

from __future__ import annotations

import copy
import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from slimtune import log
from slimtune.errors import SlimtuneError

PRECISIONS = ("fp32", "int8")
TERMS = ("fixed", "c0", "per_head", "per_neuron")


@dataclass
class LatencyModel:
    """Fitted terms (ms) per precision, and what the profile was measured at."""

    family: str
    hidden_size: int
    num_heads: int
    ffn: int
    seq: int
    batch: int
    threads: int
    terms: dict = field(default_factory=dict)
    """precision -> {"fixed": ms, "c0": ms per layer, "per_head": ms, "per_neuron": ms}"""
    points: list = field(default_factory=list)
    """The measured shapes: heads, ffn, per-layer ms and the fit's error at each, per precision."""

    def _terms(self, precision: str) -> dict:
        if precision not in self.terms:
            raise SlimtuneError(f"latency model: no {precision} terms (it has {', '.join(self.terms) or 'none'}); "
                                "profile again with `slimtune bench --profile`")
        return self.terms[precision]

    def layer_ms(self, heads: int, ffn: int, precision: str = "fp32") -> float:
        t = self._terms(precision)
        return t["c0"] + t["per_head"] * heads + t["per_neuron"] * ffn

    def predict(self, shape: list[tuple[int, int]], precision: str = "fp32") -> float:
        """Latency (ms) of a model whose layers keep (heads, ffn) each, at the profile's settings."""
        return self._terms(precision)["fixed"] + sum(self.layer_ms(h, f, precision) for h, f in shape)

    def check(self, where: str = "--latency-model", **wanted) -> None:
        """One line naming the first setting the profile was not measured at (family, hidden_size,
        num_heads, seq, batch, threads), or a precision it has no terms for."""
        for name, value in wanted.items():
            if name == "precision":
                self._terms(value)
            elif value is not None and getattr(self, name) != value:
                raise SlimtuneError(f"{where}: profiled at {name} {getattr(self, name)}, this run needs {value}; "
                                    "profile again at it (slimtune bench --profile)")

    def predict_model(self, model, precision: str = "fp32") -> float:
        from slimtune.models.surgery import model_layer_shape

        if model.config.hidden_size != self.hidden_size:
            raise SlimtuneError(f"latency model: profiled at hidden size {self.hidden_size}, this model has "
                                f"{model.config.hidden_size}; run `slimtune bench --profile` on a model of that width")
        return self.predict(model_layer_shape(model), precision)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "LatencyModel":
        try:
            model = cls(**json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise SlimtuneError(f"latency model: cannot read {path} ({exc}); make one with "
                                "`slimtune bench --profile --model DIR --out FILE.json`") from None
        for precision, terms in model.terms.items():
            missing = [k for k in TERMS if not isinstance(terms.get(k) if isinstance(terms, dict) else None, (int, float))]
            if missing:
                raise SlimtuneError(f"latency model: {path} has no {precision} term {missing[0]!r}; profile again "
                                    "with `slimtune bench --profile --model DIR --out FILE.json`")
        return model


def _fit_nonnegative(design: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least squares on relative errors, every term kept at zero or more.

    Relative: a speed-up is a ratio, so a 0.1 ms miss on a 0.5 ms layer matters as much as 1 ms on a
    5 ms one; fitted on absolute errors the large shapes set the line and the thin ones fell below
    it, so a heavily cut model was predicted faster than it ran (`python bench/latency_model.py`
    prints the fit's error on random shapes). Non-negative: timing noise can make a term
    slightly negative, and a model that predicts a cut slower than what it was cut from, or a layer
    cheaper than its parts, would mislead the gates and the search."""
    weight = 1.0 / np.maximum(target, 1e-6)
    design, target = design * weight[:, None], target * weight
    free = [0, 1, 2]
    while True:
        coef = np.zeros(3)
        coef[free] = np.linalg.lstsq(design[:, free], target, rcond=None)[0]
        negative = [i for i in free if coef[i] < 0]
        if not negative:
            return coef
        free.remove(min(negative, key=lambda i: coef[i]))


def _shaped(model, layers: int, heads: int, ffn: int):
    from slimtune.models.surgery import encoder_layers, keep_layers, num_heads, prune_ffn, prune_heads

    copy_ = copy.deepcopy(model)
    keep_layers(copy_, list(range(layers)))
    for i, layer in enumerate(encoder_layers(copy_)):
        if heads < num_heads(layer, copy_):
            prune_heads(copy_, i, list(range(heads)))
        prune_ffn(copy_, i, list(range(ffn)))
    return copy_


def export_both(model, folder: Path, name: str) -> dict[str, Path]:
    """fp32 and dynamic int8 ONNX files of `model`, as the bundles are made."""
    from slimtune.exporting.onnx_export import export_onnx
    from slimtune.exporting.quantize import quantize_dynamic_int8

    fp32 = export_onnx(model, folder / f"{name}.onnx")
    return {"fp32": fp32, "int8": quantize_dynamic_int8(fp32, folder / f"{name}.int8.onnx")}


def profile(model, seq: int = 128, threads: int = 1, batch: int = 1, rounds: int = 5) -> LatencyModel:
    """Time 1- and 3-layer models (2 for a 2-layer model) at a 3 x 3 grid of (heads, neurons) and
    fit the terms."""
    from slimtune.exporting.benchmark import interleaved_latency
    from slimtune.models.surgery import encoder_layers, ffn_width, num_heads

    if batch != 1:
        raise SlimtuneError("--batch: the latency model is profiled at batch 1, as latency is measured")
    layers = encoder_layers(model)
    if len(layers) < 2:
        raise SlimtuneError(f"--model: profiling needs a model of at least 2 layers, this one has {len(layers)}")
    many = min(3, len(layers))
    heads, ffn = num_heads(layers[0], model), ffn_width(layers[0], model)
    grid = [(h, f) for h in sorted({1, max(1, heads // 2), heads}) for f in sorted({max(1, ffn // 8), ffn // 2, ffn})]
    result = LatencyModel(family=model.config.model_type, hidden_size=model.config.hidden_size, num_heads=heads,
                          ffn=ffn, seq=seq, batch=batch, threads=threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="slimtune-profile-") as tmp:
        for n, (h, f) in enumerate(grid, start=1):
            files = {}
            for count in (1, many):
                for precision, path in export_both(_shaped(model, count, h, f), Path(tmp), f"L{count}").items():
                    files[f"{count}|{precision}"] = path
            ms = interleaved_latency(files, seq=seq, threads=threads, rounds=rounds, per_round=10)
            row = {"heads": h, "ffn": f}
            for precision in PRECISIONS:
                one, more = ms[f"1|{precision}"], ms[f"{many}|{precision}"]
                layer = (more - one) / (many - 1)
                row[precision] = {"layer_ms": layer, "fixed_ms": one - layer}
            rows.append(row)
            log.info(f"profile {n}/{len(grid)}: {h} heads, {f} neurons: a layer {row['fp32']['layer_ms']:.3f} ms fp32, "
                     f"{row['int8']['layer_ms']:.3f} ms int8")
    for precision in PRECISIONS:
        design = np.array([[1.0, r["heads"], r["ffn"]] for r in rows])
        target = np.array([r[precision]["layer_ms"] for r in rows])
        c0, per_head, per_neuron = _fit_nonnegative(design, target)
        fixed = float(np.median([r[precision]["fixed_ms"] for r in rows]))
        result.terms[precision] = {"fixed": fixed, "c0": float(c0), "per_head": float(per_head),
                                   "per_neuron": float(per_neuron)}
        for r, t in zip(rows, design @ np.array([c0, per_head, per_neuron])):
            r[precision]["fit_ms"] = float(t)
    result.points = rows
    return result
