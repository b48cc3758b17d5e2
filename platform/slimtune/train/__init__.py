"""Train stage: the loop (`loop`, no Ray), the Ray Train adapter (`ray_train`), `finetune`.

Names are imported on first use, so that `slimtune.train.loop` needs only torch (see data/).
"""

_WHERE = {
    "FinetuneSpec": "finetune", "run_finetune": "finetune",
    "LocalContext": "loop", "TrainResult": "loop", "TrainSpec": "loop", "evaluate": "loop", "train": "loop",
}
__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"slimtune.train.{_WHERE[name]}"), name)
    raise AttributeError(name)
