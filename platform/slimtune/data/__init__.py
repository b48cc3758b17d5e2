"""Data stage: load, validate, split (`load`), tokenize and pad (`tokenize`, imports torch)."""

from slimtune.data.load import DataSpec, TextData, load_data

__all__ = ["DataSpec", "TextData", "load_data"]
