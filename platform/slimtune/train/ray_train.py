"""Ray Train adapter: run `slimtune.train.loop.train` on N workers with DDP and checkpoints.

The loop is unchanged; `RayContext` supplies DDP wrapping (gloo on CPU, nccl on GPU), a
DistributedSampler, summed metrics, and one checkpoint per epoch (current and best weights as
safetensors, optimizer state, JSON progress). A worker group restarted after a failure resumes
from the last checkpoint instead of from step 0.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from pathlib import Path

import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from slimtune import log
from slimtune.ray_session import ensure_ray, forward_progress, progress_relay
from slimtune.storage import resolve as resolve_storage
from slimtune.train.loop import TrainResult, TrainSpec, train, with_lr

_JSON_STATE_KEYS = ("best_score", "best_epoch", "best_metrics", "epoch", "step", "history",
                    "train_seconds", "step_seconds")


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.contiguous() for k, v in state.items()}


class RayContext:
    """The distributed side of the loop, inside a Ray Train worker."""

    def __init__(self):
        context = ray.train.get_context()
        self.rank = context.get_world_rank()
        self.world_size = context.get_world_size()
        self.device = ray.train.torch.get_device()
        # where each rank runs (node ids), so a run can show it was spread over several machines
        node = ray.get_runtime_context().get_node_id()
        self.worker_nodes = [node]
        if self.world_size > 1 and dist.is_initialized():
            self.worker_nodes = [None] * self.world_size
            dist.all_gather_object(self.worker_nodes, node)
        self.resumed_from: list[int] = []  # the step each restart of this run resumed at

    def prepare_model(self, model):
        return ray.train.torch.prepare_model(model)  # moves to the device, wraps in DDP if N > 1

    def unwrap(self, model):
        return model.module if hasattr(model, "module") else model

    def train_loader(self, dataset, batch_size, collate, seed, epoch):
        # random shards, as DistributedSampler makes them: length-grouped batches split by rank
        # learnt worse on the two-worker test of tests/train/test_ray_train.py (once, in session 2:
        # 0.775 against the >= 0.9 it asserts); kept to the single process
        sampler = DistributedSampler(dataset, self.world_size, self.rank, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate)

    def all_reduce_sum(self, tensor):
        if self.world_size > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def restore(self) -> dict | None:
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            folder = Path(folder)
            state = json.loads((folder / "state.json").read_text())
            self.resumed_from = state.pop("resumed_from", []) + [state["step"]]
            state.pop("worker_nodes", None)
            state["model"] = load_file(folder / "model.safetensors")
            best = folder / "best.safetensors"
            state["best_model"] = load_file(best) if best.exists() else None
            # weights_only: optimizer state is tensors and numbers; nothing arbitrary is unpickled
            state.update(torch.load(folder / "optimizer.pt", weights_only=True))
        return state

    def end_epoch(self, make_state, metrics: dict) -> None:
        if self.rank != 0:  # every worker reports (it is a barrier); only rank 0 writes
            ray.train.report(metrics=metrics, checkpoint=None)
            return
        state = make_state()
        with tempfile.TemporaryDirectory() as folder:
            folder = Path(folder)
            save_file(_contiguous(state["model"]), folder / "model.safetensors")
            if state["best_model"] is not None:
                save_file(_contiguous(state["best_model"]), folder / "best.safetensors")
            torch.save({"optimizer": state["optimizer"], "scheduler": state["scheduler"]}, folder / "optimizer.pt")
            (folder / "state.json").write_text(json.dumps({**{k: state[k] for k in _JSON_STATE_KEYS},
                                                          "worker_nodes": self.worker_nodes,
                                                          "resumed_from": self.resumed_from}))
            ray.train.report(metrics=metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


def _own_memory(model: torch.nn.Module) -> torch.nn.Module:
    """Copy weights out of the object store: tensors from `ray.get` may be views of Ray's shared
    memory, and training updates them in place every step."""
    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            tensor.data = tensor.data.clone()
    return model


def _worker_loop(config: dict) -> None:
    payload = ray.get(config["payload"])
    _own_memory(payload["model"])
    if ray.train.get_context().get_world_rank() == 0:
        forward_progress(config["progress"])
    torch.set_num_threads(max(1, int(config["threads"])))
    train(
        payload["model"],
        payload["train"],
        payload["validation"],
        config["spec"],
        num_labels=config["num_labels"],
        pad_token_id=config["pad_token_id"],
        ctx=RayContext(),
        loss_fn=payload["loss_fn"],
    )


def fit_on_ray(model, train_split, val_split, spec: TrainSpec, *, num_labels: int, pad_token_id: int,
               workers: int, use_gpu: bool, storage: Path | str, loss_fn=None, name: str = "finetune",
               max_failures: int = 2, threads: int | None = None,
               cpus_per_worker: float | None = None) -> tuple[torch.nn.Module, TrainResult, float]:
    """Train on `workers` Ray Train workers; return the model with the best epoch's weights, the
    run's record, and the fixed start-up seconds (actor start, imports, process group)."""
    spec = with_lr(spec, model)  # once here, so every worker trains at the same, recorded rate
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from slimtune.train.loop import cross_entropy_loss

    ensure_ray()
    cpus = ray.cluster_resources().get("CPU", 1)
    threads = threads or (1 if use_gpu else max(1, int(cpus // workers)))
    payload = ray.put({"model": model, "train": train_split, "validation": val_split,
                       "loss_fn": loss_fn or cross_entropy_loss})
    run_name = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"  # never resume by accident
    started = time.perf_counter()
    with progress_relay() as progress:
        trainer = TorchTrainer(
            _worker_loop,
            train_loop_config={"payload": payload, "spec": spec, "num_labels": num_labels,
                               "pad_token_id": pad_token_id, "threads": threads, "progress": progress},
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                         resources_per_worker=None if use_gpu else {"CPU": cpus_per_worker or threads}),
            run_config=RunConfig(
                name=run_name,
                storage_path=resolve_storage(str(storage), Path(".")),  # absolute path or URI
                checkpoint_config=CheckpointConfig(num_to_keep=1),
                failure_config=FailureConfig(max_failures=max_failures),
            ),
        )
        result = trainer.fit()
    wall = time.perf_counter() - started
    if result.error:
        raise result.error
    with result.checkpoint.as_directory() as folder:
        folder = Path(folder)
        state = json.loads((folder / "state.json").read_text())
        best = folder / "best.safetensors"
        model.load_state_dict(load_file(best if best.exists() else folder / "model.safetensors"))
    record = TrainResult(
        history=state["history"], best_epoch=state["best_epoch"], best_metrics=state["best_metrics"],
        train_seconds=state["train_seconds"], step_seconds=state["step_seconds"], steps=state["step"],
        worker_nodes=state.get("worker_nodes"), resumed_from=state.get("resumed_from", []), lr=spec.lr,
        stopped_early=bool(spec.patience) and len(state["history"]) < spec.epochs and not spec.max_steps,
    )
    if record.resumed_from:
        log.info(f"training was restarted {len(record.resumed_from)} time(s), each from its last checkpoint "
                 f"(resumed at step {', '.join(map(str, record.resumed_from))})")
    model.eval()
    return model, record, max(0.0, wall - record.train_seconds)
