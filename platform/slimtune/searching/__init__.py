"""Search stage: the space API (`space`, no Ray), one trial (`objective`, no Ray), the Ray Tune +
Optuna driver (`driver`), outputs (`report`)."""

__all__ = ["Candidate", "Constraints", "SearchResult", "SearchSpec", "TeacherInfo", "load_space", "run_search"]


def __getattr__(name):
    import importlib

    where = {"Candidate": "space", "Constraints": "space", "TeacherInfo": "space", "load_space": "space",
             "SearchSpec": "driver", "run_search": "driver"}
    if name == "SearchResult":
        from slimtune.results import SearchResult

        return SearchResult
    if name in where:
        return getattr(importlib.import_module(f"slimtune.searching.{where[name]}"), name)
    raise AttributeError(name)
