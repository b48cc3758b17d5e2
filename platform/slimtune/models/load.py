"""Resolve model names, load tokenizer and classifier, save them with their labels.

Names: `builtin:minilm-l6`, `builtin:mpnet-base`, a local HF folder (or a slimtune output folder
holding `model/`), or a hub id (needs internet). Weights load from safetensors only and
`trust_remote_code` is never set: a model folder cannot run code or unpickle on our side.
"""

from __future__ import annotations

import json
from pathlib import Path

from slimtune import log
from slimtune.errors import SlimtuneError
from slimtune.hub import hub_reachable, offline_and_not_cached
from slimtune.models.builtin import builtin_model_path

SLIMTUNE_FILE = "slimtune.json"  # what transformers' config cannot hold: provenance, data split


def resolve_model(name: str, flag: str = "--model") -> str:
    """A local folder path, or the name itself when it can only be a hub id. Cheap: no weights read."""
    if name.startswith("builtin:"):
        return str(builtin_model_path(name.removeprefix("builtin:")))
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists() and (path / "model" / "config.json").exists():
            path = path / "model"  # the output folder of `slimtune finetune` / `prune` / `distill`
        if not (path / "config.json").exists():
            raise SlimtuneError(
                f"{flag}: {name} has no config.json; give a Hugging Face model folder, "
                "a slimtune output folder, builtin:minilm-l6 or builtin:mpnet-base"
            )
        return str(path)
    if path.exists():
        raise SlimtuneError(f"{flag}: {name} is a file; give a model folder")
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise SlimtuneError(
            f"{flag}: folder {name} does not exist; give a model folder, builtin:minilm-l6, "
            "builtin:mpnet-base or a hub id"
        )
    return name  # a hub id such as bert-base-uncased or org/name


def _quiet_transformers():
    import transformers

    import slimtune.models.bag  # noqa: F401  registers the zero-layer student with the Auto classes

    # "Some weights were newly initialised" is expected for a new classifier head; we say it once
    # ourselves instead of printing transformers' multi-line warning.
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load_config(resolved: str, flag: str = "--model"):
    from transformers import AutoConfig

    if not Path(resolved).is_dir() and (not hub_reachable() or offline_and_not_cached(resolved)):
        # said before transformers' seconds of imports
        raise SlimtuneError(
            f"{flag}: '{resolved}' is not a built-in name (builtin:minilm-l6, builtin:mpnet-base) "
            "nor a local model folder, and the Hugging Face hub is not reachable from here (nor is it in its cache)"
        )
    _quiet_transformers()
    from slimtune.models.families import family_of

    try:
        config = AutoConfig.from_pretrained(resolved, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise SlimtuneError(
            f"{flag}: cannot load '{resolved}': not a built-in name (builtin:minilm-l6, "
            f"builtin:mpnet-base), not a local model folder, and not reachable on the hub ({first})"
        ) from None
    try:
        family_of(config)  # an unknown family fails here, before any weight is read
    except SlimtuneError as exc:
        raise SlimtuneError(f"{flag}: {resolved}: {exc}") from None
    return config


def load_tokenizer(resolved: str, flag: str = "--model"):
    from transformers import AutoTokenizer

    _quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(resolved, use_fast=True, trust_remote_code=False)
    if not tokenizer.is_fast:
        raise SlimtuneError(f"{flag}: {resolved} has no fast tokenizer (tokenizer.json); add one")
    return tokenizer


def _load_shaped(resolved: str, config, shape: dict, label_names, attn_implementation):
    """A pruned model whose per-layer sizes only `slimtune.json` knows: rebuild, then load."""
    from safetensors.torch import load_file

    from slimtune.models.surgery import rebuild

    if list(config.id2label.values()) != list(label_names):
        raise SlimtuneError(
            f"--model: {resolved} is a pruned model for labels {list(config.id2label.values())}, "
            f"not {list(label_names)}; prune a model fine-tuned on this data"
        )
    model = rebuild(config, shape, attn_implementation)
    model.load_state_dict(load_file(Path(resolved) / "model.safetensors"), strict=True)
    return model


def load_classifier(resolved: str, label_names: tuple[str, ...], attn_implementation: str | None = None):
    """A sequence classifier with `len(label_names)` outputs; a new head if the labels differ.

    `attn_implementation="eager"` is needed to read attention maps (attention distillation)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    _quiet_transformers()
    config = load_config(resolved)
    shape = read_model_info(resolved).get("shape") if Path(resolved).is_dir() else None
    if shape:
        return _load_shaped(resolved, config, shape, label_names, attn_implementation)
    same_labels = list(getattr(config, "id2label", {}).values()) == list(label_names)
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = AutoModelForSequenceClassification.from_pretrained(
        resolved,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
        ignore_mismatched_sizes=True,
        use_safetensors=True,
        trust_remote_code=False,
        dtype=torch.float32,
        **extra,
    )
    if not same_labels:
        log.info(f"model {resolved}: new classifier head for {len(label_names)} labels")
    return model


def num_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def size_mb(model) -> float:
    """Size of the weights in memory (fp32 unless cast), in MB (10^6 bytes)."""
    return sum(p.numel() * p.element_size() for p in model.parameters()) / 1e6


def save_model(model, tokenizer, folder: Path, info: dict) -> Path:
    """Write weights (safetensors), config with labels, tokenizer files and `slimtune.json`
    (with the per-layer shape when pruning made layers differ from the config)."""
    from slimtune.models.surgery import model_shape

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    info = {**info, "shape": model_shape(model)}
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    (folder / SLIMTUNE_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return folder


def provenance(source_model: str, data, max_length: int, **extra) -> dict:
    """What `slimtune.json` records about where a saved model came from."""
    from slimtune.version import __version__

    return {"slimtune_version": __version__, "source_model": source_model, "label_names": list(data.label_names),
            "max_length": max_length, "truncation": data.truncation or "head", "data_fingerprint": data.fingerprint, **extra}


def read_model_info(folder: str | Path) -> dict:
    path = Path(folder) / SLIMTUNE_FILE
    return json.loads(path.read_text()) if path.exists() else {}
