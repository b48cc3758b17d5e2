"""Teacher logits for every training example, computed once and kept on disk.

The key covers everything the logits depend on: the teacher's weights (path, size, mtime), the
data (fingerprint of texts, labels and splits) and tokenization (max length). A search that
distils many students from one teacher pays for the teacher's forward passes once.
"""

from __future__ import annotations

import hashlib
import os
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
