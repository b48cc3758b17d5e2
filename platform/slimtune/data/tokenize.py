"""Tokenize once with the model's fast tokenizer; pad each batch only to its own longest text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # pandas is only needed to load data, not to train on encoded data
    from slimtune.data.load import TextData


@dataclass
class EncodedSplit(torch.utils.data.Dataset):
    """Token ids per example (unpadded) and label ids. Plain lists: cheap to ship to Ray workers."""

    input_ids: list[list[int]]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[list[int], int, int]:
        # The row index travels with the batch so that cached per-example values (the teacher's
        # logits in distillation) can be looked up whatever order the sampler picks.
        return self.input_ids[i], self.labels[i], i

    def num_tokens(self) -> int:
        return sum(len(ids) for ids in self.input_ids)

    def lines_up_with(self, other: "EncodedSplit") -> bool:
        """Every example has as many tokens as in `other`: positions correspond one for one, as
        hidden-state and attention distillation between two tokenizers need."""
        return all(len(a) == len(b) for a, b in zip(self.input_ids, other.input_ids))


def encode(texts, labels, tokenizer, max_length: int) -> EncodedSplit:
    # token_type_ids are dropped on purpose: single-sentence inputs make them all zero, which is
    # each model's default, and MPNet has none. One input format serves every architecture.
    ids = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    return EncodedSplit(input_ids=ids, labels=[int(x) for x in labels])


_ENCODED: dict[tuple, EncodedSplit] = {}  # (tokenizer, max_length, split content) -> its encoding
_ENCODED_MAX = 16


def encode_data(data: "TextData", tokenizer, max_length: int) -> dict[str, EncodedSplit]:
    """Every split encoded; a split this process already encoded with the same tokenizer and
    length is reused, so a job that hands its data from stage to stage tokenizes it once."""
    import hashlib

    import pandas as pd

    out = {}
    for split, frame in (("train", data.train), ("validation", data.validation), ("test", data.test)):
        content = hashlib.sha1(pd.util.hash_pandas_object(frame[["text", "label"]], index=False).to_numpy().tobytes())
        key = (type(tokenizer).__name__, tokenizer.name_or_path, len(tokenizer), max_length, content.hexdigest())
        if key not in _ENCODED:
            if len(_ENCODED) >= _ENCODED_MAX:
                _ENCODED.pop(next(iter(_ENCODED)))
            _ENCODED[key] = encode(frame["text"], frame["label"], tokenizer, max_length)
        out[split] = _ENCODED[key]
    return out


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
