"""Search stage: the space API (`space`, no Ray), one trial (`objective`, no Ray), the Ray Tune +
Optuna driver (`driver`), outputs (`report`)."""

__all__ = ["Candidate", "Constraints", "SearchSpec", "load_space", "run_search"]


def __getattr__(name):
    import importlib

    where = {"Candidate": "space", "Constraints": "space", "load_space": "space", "SearchSpec": "driver",
             "run_search": "driver"}
    if name in where:
        return getattr(importlib.import_module(f"slimtune.search.{where[name]}"), name)
    raise AttributeError(name)
