"""Teacher outputs for every training example, computed once and kept on disk.

- logits: (examples, labels) float32;
- hidden states: a layer's output at every real token, in fp16, one file per layer, ragged
  (examples' tokens end to end plus offsets), so hidden-state distillation reads its targets
  instead of running the teacher each step. A 2,000-row, 128-token MPNet split is about 0.4 GB
  per layer. A pass that has to run writes every layer when they fit in `HIDDEN_CACHE_GB` (a
  search's students map to varying layers), else only the layers asked for.

The key covers everything they depend on: the teacher's weights (path, size, mtime), the
data (fingerprint of texts, labels and splits) and tokenization (max length). A search that
distils many students from one teacher pays for the teacher's forward passes once.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from slimtune import log
from slimtune.data.tokenize import PadCollator
from slimtune.models.builtin import cache_dir


def cache_key(teacher_dir: str, data_fingerprint: str, max_length: int) -> str:
    weights = Path(teacher_dir) / "model.safetensors"
    stat = weights.stat() if weights.exists() else None
    parts = [str(Path(teacher_dir).resolve()), str(stat.st_size if stat else ""), str(stat.st_mtime_ns if stat else ""),
             data_fingerprint, str(max_length)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


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
        out = teacher(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device))
        logits[idx] = out.logits.float().cpu()
    return logits


def teacher_logits(teacher, teacher_dir: str, split, pad_token_id: int, data_fingerprint: str, max_length: int) -> torch.Tensor:
    """Cached logits when the key matches, else computed now and stored atomically."""
    path = cache_dir() / "teacher_logits" / f"{cache_key(teacher_dir, data_fingerprint, max_length)}.safetensors"
    if path.exists():
        logits = load_file(path)["logits"]
        if logits.shape[0] == len(split):
            log.info(f"teacher logits from cache ({path.name})")
            return logits
    logits = compute_logits(teacher, split, pad_token_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file({"logits": logits.contiguous()}, tmp)
    os.replace(tmp, path)
    return logits


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


def teacher_hidden(teacher, teacher_dir: str, split, pad_token_id: int, data_fingerprint: str, max_length: int,
                   layers: list[int]) -> HiddenCache:
    """The cached hidden states of `layers` (0-based encoder layers), computed on a miss."""
    key = cache_key(teacher_dir, data_fingerprint, max_length)
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
