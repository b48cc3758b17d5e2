"""Models stage: built-in names, resolving and loading, saving with labels; `surgery` (imports
transformers) removes heads, FFN neurons and layers."""

from slimtune.models.builtin import BUILTIN_MODELS, builtin_model_path
from slimtune.models.load import (
    load_classifier,
    load_config,
    load_tokenizer,
    num_parameters,
    read_model_info,
    resolve_model,
    save_model,
    size_mb,
)

__all__ = [
    "BUILTIN_MODELS",
    "builtin_model_path",
    "load_classifier",
    "load_config",
    "load_tokenizer",
    "num_parameters",
    "read_model_info",
    "resolve_model",
    "save_model",
    "size_mb",
]
