"""Distill stage: losses and the loop hook (`losses`), the teacher-logit cache (`cache`), the
command (`run`)."""

from slimtune.distill.losses import DistillLoss, DistillModule, LossSpec
from slimtune.distill.run import DistillSpec, run_distill

__all__ = ["DistillLoss", "DistillModule", "DistillSpec", "LossSpec", "run_distill"]
