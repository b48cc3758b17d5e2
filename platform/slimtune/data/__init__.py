"""Data stage: load, validate, split (`load`, needs pandas), tokenize and pad (`tokenize`, torch).

Names are imported on first use, so that `slimtune.data.tokenize` (used by the training loop)
works where pandas is not installed, e.g. on a GPU box that runs the loop without Ray.
"""

__all__ = ["DataSpec", "TextData", "as_data_spec", "load_data", "subsample_train"]


def __getattr__(name):
    if name in __all__:
        from slimtune.data import load

        return getattr(load, name)
    raise AttributeError(name)
