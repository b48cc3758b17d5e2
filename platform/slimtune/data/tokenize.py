"""Tokenize once with the model's fast tokenizer; pad each batch only to its own longest text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # pandas is only needed to load data, not to train on encoded data
    from slimtune.data.load import TextData


ENCODE_CHUNK = 8192  # texts tokenized at once: the tokenizer's Python lists stay small beside TokenRows

UNLABELED = -100
"""The label of a transfer-set row: cross-entropy's default `ignore_index`, so no hard loss sees it."""


class TokenRows:
    """Token ids of many texts, unpadded: one int32 array and each row's offset into it. A list of
    lists holds a pointer and, for most ids, an int object per token, several times the memory
    (bench/transfer_memory.py measures a 100,000-text transfer set). A row reads back as a list
    of ints; a slice as TokenRows."""

    def __init__(self, rows=(), *, flat=None, offsets=None):
        import numpy as np

        if flat is None:
            rows = list(rows)
            offsets = np.zeros(len(rows) + 1, dtype=np.int64)
            np.cumsum([len(r) for r in rows], out=offsets[1:])
            flat = np.fromiter((t for r in rows for t in r), dtype=np.int32, count=int(offsets[-1]))
        self.flat, self.offsets = flat, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.take(range(*i.indices(len(self))))
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.flat[self.offsets[i]:self.offsets[i + 1]].tolist()

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def lengths(self):
        import numpy as np

        return np.diff(self.offsets)

    def take(self, rows) -> "TokenRows":
        import numpy as np

        rows = np.asarray(list(rows), dtype=np.int64)
        rows = np.where(rows < 0, rows + len(self), rows)  # as a list counts from the end
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError("TokenRows.take: row out of range")
        lengths = self.lengths()[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        parts = [self.flat[self.offsets[r]:self.offsets[r + 1]] for r in rows]
        flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
        return TokenRows(flat=flat.astype(np.int32, copy=False), offsets=offsets)

    def __add__(self, other) -> "TokenRows":
        return concat_rows([self, as_token_rows(other)])

    def __radd__(self, other) -> "TokenRows":
        return concat_rows([as_token_rows(other), self])

    def __eq__(self, other) -> bool:
        import numpy as np

        if not isinstance(other, (TokenRows, list, tuple)):
            return NotImplemented
        other = as_token_rows(other)
        return np.array_equal(self.offsets, other.offsets) and np.array_equal(self.flat, other.flat)

    def __repr__(self) -> str:
        return f"TokenRows({len(self)} rows, {len(self.flat)} tokens)"


def as_token_rows(rows) -> TokenRows:
    return rows if isinstance(rows, TokenRows) else TokenRows(rows)


def concat_rows(parts: list[TokenRows]) -> TokenRows:
    """The rows of `parts` in order, copied once."""
    import numpy as np

    if not parts:
        return TokenRows()
    starts = np.cumsum([0] + [len(p.flat) for p in parts[:-1]])
    offsets = np.concatenate([parts[0].offsets[:1]] + [p.offsets[1:] + s for p, s in zip(parts, starts)])
    return TokenRows(flat=np.concatenate([p.flat for p in parts]).astype(np.int32, copy=False), offsets=offsets)


@dataclass
class EncodedSplit(torch.utils.data.Dataset):
    """Token ids per example (unpadded, `TokenRows`: compact, cheap to ship to Ray workers) and
    label ids. A distillation split holds its labelled rows first, then transfer rows labelled
    UNLABELED."""

    input_ids: TokenRows
    labels: list[int]

    def __post_init__(self):
        self.input_ids = as_token_rows(self.input_ids)  # lists of lists are accepted

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[list[int], int, int]:
        # The row index travels with the batch so that cached per-example values (the teacher's
        # logits in distillation) can be looked up whatever order the sampler picks.
        return self.input_ids[i], self.labels[i], i

    def num_tokens(self) -> int:
        return len(self.input_ids.flat)

    def labelled(self) -> int:
        """How many rows carry a label (they come first)."""
        return next((i for i, label in enumerate(self.labels) if label == UNLABELED), len(self.labels))

    def lines_up_with(self, other: "EncodedSplit") -> bool:
        """Every example has as many tokens as in `other`: positions correspond one for one, as
        hidden-state and attention distillation between two tokenizers need."""
        import numpy as np

        n = min(len(self), len(other))
        return bool(np.array_equal(self.input_ids.lengths()[:n], other.input_ids.lengths()[:n]))


def encode(texts, labels, tokenizer, max_length: int, truncation: str = "head") -> EncodedSplit:
    # token_type_ids are dropped on purpose: single-sentence inputs make them all zero, which is
    # each model's default, and MPNet has none. One input format serves every architecture.
    texts, parts = list(texts), []
    for start in range(0, len(texts), ENCODE_CHUNK):  # the tokenizer's lists of one chunk at a time
        chunk = texts[start:start + ENCODE_CHUNK]
        if truncation == "head":
            part = tokenizer(chunk, truncation=True, max_length=max_length)["input_ids"]
        else:  # the runtime cuts with the same function (slimtune.data.truncation)
            from slimtune.data.truncation import encode_ids

            part = encode_ids(tokenizer, chunk, max_length, truncation)
        parts.append(TokenRows(part))
    return EncodedSplit(input_ids=concat_rows(parts), labels=[int(x) for x in labels])


_ENCODED: dict[tuple, EncodedSplit] = {}  # (tokenizer, max_length, split content) -> its encoding
_ENCODED_MAX = 16


def encode_data(data: "TextData", tokenizer, max_length: int, transfer: bool = False) -> dict[str, EncodedSplit]:
    """Every split encoded; a split this process already encoded with the same tokenizer and
    length is reused, so a job that hands its data from stage to stage tokenizes it once.
    `transfer`: the training split is followed by the transfer set's texts, labelled UNLABELED
    (distillation learns from them through the teacher's logits)."""
    import hashlib

    import pandas as pd

    frames = [("train", data.train), ("validation", data.validation), ("test", data.test)]
    if transfer and data.unlabeled:
        frames.append(("unlabeled", pd.DataFrame({"text": list(data.unlabeled), "label": UNLABELED})))
    out = {}
    for split, frame in frames:
        content = hashlib.sha1(pd.util.hash_pandas_object(frame[["text", "label"]], index=False).to_numpy().tobytes())
        truncation = data.truncation or "head"
        key = (type(tokenizer).__name__, tokenizer.name_or_path, len(tokenizer), max_length, truncation,
               content.hexdigest())
        if key not in _ENCODED:
            if len(_ENCODED) >= _ENCODED_MAX:
                _ENCODED.pop(next(iter(_ENCODED)))
            _ENCODED[key] = encode(frame["text"], frame["label"], tokenizer, max_length, truncation)
        out[split] = _ENCODED[key]
    if "unlabeled" in out:
        extra = out.pop("unlabeled")
        out["train"] = EncodedSplit(out["train"].input_ids + extra.input_ids, out["train"].labels + extra.labels)
    return out


def training_texts(data: "TextData", transfer: bool = False) -> list[str]:
    """The texts of `encode_data(..., transfer)`'s training split, in its order."""
    return list(data.train["text"]) + (list(data.unlabeled) if transfer else [])


class PadCollator:
    """Dynamic padding: pad to the longest sequence in the batch, not to max_length."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, batch: list[tuple[list[int], int, int]]) -> dict[str, torch.Tensor]:
        longest = max(len(ids) for ids, _, _ in batch)
        input_ids = torch.full((len(batch), longest), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for row, (ids, _, _) in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": torch.tensor([label for _, label, _ in batch], dtype=torch.long),
            "index": torch.tensor([i for _, _, i in batch], dtype=torch.long),
        }
