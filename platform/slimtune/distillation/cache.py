"""Teacher outputs for every training example, computed once and kept on disk.

- logits: (examples, labels) float32, in shards keyed by each text's token ids, so a transfer set
  of any size is labelled once by the teacher and a killed pass resumes (`teacher_logits`);
- hidden states: a layer's output at every real token, in fp16, one file per layer, ragged
  (examples' tokens end to end plus offsets), so hidden-state distillation reads its targets
  instead of running the teacher each step. A 2,000-row, 128-token MPNet split is about 0.4 GB
  per layer. A pass that has to run writes every layer when they fit in `HIDDEN_CACHE_GB` (a
  search's students map to varying layers), else only the layers asked for.

The key covers everything they depend on: the teacher's weights (path, size, mtime) and the
token ids of the texts (so the texts, the tokenizer, the length and the truncation at once): per
text for logits, over the labelled rows for hidden states. A search that
distils many students from one teacher pays for the teacher's forward passes once.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import os
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from slimtune import log
from slimtune.data.tokenize import PadCollator
from slimtune.models.builtin import cache_dir
from slimtune.train.loop import autocast, bf16_on


@torch.no_grad()
def compute_logits(teacher, split, pad_token_id: int, batch_size: int = 64, device=None) -> torch.Tensor:
    """(len(split), num_labels) float32 logits in example order; batches sorted by length."""
    device = device or next(teacher.parameters()).device
    teacher.eval()
    order = sorted(range(len(split)), key=lambda i: len(split.input_ids[i]))
    collate = PadCollator(pad_token_id)
    logits = torch.empty(len(split), teacher.config.num_labels)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = collate([split[i] for i in idx])
        with autocast(device):
            out = teacher(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device))
        logits[idx] = out.logits.float().cpu()
    return logits


def teacher_key(teacher_dir: str, device="cpu") -> str:
    """The teacher's weights (path, size and modification time) and the precision of its passes on
    `device` (bf16 where `autocast` runs it: its logits are not mixed with fp32 ones)."""
    weights = Path(teacher_dir) / "model.safetensors"
    stat = weights.stat() if weights.exists() else None
    parts = [str(Path(teacher_dir).resolve()), str(stat.st_size if stat else ""), str(stat.st_mtime_ns if stat else "")]
    parts += ["bf16"] if bf16_on(device) else []
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def row_keys(split) -> torch.Tensor:
    """(examples,) int64: a hash of each example's token ids, i.e. of its text and its tokenization
    (tokenizer, length, truncation) at once."""
    import numpy as np

    return torch.tensor([int.from_bytes(hashlib.blake2b(np.asarray(ids, dtype=np.int32).tobytes(), digest_size=8)
                                        .digest(), "little", signed=True) for ids in split.input_ids])


SHARD_ROWS = 4096
"""Texts per shard of the logits cache: a kill loses at most one shard of teacher passes."""


def teacher_logits(teacher, teacher_dir: str, split, pad_token_id: int) -> torch.Tensor:
    """(examples, labels) float32 logits of `split`, from the cache where they are, else computed now.

    The cache holds shards of (row key, logits) under the teacher's key; any shard's rows serve any
    split, so a changed or grown transfer set computes only its new texts, and a run killed during
    the teacher's pass resumes from the shards it wrote (each written atomically)."""
    if len(split) == 0:
        return torch.empty(0, teacher.config.num_labels)
    labelled = split.labelled()
    if labelled < len(split):  # said once here for every stage that distils with a transfer set
        log.info(f"distilling on {labelled:,} labelled rows and {len(split) - labelled:,} transfer texts "
                 "(the teacher's logits only)")
    folder = cache_dir() / "teacher_logits" / teacher_key(teacher_dir, next(teacher.parameters()).device)
    keys = row_keys(split)
    with _locked(folder / "pass"):
        known = _read_shards(folder)
        missing = sorted({int(k) for k in keys} - known.keys())
        if missing:
            where = {}
            for i, k in enumerate(keys.tolist()):
                where.setdefault(k, i)
            rows = [where[k] for k in missing]
            shards = math.ceil(len(rows) / SHARD_ROWS)
            hits = len(set(where) & known.keys())  # texts, not rows: a split may hold a text twice
            note = f" ({hits:,} from the cache)" if hits else ""
            # any model's pass, not only a teacher's (finetune scores its test split here); named by its
            # folder: a stage's OUT/model is named by OUT
            path = Path(teacher_dir)
            name = path.parent.name if path.name == "model" else path.name
            log.info(f"logits of {name} over {len(rows):,} texts{note}, cached for distillation: {shards} shard(s) "
                     f"of {SHARD_ROWS:,}")
            started = time.perf_counter()
            for n, start in enumerate(range(0, len(rows), SHARD_ROWS)):
                part = rows[start : start + SHARD_ROWS]
                logits = compute_logits(teacher, _Rows(split, part), pad_token_id)
                _write_shard(folder, keys[part], logits)
                known.update(zip(keys[part].tolist(), logits))
                if shards > 1:
                    left = (time.perf_counter() - started) / (n + 1) * (shards - n - 1)
                    log.info(f"logits: shard {n + 1}/{shards} written, eta {log.format_seconds(left)}")
    return torch.stack([known[k] for k in keys.tolist()]).float()


def teacher_test_metrics(teacher, teacher_dir: str, split, num_labels: int, pad_token_id: int) -> dict:
    """`train.report.model_metrics` of the teacher over `split` (the test split), its logits through
    the cache: a second run from this teacher (a bench's next arm, a user's second student) skips
    minutes of a big teacher over the test texts."""
    from slimtune.train.report import model_metrics

    return model_metrics(teacher, split, num_labels, pad_token_id,
                         logits=teacher_logits(teacher, teacher_dir, split, pad_token_id))


class _Rows:
    """Some rows of a split, as compute_logits reads them."""

    def __init__(self, split, rows: list[int]):
        self.input_ids = [split.input_ids[i] for i in rows]

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int):
        return self.input_ids[i], 0, i


def _read_shards(folder: Path) -> dict[int, torch.Tensor]:
    known: dict[int, torch.Tensor] = {}
    for path in sorted(folder.glob("shard-*.safetensors")):
        entry = load_file(path)
        known.update(zip(entry["keys"].tolist(), entry["logits"]))
    return known


def _write_shard(folder: Path, keys: torch.Tensor, logits: torch.Tensor) -> None:
    name = hashlib.sha256(keys.numpy().tobytes()).hexdigest()[:16]
    path = folder / f"shard-{name}.safetensors"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file({"keys": keys.contiguous(), "logits": logits.contiguous()}, tmp)
    os.replace(tmp, path)


class HiddenCache:
    """The teacher's hidden states of some layers, gathered per batch by example index."""

    def __init__(self, layers: dict[int, torch.Tensor], offsets: torch.Tensor):
        self.layers = layers  # teacher layer -> (all real tokens + one zero row, hidden) fp16
        self.offsets = offsets  # (examples + 1,) start of each example's tokens
        self.pad_row = offsets[-1].item()  # the zero row every padding position reads

    def lengths_match(self, split) -> bool:
        """True when `split` tokenizes every example to the teacher's length, so positions line up."""
        return all(len(ids) == int(self.offsets[i + 1] - self.offsets[i]) for i, ids in enumerate(split.input_ids))

    def batch(self, index: torch.Tensor, mask: torch.Tensor, layer_map: list[int]) -> list[torch.Tensor]:
        """(batch, seq, hidden) float32 targets of each mapped layer for the batch's examples."""
        index, mask = index.cpu(), mask.cpu()
        seq = mask.shape[1]
        start = self.offsets.index_select(0, index).unsqueeze(1) + torch.arange(seq)
        rows = torch.where(mask.bool(), start, torch.full_like(start, self.pad_row)).flatten()
        return [self.layers[t].index_select(0, rows).view(len(index), seq, -1).float() for t in layer_map]


HIDDEN_CACHE_GB = 6.0


@torch.no_grad()
def _compute_hidden(teacher, split, pad_token_id: int, layers: list[int],
                    batch_size: int = 32) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    teacher.eval()
    lengths = torch.tensor([len(ids) for ids in split.input_ids])
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
    hidden = teacher.config.hidden_size
    states = {t: torch.zeros(int(offsets[-1]) + 1, hidden, dtype=torch.float16) for t in layers}
    order = sorted(range(len(split)), key=lambda i: len(split.input_ids[i]))
    collate = PadCollator(pad_token_id)
    device = next(teacher.parameters()).device
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = collate([split[i] for i in idx])
        with autocast(device):
            out = teacher(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                          output_hidden_states=True)
        for layer, tensor in states.items():
            h = out.hidden_states[layer + 1].to("cpu", torch.float16)
            for row, i in enumerate(idx):
                tensor[offsets[i] : offsets[i + 1]] = h[row, : lengths[i]]
    return states, offsets


@contextmanager
def _locked(path: Path):
    """One process computes a cache entry; others wait, then read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def teacher_hidden(teacher, teacher_dir: str, split, pad_token_id: int, layers: list[int]) -> HiddenCache:
    """The cached hidden states of `layers` (0-based encoder layers), computed on a miss: of the
    labelled rows only (a transfer set teaches through the logits alone)."""
    from slimtune.data.tokenize import EncodedSplit

    if split.labelled() < len(split):
        split = EncodedSplit(split.input_ids[: split.labelled()], split.labels[: split.labelled()])
    # the teacher's weights and every row's tokens (so text, tokenizer, length and truncation at once)
    key = hashlib.sha256(f"{teacher_key(teacher_dir, next(teacher.parameters()).device)}|".encode() + row_keys(split).numpy().tobytes()).hexdigest()[:24]
    folder = cache_dir() / "teacher_hidden"
    path = lambda layer: folder / f"{key}-layer{layer}.safetensors"  # noqa: E731
    with _locked(folder / key):
        missing = [t for t in sorted(set(layers)) if not path(t).exists()]
        if missing:
            every = [t for t in range(teacher.config.num_hidden_layers) if not path(t).exists()]
            gb = split.num_tokens() * teacher.config.hidden_size * 2 * len(every) / 1e9
            todo = every if gb <= HIDDEN_CACHE_GB else missing
            log.info(f"caching the teacher's hidden states of {len(todo)} layer(s), fp16, {len(split):,} examples")
            states, offsets = _compute_hidden(teacher, split, pad_token_id, todo)
            for layer, tensor in states.items():
                tmp = path(layer).with_suffix(f".tmp{os.getpid()}")
                save_file({"states": tensor, "offsets": offsets}, tmp)
                os.replace(tmp, path(layer))
            del states
        loaded, offsets = {}, None
        for t in sorted(set(layers)):
            entry = load_file(path(t))
            loaded[t], offsets = entry["states"], entry["offsets"]
    if offsets is None or len(offsets) != len(split) + 1:
        raise RuntimeError(f"teacher hidden-state cache {key} does not match this split; delete {folder}")
    return HiddenCache(loaded, offsets)
