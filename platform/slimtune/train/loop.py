"""The training loop: a plain function, no Ray import.

The same `train()` runs in a unit test, on one GPU, and inside each Ray Train worker. What
differs between those places (DDP wrapping, data sharding, summing metrics across workers,
checkpoints) sits behind a small `Context`; `LocalContext` is the single-process one and
`slimtune.train.ray_train` supplies the distributed one.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from slimtune import log
from slimtune.data.tokenize import EncodedSplit, PadCollator
from slimtune.errors import SlimtuneError
from slimtune.train.metrics import metrics_from_confusion


@dataclass(frozen=True)
class TrainSpec:
    """How to train. Batch sizes are global: with N workers each takes batch_size / N."""

    epochs: int = 3
    """Passes over the training split; with `patience`, the most it may take."""
    patience: int | None = None
    """Stop once validation has not improved for this many epochs (`improved`: a tie in the metric
    counts when the validation loss fell; the best epoch's weights are kept either way); None runs
    every epoch. The learning-rate schedule spans `epochs`."""
    batch_size: int = 32
    """Examples per optimizer step, over all workers."""
    lr: float | None = None
    """Peak AdamW learning rate (after warm-up, then linear decay to 0); None: `auto_lr` of the model."""
    weight_decay: float = 0.01
    """AdamW decoupled weight decay; not applied to biases and LayerNorm weights."""
    warmup_ratio: float = 0.1
    """Share of all steps spent warming the learning rate up from 0."""
    max_grad_norm: float = 1.0
    """Gradient clipping threshold (global L2 norm)."""
    eval_batch_size: int = 64
    """Examples per evaluation forward pass."""
    seed: int = 42
    """Seed of shuffling and of any freshly initialised weights."""
    bf16: bool = True
    """bf16 autocast on CUDA, and on a CPU with AMX (see `autocast`); fp32 elsewhere."""
    compile: bool = False
    """torch.compile the model (pays off on a GPU with fixed shapes)."""
    select_metric: str = "accuracy"
    """Validation metric that picks the best epoch, whose weights are kept; "last" keeps the final
    epoch (a model whose shape is being learnt: an earlier epoch is a bigger model)."""
    log_every: int = 10
    """Steps between progress lines."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (benchmarks and smoke tests)."""

    def __post_init__(self):
        if self.patience is not None and self.patience < 1:
            raise SlimtuneError(f"--patience: epochs without improvement before stopping, at least 1, got {self.patience}")
        for name in ("epochs", "batch_size", "eval_batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise SlimtuneError(f"--{name.replace('_', '-')}: must be at least 1, got {getattr(self, name)}")
        if self.lr is not None and not 0 < self.lr < 1:
            raise SlimtuneError(f"--lr: must be between 0 and 1, got {self.lr}")
        if not 0 <= self.warmup_ratio < 1:
            raise SlimtuneError(f"warmup_ratio: must be in [0, 1), got {self.warmup_ratio}")
        if self.select_metric not in ("accuracy", "f1_macro", "last"):
            raise SlimtuneError(f"select_metric: use accuracy, f1_macro or last, not {self.select_metric}")


@dataclass
class TrainResult:
    """What a run produced besides the trained model (which holds the best epoch's weights)."""

    history: list[dict] = field(default_factory=list)
    """One row per epoch: train_loss, val_accuracy, val_f1_macro, val_loss, seconds, samples_per_s."""
    best_epoch: int = 0
    best_metrics: dict = field(default_factory=dict)
    train_seconds: float = 0.0
    step_seconds: list[float] = field(default_factory=list)
    """Mean seconds per step of each progress window, for steady-state timing (first is warm-up)."""
    steps: int = 0
    worker_nodes: list[str] | None = None
    """Ray node id of each rank (Ray Train runs only)."""
    resumed_from: list[int] = field(default_factory=list)
    """The step each restart after a failure resumed at (Ray Train runs only)."""
    stopped_early: bool = False
    """True when `patience` ended training before `epochs`."""
    lr: float | None = None
    """The peak learning rate used (see `with_lr`)."""


LossFn = Callable[[torch.nn.Module, dict], torch.Tensor]


def cross_entropy_loss(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return F.cross_entropy(logits.float(), batch["labels"])


class LocalContext:
    """Single process: no wrapping, no sharding, sums are identities, no checkpoints."""

    rank = 0
    world_size = 1

    def __init__(self, device: torch.device | str | None = None):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def prepare_model(self, model):
        return model.to(self.device)

    def unwrap(self, model):
        return model

    def train_loader(self, dataset, batch_size, collate, seed, epoch):
        return DataLoader(dataset, batch_sampler=length_grouped_batches(dataset, batch_size, seed, epoch),
                          collate_fn=collate)

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def restore(self) -> dict | None:
        return None

    def end_epoch(self, make_state: Callable[[], dict], metrics: dict) -> None:
        pass


def length_grouped_batches(dataset, batch_size: int, seed: int, epoch: int, rank: int = 0,
                           world_size: int = 1, group: int = 50) -> list[list[int]]:
    """This rank's batches for one epoch: shuffled, then sorted by length within groups of
    `group` global batches, cut into batches, and the batches shuffled again. Each batch is padded
    to its own longest text, so similar lengths waste little: on Reuters (mean 82 of at most 128
    tokens) random batches nearly always pad to 128. Every rank gets the same number of batches
    (DDP steps in lockstep); a last global batch too small to split is dropped. Used in a single
    process; Ray Train keeps DistributedSampler's random shards (see ray_train.RayContext)."""
    generator = torch.Generator().manual_seed(seed + epoch)
    lengths = [len(ids) for ids in dataset.input_ids]
    order = torch.randperm(len(lengths), generator=generator).tolist()
    step = batch_size * world_size
    chunks = []
    for start in range(0, len(order), step * group):
        sorted_group = sorted(order[start : start + step * group], key=lambda i: -lengths[i])
        chunks += [sorted_group[s : s + step] for s in range(0, len(sorted_group), step)]
    chunks = [chunks[i] for i in torch.randperm(len(chunks), generator=generator).tolist()]
    batches = []
    for chunk in chunks:
        if len(chunk) < world_size:
            continue
        share = len(chunk) // world_size  # batch_size for every chunk but the last
        batches.append(chunk[rank * share : (rank + 1) * share])
    return batches


def auto_lr(hidden_size: int) -> float:
    """Default peak learning rate by width. Small encoders want larger steps (MiniLM-L6 on the
    tweets, 63 steps: README, Measured here, the learning-rate row); BERT-base-size models (768)
    keep the usual 5e-5."""
    if hidden_size <= 384:
        return 2e-4
    if hidden_size <= 512:
        return 1e-4
    return 5e-5


def with_lr(spec: TrainSpec, model) -> TrainSpec:
    """The one place the learning rate is worked out: `spec.lr`, else `auto_lr` of the model's
    width. Every training entry point calls it, and the result records the rate it used."""
    if spec.lr is not None:
        return spec
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "model_type", None):
        from slimtune.models.families import family_lr

        own = family_lr(config)  # a family whose rate does not follow its width (the zero-layer student)
        if own is not None:
            log.info(f"learning rate {own:g} (chosen for a {config.model_type} model; set --lr to change)")
            return replace(spec, lr=own)
    hidden = getattr(getattr(model, "config", None), "hidden_size", 768)
    log.info(f"learning rate {auto_lr(hidden):g} (chosen for hidden size {hidden}; set --lr to change)")
    return replace(spec, lr=auto_lr(hidden))


def _optimizer(model, spec: TrainSpec):
    # a model may ask for its own groups (learned gates: a far larger rate, no decay)
    own = model.optimizer_groups(spec.lr) if hasattr(model, "optimizer_groups") else []
    taken = {id(p) for group in own for p in group["params"]}
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad and id(param) not in taken:
            (no_decay if param.ndim < 2 else decay).append(param)
    groups = [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}] + own
    on_cuda = next(model.parameters()).is_cuda
    return torch.optim.AdamW(groups, lr=spec.lr, fused=on_cuda)  # one kernel per step on a GPU


def _linear_warmup_decay(optimizer, warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    # a group may keep its rate (learned gates: decayed to zero they would freeze short of the target)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, [(lambda step: 1.0) if group.get("constant_lr") else factor for group in optimizer.param_groups])


def _to(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


CPU_BF16_ENV = "SLIMTUNE_CPU_BF16"
"""Set to 0 to keep a CPU with AMX in fp32 (the test suite does: its fp32 references are tight)."""


@functools.cache
def cpu_has_amx() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (Intel AMX, Xeon from Sapphire Rapids on)."""
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def bf16_on(device: torch.device | str, bf16: bool = True) -> bool:
    """Whether `autocast` runs bf16 on `device`."""
    device = torch.device(device)
    if device.type == "cpu":
        return bf16 and os.environ.get(CPU_BF16_ENV, "1") != "0" and cpu_has_amx()
    return bf16 and device.type == "cuda"


def autocast(device: torch.device | str, bf16: bool = True):
    """bf16 autocast where the hardware multiplies bf16: a GPU, or a CPU with AMX, where a BERT-base
    size model trains and scores several times as fast as in fp32 (`python bench/cpu_bf16.py`).
    Weights, optimizer state and losses stay fp32. Other CPUs stay in fp32: bf16 there is
    emulated, and not measured here."""
    if bf16_on(device, bf16):
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def evaluate(model, split: EncodedSplit, num_labels: int, pad_token_id: int, *, batch_size: int = 64,
             ctx=None, spec: TrainSpec | None = None) -> dict:
    """Accuracy and macro-F1 over `split`; with several workers each scores a shard, then the
    confusion matrices are summed, so every worker returns the metrics of the whole split."""
    ctx = ctx or LocalContext(next(model.parameters()).device)  # alone: score where the model is
    spec = spec or TrainSpec()
    was_training = model.training
    model.eval()
    # Length-sorted batches waste little on padding; order does not matter for a confusion matrix.
    order = sorted(range(ctx.rank, len(split), ctx.world_size), key=lambda i: len(split.input_ids[i]))
    collate = PadCollator(pad_token_id)
    confusion = torch.zeros(num_labels, num_labels, dtype=torch.long, device=ctx.device)
    loss = torch.zeros((), dtype=torch.float64, device=ctx.device)
    for start in range(0, len(order), batch_size):
        batch = _to(collate([split[i] for i in order[start : start + batch_size]]), ctx.device)
        with autocast(ctx.device, spec.bf16):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        flat = batch["labels"] * num_labels + logits.argmax(-1)
        confusion += torch.bincount(flat, minlength=num_labels * num_labels).view(num_labels, num_labels)
        loss += F.cross_entropy(logits.float(), batch["labels"], reduction="sum").double()
    confusion = ctx.all_reduce_sum(confusion)
    loss = ctx.all_reduce_sum(loss)
    model.train(was_training)
    metrics = metrics_from_confusion(confusion.cpu().numpy())
    metrics["loss"] = loss.item() / max(1, len(split))
    metrics["confusion"] = confusion.cpu().tolist()
    return metrics


# A validation loss this much lower (relative) breaks a tie in the selection metric.
LOSS_TIE_MARGIN = 0.01


def improved(score: float, loss: float, best_score: float, best_loss: float | None) -> bool:
    """Whether an epoch beats the best so far: a higher score, or the same score at a validation
    loss at least LOSS_TIE_MARGIN lower. Accuracy on a few hundred rows ties often early on while
    the model still learns: `python bench/alternatives.py --datasets comp5 --seeds 1,2` at 8d49ce7
    stopped seed 1's teacher at a tie after 2 epochs (test 0.78; seed 2, not tied, went on to 0.87).
    A loss lower by noise is no progress."""
    if score != best_score or best_loss is None:
        return score > best_score
    return loss < best_loss * (1 - LOSS_TIE_MARGIN)


def _cpu_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def train(
    model: torch.nn.Module,
    train_split: EncodedSplit,
    val_split: EncodedSplit,
    spec: TrainSpec,
    *,
    num_labels: int,
    pad_token_id: int,
    ctx=None,
    loss_fn: LossFn = cross_entropy_loss,
) -> TrainResult:
    """Train `model` in place; on return it holds the weights of the best validation epoch."""
    ctx = ctx or LocalContext()
    spec = with_lr(spec, model)
    torch.manual_seed(spec.seed)
    model = ctx.prepare_model(model)
    core = ctx.unwrap(model)
    forward_model = torch.compile(model) if spec.compile else model
    per_worker = max(1, spec.batch_size // ctx.world_size)
    collate = PadCollator(pad_token_id)
    steps_per_epoch = math.ceil(len(train_split) / (per_worker * ctx.world_size))
    total_steps = steps_per_epoch * spec.epochs
    if spec.max_steps:
        total_steps = min(total_steps, spec.max_steps)
    optimizer = _optimizer(core, spec)
    clipped = [p for group in optimizer.param_groups if group.get("clip", True) for p in group["params"]]
    scheduler = _linear_warmup_decay(optimizer, int(spec.warmup_ratio * total_steps), total_steps)

    result = TrainResult(lr=spec.lr)
    best_state, best_score, start_epoch, step = None, -math.inf, 0, 0
    resumed = ctx.restore()
    if resumed:  # a restarted Ray worker continues after the last finished epoch
        core.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        best_state, best_score = resumed["best_model"], resumed["best_score"]
        start_epoch, step = resumed["epoch"], resumed["step"]
        result.history, result.best_epoch = resumed["history"], resumed["best_epoch"]
        result.best_metrics = resumed["best_metrics"]
        result.step_seconds = resumed["step_seconds"]
        if ctx.rank == 0:
            log.info(f"resumed from the checkpoint after epoch {start_epoch} (step {step})")

    if ctx.rank == 0 and not resumed:
        labelled = train_split.labelled()
        transfer = f" ({labelled:,} labelled, {len(train_split) - labelled:,} transfer texts)" if labelled < len(train_split) else ""
        log.info(f"training on {len(train_split):,} rows{transfer}: at most {spec.epochs} epoch(s) of {steps_per_epoch} "
                 f"steps of {per_worker * ctx.world_size}; the time left follows from the first steps")
    started = time.perf_counter()
    model.train()
    for epoch in range(start_epoch, spec.epochs):
        epoch_start = time.perf_counter()
        window_start, window_steps, window_samples = epoch_start, 0, 0
        loss_sum, loss_count = torch.zeros((), device=ctx.device), 0
        for batch in ctx.train_loader(train_split, per_worker, collate, spec.seed, epoch):
            batch = _to(batch, ctx.device)
            with autocast(ctx.device, spec.bf16):
                loss = loss_fn(forward_model, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(clipped, spec.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach()
            loss_count += 1
            step += 1
            window_steps += 1
            window_samples += len(batch["labels"]) * ctx.world_size
            if step % spec.log_every == 0 or step == total_steps:
                mean_loss = loss_sum.item() / loss_count  # .item() syncs a GPU: timing stays honest
                now = time.perf_counter()
                result.step_seconds.append((now - window_start) / window_steps)
                if ctx.rank == 0:
                    rate = window_samples / (now - window_start)
                    left = (total_steps - step) * (now - window_start) / window_steps
                    log.info(
                        f"epoch {epoch + 1}/{spec.epochs}  step {step}/{total_steps}  "
                        f"loss {mean_loss:.4f}  {rate:.1f} samples/s  eta {log.format_seconds(left)}"
                    )
                window_start, window_steps, window_samples = now, 0, 0
            if spec.max_steps and step >= spec.max_steps:
                break
        train_loss = loss_sum.item() / max(1, loss_count)
        val = evaluate(core, val_split, num_labels, pad_token_id, batch_size=spec.eval_batch_size, ctx=ctx, spec=spec)
        seconds = time.perf_counter() - epoch_start
        row = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "val_accuracy": val["accuracy"],
            "val_f1_macro": val["f1_macro"],
            "val_loss": val["loss"],
            "seconds": seconds,
            "samples_per_s": loss_count * per_worker * ctx.world_size / seconds,
        }
        result.history.append(row)
        score = epoch if spec.select_metric == "last" else val[spec.select_metric]
        if improved(score, val["loss"], best_score, result.best_metrics.get("loss")):
            best_score, best_state = score, _cpu_state(core)
            result.best_epoch, result.best_metrics = epoch + 1, {k: v for k, v in val.items() if k != "confusion"}
        if ctx.rank == 0:
            log.info(
                f"epoch {epoch + 1}/{spec.epochs} done in {log.format_seconds(seconds)}: train loss "
                f"{train_loss:.4f}, validation accuracy {val['accuracy']:.4f}, f1_macro {val['f1_macro']:.4f}, "
                f"loss {val['loss']:.4f}"
            )
        result.train_seconds = time.perf_counter() - started + (resumed or {}).get("train_seconds", 0.0)

        def make_state(epoch=epoch, best_state=best_state, best_score=best_score):
            # Built only where a checkpoint is written: copying the weights each epoch is not free.
            return {
                "model": _cpu_state(core),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "best_model": best_state,
                "best_score": best_score,
                "best_epoch": result.best_epoch,
                "best_metrics": result.best_metrics,
                "epoch": epoch + 1,
                "step": step,
                "history": copy.deepcopy(result.history),
                "train_seconds": result.train_seconds,
                "step_seconds": list(result.step_seconds),
            }

        ctx.end_epoch(make_state, row)
        if spec.max_steps and step >= spec.max_steps:
            break
        if spec.patience and epoch + 1 < spec.epochs and epoch + 1 - result.best_epoch >= spec.patience:
            result.stopped_early = True
            if ctx.rank == 0:
                log.info(f"validation {spec.select_metric} has not improved for {spec.patience} epoch(s): "
                         f"stopping, keeping epoch {result.best_epoch}")
            break
    result.steps = step
    if best_state is not None:
        core.load_state_dict(best_state)
    core.eval()
    return result
