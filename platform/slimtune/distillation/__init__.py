"""Distill stage: losses and the loop hook (`losses`), the teacher-logit cache (`cache`), the
command (`run`). Names are imported on first use (see slimtune.data): the losses need only torch."""

_WHERE = {"DistillLoss": "losses", "DistillModule": "losses", "LossSpec": "losses",
          "DistillSpec": "run", "run_distill": "run"}
__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"slimtune.distillation.{_WHERE[name]}"), name)
    raise AttributeError(name)
