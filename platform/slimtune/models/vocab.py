"""Vocabulary pruning: keep the pieces a data set uses, drop the rest of the embedding table.

The word-embedding table is most of a small encoder (MiniLM-L6: 30,522 x 384 of 22.7M weights;
XLM-R: 250k pieces). A classifier for one domain sees a few thousand of them. This keeps the
pieces the training texts tokenize to (plus any extra in-domain texts), every special and added
token, and, for the families whose positions count from the pad id (RoBERTa, XLM-R, MPNet: the
adapter says), every id up to it; then renumbers tokenizer and embedding rows together, keeping
the old order. ModernBERT's pad id is near the end of its table: keeping the ids below it would
keep nearly everything.

A text whose pieces were all kept tokenizes to the same pieces as before, for each model kind:
WordPiece and WordLevel look pieces up (a longest match that was kept is still the longest);
Unigram's best segmentation uses only kept pieces, and removing others cannot beat it; for BPE,
the merges that build each kept piece are kept with the pieces they start from (and the base
alphabet, so every text still tokenizes), and a merge is dropped only when its result is.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from slimtune.errors import SlimtuneError

KINDS = ("WordPiece", "WordLevel", "Unigram", "BPE")


def _model(spec: dict) -> dict:
    model = spec["model"]
    if model.get("type") not in KINDS:
        raise SlimtuneError(f"--vocab: this tokenizer's model is {model.get('type')!r}; vocabulary pruning "
                            f"supports {', '.join(KINDS)} tokenizers (use --vocab full)")
    return model


def _pieces(model: dict) -> list[str]:
    """Piece of each id."""
    if model["type"] == "Unigram":
        return [piece for piece, _ in model["vocab"]]
    pieces = [""] * (max(model["vocab"].values()) + 1)
    for piece, i in model["vocab"].items():
        pieces[i] = piece
    return pieces


def _merge_pairs(model: dict) -> list[tuple[str, str]]:
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model.get("merges", [])]


def _merged(model: dict, a: str, b: str) -> str:
    prefix = model.get("continuing_subword_prefix") or ""
    return a + (b[len(prefix):] if prefix and b.startswith(prefix) else b)


def kept_ids(tokenizer, used: set[int], positions_from_pad: bool = True) -> list[int]:
    """The ids to keep, ascending: `used` plus whatever the tokenizer and the model need;
    `positions_from_pad`: the model counts positions from the pad id, so the ids below it stay."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = _model(spec)
    pieces = _pieces(model)
    keep = set(used) | {t["id"] for t in spec.get("added_tokens", [])}
    keep |= {i for i in tokenizer.all_special_ids if i is not None}
    pad = tokenizer.pad_token_id
    if positions_from_pad:
        keep |= set(range((pad or 0) + 1))  # ids below and at the pad id stay where they are
    if model["type"] == "Unigram" and model.get("unk_id") is not None:
        keep.add(model["unk_id"])
    if model["type"] in ("WordPiece", "WordLevel") and model.get("unk_token") in model["vocab"]:
        keep.add(model["vocab"][model["unk_token"]])
    if model["type"] == "BPE":
        index = {p: i for i, p in enumerate(pieces)}
        prefix = model.get("continuing_subword_prefix") or ""
        keep |= {i for p, i in index.items() if len(p) == 1 or (prefix and p.startswith(prefix) and len(p) == len(prefix) + 1)}
        made_by = {}
        for a, b in _merge_pairs(model):
            made_by.setdefault(_merged(model, a, b), (a, b))
        todo = [pieces[i] for i in keep if i < len(pieces)]
        while todo:  # every kept piece keeps the pieces its merge starts from
            parts = made_by.get(todo.pop())
            for part in parts or ():
                if part in index and index[part] not in keep:
                    keep.add(index[part])
                    todo.append(part)
    return sorted(i for i in keep if i < len(pieces) or i in {t["id"] for t in spec.get("added_tokens", [])})


def _remap_processor(node, new_id: dict[int, int]):
    """Special-token ids inside a post-processor (Template, Roberta, Bert, Sequence)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "ids" and isinstance(value, list):
                out[key] = [new_id[i] for i in value]
            elif key in ("sep", "cls") and isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
                out[key] = [value[0], new_id[value[1]]]
            else:
                out[key] = _remap_processor(value, new_id)
        return out
    if isinstance(node, list):
        return [_remap_processor(v, new_id) for v in node]
    return node


def pruned_tokenizer_json(tokenizer, keep: list[int]) -> str:
    """tokenizer.json text for the kept ids, renumbered 0..len(keep)-1 in the old order."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = _model(spec)
    new_id = {old: new for new, old in enumerate(keep)}
    pieces = _pieces(model)
    if model["type"] == "Unigram":
        model["vocab"] = [model["vocab"][i] for i in keep if i < len(pieces)]
        if model.get("unk_id") is not None:
            model["unk_id"] = new_id[model["unk_id"]]
    else:
        model["vocab"] = {pieces[i]: new_id[i] for i in keep if i < len(pieces)}
    if model["type"] == "BPE":
        kept = set(model["vocab"])
        merges = [(a, b) for a, b in _merge_pairs(model) if a in kept and b in kept and _merged(model, a, b) in kept]
        as_strings = bool(model.get("merges")) and isinstance(model["merges"][0], str)
        model["merges"] = [f"{a} {b}" for a, b in merges] if as_strings else [list(m) for m in merges]
    for token in spec.get("added_tokens", []):
        token["id"] = new_id[token["id"]]
    if spec.get("post_processor"):
        spec["post_processor"] = _remap_processor(spec["post_processor"], new_id)
    if spec.get("padding") and spec["padding"].get("pad_id") is not None:
        spec["padding"]["pad_id"] = new_id[spec["padding"]["pad_id"]]
    return json.dumps(spec, ensure_ascii=False)


def prune_vocab(model, tokenizer, keep: list[int]):
    """(model, tokenizer) keeping only `keep`: embedding rows selected, config and tokenizer
    renumbered. The model is changed in place; the tokenizer is a new one."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    old = model.get_input_embeddings()
    if max(keep) >= old.num_embeddings:
        raise SlimtuneError(f"--vocab: the tokenizer has ids up to {max(keep)} but the model's embedding table "
                            f"has {old.num_embeddings} rows")
    new_id = {o: n for n, o in enumerate(keep)}
    pad = tokenizer.pad_token_id
    table = nn.Embedding(len(keep), old.embedding_dim, padding_idx=new_id.get(pad) if pad is not None else None)
    with torch.no_grad():
        table.weight.copy_(old.weight[torch.tensor(keep)])
    model.set_input_embeddings(table)
    config = model.config
    config.vocab_size = len(keep)
    for name in ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value in new_id:
            setattr(config, name, new_id[value])
    fast = Tokenizer.from_str(pruned_tokenizer_json(tokenizer, keep))
    specials = {k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)}
    # a name that says which pieces it holds: encodings are cached by tokenizer name
    name = "pruned-vocab-" + hashlib.sha1(json.dumps([tokenizer.name_or_path, keep]).encode()).hexdigest()[:16]
    new = PreTrainedTokenizerFast(tokenizer_object=fast, model_max_length=tokenizer.model_max_length,
                                  name_or_path=name, **specials)
    return model, new


def prune_to_data(model, tokenizer, train_split, extra_texts: list[str] = (), max_length: int = 128,
                  truncation: str = "head"):
    """(model, tokenizer, record): keep the pieces of the training split (already encoded by
    `tokenizer`) and of `extra_texts` (cut as training cuts them), never validation or test texts."""
    from slimtune.data.tokenize import encode

    used = used_ids([train_split])
    if extra_texts:
        used |= used_ids([encode(list(extra_texts), [0] * len(extra_texts), tokenizer, max_length, truncation)])
    before = len(tokenizer)
    from slimtune.models.families import family_of

    from_pad = family_of(model.config).positions_from_pad(model.config)
    model, new = prune_vocab(model, tokenizer, kept_ids(tokenizer, used, from_pad))
    return model, new, {"vocab_size": len(new), "vocab_size_before": before}


def read_extra_texts(path: str | None) -> list[str]:
    """`--vocab-extra FILE`: unlabelled in-domain texts, one per line."""
    if not path:
        return []
    try:
        return [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise SlimtuneError(f"--vocab-extra: cannot read {path} as UTF-8 text, one text per line ({exc})") from None


def used_ids(splits) -> set[int]:
    """Every id in some encoded splits (their texts tokenized by the model's own tokenizer)."""
    import numpy as np

    return {int(i) for split in splits for i in np.unique(split.input_ids.flat)}


def coverage(tokenizer, texts: list[str], max_length: int) -> dict:
    """Of some texts under a (pruned) tokenizer: the share of unknown pieces among all pieces."""
    unk = tokenizer.unk_token_id
    ids = tokenizer(list(texts), truncation=True, max_length=max_length, add_special_tokens=False)["input_ids"]
    total = sum(len(x) for x in ids)
    unknown = sum(1 for x in ids for i in x if unk is not None and i == unk)
    return {"pieces": total, "unknown_share": unknown / total if total else 0.0}
