"""`slimtune finetune`: data -> tokenizer -> classifier -> train (here or on Ray Train) -> save -> test.

Reads top to bottom. Everything that can fail on the user's input is checked before the first
weight is loaded.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from slimtune import log
from slimtune.version import __version__
from slimtune.data import DataSpec, TextData, load_data, as_data_spec
from slimtune.errors import SlimtuneError
from slimtune.storage import ensure_writable
from slimtune.models import load_config, resolve_model
from slimtune.train.loop import TrainSpec


@dataclass(frozen=True)
class FinetuneSpec:
    """One fine-tuning run."""

    model: str
    """builtin:minilm-l6, builtin:mpnet-base, a model folder, or a hub id."""
    data: DataSpec
    out: str
    """Output folder: model/, metrics.json, split.json."""
    train: TrainSpec = field(default_factory=TrainSpec)
    max_length: int | None = None
    """Tokens per text; longer texts are cut (DataSpec.truncation). None: the length covering 95% of
    the training texts, capped by the model's positions and, on a CPU, by 256 (data.length)."""
    workers: int | None = None
    """Ray Train workers; 0 trains in this process; None: 1 under a cluster (RAY_ADDRESS), else 0."""
    use_gpu: bool = False
    """Train on GPUs (one per Ray worker); fail early if none is visible."""
    storage: str | None = None
    """Ray Train's checkpoints: a folder every node reaches, or s3:// / gs:// (default: OUT/ray)."""

    def __post_init__(self):
        object.__setattr__(self, "data", as_data_spec(self.data))  # a source string is enough
        if self.max_length is not None and not 8 <= self.max_length <= 8192:
            raise SlimtuneError(f"--max-length: must be between 8 and 8192, got {self.max_length}")
        if self.workers is not None and self.workers < 0:
            raise SlimtuneError(f"--workers: must be 0 (this process) or more, got {self.workers}")
        if not self.out:
            raise SlimtuneError("--out: give an output folder")
        if self.storage:
            from slimtune.storage import resolve

            resolve(self.storage, Path(self.out))  # a bad scheme fails now

    @property
    def num_workers(self) -> int:
        if self.workers is not None:
            return self.workers
        return 1 if os.environ.get("RAY_ADDRESS") else 0


def _check_gpu(spec: FinetuneSpec) -> None:
    if spec.use_gpu and spec.num_workers == 0:
        import torch

        if not torch.cuda.is_available():
            raise SlimtuneError("--use-gpu: no CUDA device is visible here; drop the flag or use --workers N on a GPU cluster")


def train_model(spec: FinetuneSpec, model, encoded, data: TextData, pad_token_id: int, out: Path, loss_fn=None):
    """Train here or on Ray Train; return (model, train record, fixed start-up seconds, device).

    Shared by finetune and distill (which passes its own `loss_fn`)."""
    from slimtune.train.loop import cross_entropy_loss

    loss_fn = loss_fn or cross_entropy_loss
    common = dict(num_labels=data.num_labels, pad_token_id=pad_token_id)
    if spec.num_workers == 0:
        from slimtune.train.loop import LocalContext, train

        ctx = LocalContext("cuda" if spec.use_gpu else None)
        log.info(f"training in this process on {ctx.device}")
        record = train(model, encoded["train"], encoded["validation"], spec.train, ctx=ctx, loss_fn=loss_fn, **common)
        return model.to("cpu"), record, 0.0, str(ctx.device)
    from slimtune.storage import resolve as resolve_storage
    from slimtune.train.ray_train import fit_on_ray

    log.info(f"training on Ray Train with {spec.num_workers} worker(s)")
    model, record, startup = fit_on_ray(
        model, encoded["train"], encoded["validation"], spec.train, workers=spec.num_workers,
        use_gpu=spec.use_gpu, storage=resolve_storage(spec.storage, out / "ray"), loss_fn=loss_fn, **common,
    )
    return model, record, startup, f"ray-train x{spec.num_workers} ({'cuda' if spec.use_gpu else 'cpu'})"


def _test_metrics(model, model_dir: Path, test, num_labels: int, pad_token_id: int, batch_size: int) -> dict:
    """Test figures through the teacher-logits cache, keyed by the weights just saved: `slimtune
    distill` and `prune --method learned` from this model (a bench's arms, a user's second student)
    read its test logits instead of running it over the test texts again (MPNet-base over the 20
    newsgroups' 7,528: 12-18 min on 2 cores). Plainly where the cache cannot be written."""
    from slimtune.distillation.cache import teacher_logits
    from slimtune.train.loop import evaluate
    from slimtune.train.metrics import metrics_from_logits

    try:
        logits = teacher_logits(model, str(model_dir), test, pad_token_id)
    except OSError as exc:
        log.info(f"test pass without the logits cache ({exc})")
        return evaluate(model, test, num_labels, pad_token_id, batch_size=batch_size)
    return metrics_from_logits(test.labels, logits.numpy(), num_labels)


def run_finetune(spec: FinetuneSpec, data: TextData | None = None) -> dict:
    """Fine-tune and write `out/model/`, `out/metrics.json`, `out/split.json`; return the metrics.
    `data`: already loaded (a job loads it once), else loaded from `spec.data`."""
    out = Path(spec.out)
    resolved = resolve_model(spec.model)  # cheap checks first: names, folders, files, columns
    ensure_writable(out)
    data = data if data is not None else load_data(spec.data)
    _check_gpu(spec)
    load_config(resolved)  # an unreachable hub id fails here, before tokenizing

    from slimtune.data.tokenize import encode_data
    from slimtune.models import load_classifier, load_tokenizer, num_parameters, save_model
    from slimtune.models.load import provenance

    tokenizer = load_tokenizer(resolved)
    from slimtune.data.length import inherit_truncation, resolve_max_length

    data = inherit_truncation(data, resolved)
    spec = replace(spec, max_length=resolve_max_length(spec.max_length, resolved, data, tokenizer,
                                                       load_config(resolved), spec.use_gpu))
    started = time.perf_counter()
    encoded = encode_data(data, tokenizer, spec.max_length)
    log.info(f"tokenized in {time.perf_counter() - started:.1f}s ({encoded['train'].num_tokens()} train tokens)")
    import torch

    torch.manual_seed(spec.train.seed)  # the new classifier head is drawn here: seed it too
    model = load_classifier(resolved, data.label_names)
    out.mkdir(parents=True, exist_ok=True)

    model, record, startup, device = train_model(spec, model, encoded, data, tokenizer.pad_token_id, out)
    save_model(model, tokenizer, out / "model", provenance(spec.model, data, spec.max_length))
    test = _test_metrics(model, out / "model", encoded["test"], data.num_labels, tokenizer.pad_token_id,
                         spec.train.eval_batch_size)
    log.info(f"test accuracy {test['accuracy']:.4f}, f1_macro {test['f1_macro']:.4f} ({len(data.test)} texts)")

    from slimtune.train.loop import bf16_on

    (out / "split.json").write_text(json.dumps(data.split_info) + "\n")
    metrics = {
        "accuracy": test["accuracy"],
        "f1_macro": test["f1_macro"],
        "num_parameters": num_parameters(model),
        "num_labels": data.num_labels,
        "train_seconds": record.train_seconds,
        "startup_seconds": startup,
        "worker_nodes": record.worker_nodes,
        "resumed_from": record.resumed_from,
        "label_names": list(data.label_names),
        "confusion": test["confusion"],
        # the test pass ran under `autocast`: bf16 where this device runs it (a bundle reusing the
        # figure says so)
        "test_precision": "bf16" if bf16_on(next(model.parameters()).device) else "fp32",
        "best_epoch": record.best_epoch,
        "stopped_early": record.stopped_early,
        "validation": record.best_metrics,
        "history": record.history,
        "device": device,
        "model": spec.model,
        "data": {
            "source": spec.data.source,
            "fingerprint": data.fingerprint,
            "train_rows": len(data.train),
            "validation_rows": len(data.validation),
            "test_rows": len(data.test),
            "test_split": {k: v for k, v in data.split_info["test"].items() if k != "row_indices"},
        },
        "train": {**asdict(spec.train), "lr": record.lr},
        "max_length": spec.max_length,
        "truncation": data.truncation,
        "slimtune_version": __version__,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log.info(f"wrote {out / 'model'} and {out / 'metrics.json'}")
    return metrics
