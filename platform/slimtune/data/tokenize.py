"""Tokenize once with the model's fast tokenizer; pad each batch only to its own longest text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # pandas is only needed to load data, not to train on encoded data
    from slimtune.data.load import TextData


UNLABELED = -100
"""The label of a transfer-set row: cross-entropy's default `ignore_index`, so no hard loss sees it."""


@dataclass
class EncodedSplit(torch.utils.data.Dataset):
    """Token ids per example (unpadded) and label ids. Plain lists: cheap to ship to Ray workers.
    A distillation split holds its labelled rows first, then transfer rows labelled UNLABELED."""

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

    def labelled(self) -> int:
        """How many rows carry a label (they come first)."""
        return next((i for i, label in enumerate(self.labels) if label == UNLABELED), len(self.labels))

    def lines_up_with(self, other: "EncodedSplit") -> bool:
        """Every example has as many tokens as in `other`: positions correspond one for one, as
        hidden-state and attention distillation between two tokenizers need."""
        return all(len(a) == len(b) for a, b in zip(self.input_ids, other.input_ids))


def encode(texts, labels, tokenizer, max_length: int, truncation: str = "head") -> EncodedSplit:
    # token_type_ids are dropped on purpose: single-sentence inputs make them all zero, which is
    # each model's default, and MPNet has none. One input format serves every architecture.
    if truncation == "head":
        ids = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    else:  # the runtime cuts with the same function (slimtune.data.truncation)
        from slimtune.data.truncation import encode_ids

        ids = encode_ids(tokenizer, list(texts), max_length, truncation)
    return EncodedSplit(input_ids=ids, labels=[int(x) for x in labels])


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
