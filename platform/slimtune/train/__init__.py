"""Train stage: the loop (`loop`, no Ray), the Ray Train adapter (`ray_train`), `finetune`."""

from slimtune.train.finetune import FinetuneSpec, run_finetune
from slimtune.train.loop import LocalContext, TrainResult, TrainSpec, evaluate, train

__all__ = ["FinetuneSpec", "LocalContext", "TrainResult", "TrainSpec", "evaluate", "run_finetune", "train"]
