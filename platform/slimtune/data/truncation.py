"""How a text longer than the model's length is cut: one implementation, for training and for the
torch-free runtime (this module imports `tokenizers` alone, and only its objects pass through).

- `head`: the first tokens (the tokenizer's own truncation);
- `head_tail`: the first quarter of the budget and the last three quarters (Sun et al. 2019, "How to
  Fine-Tune BERT for Text Classification?": head+tail beat head-only and tail-only on long IMDb and
  Yelp reviews; their best split kept 128 head and 382 tail tokens of 510). `tokenizers` has no such
  mode, so the text is encoded whole without special tokens, cut, and the tokenizer's own special
  tokens ([CLS] ... [SEP], <s> ... </s>) are put around it as its post-processor would.
"""

from __future__ import annotations

TRUNCATIONS = ("head", "head_tail")
HEAD_SHARE = 0.25
"""Share of the token budget kept from the start of a long text under head_tail."""


def backend(tokenizer):
    """The `tokenizers.Tokenizer` under a transformers fast tokenizer, or the object itself."""
    return getattr(tokenizer, "backend_tokenizer", tokenizer)


def _frame(tok) -> tuple[list[int], list[int]]:
    """(ids before the text, ids after it) that the post-processor adds to a single text."""
    plain = tok.encode("a", add_special_tokens=False).ids
    full = tok.encode("a", add_special_tokens=True).ids
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return full[:start], full[start + len(plain):]
    raise ValueError("cannot find where this tokenizer puts the text between its special tokens")


def head_tail_ids(body: list[int], budget: int) -> list[int]:
    """`body` when it fits in `budget`, else its first HEAD_SHARE and last the rest of the budget."""
    if len(body) <= budget:
        return body
    head = int(budget * HEAD_SHARE)
    return body[:head] + body[len(body) - (budget - head):]


def encode_ids(tokenizer, texts: list[str], max_length: int, truncation: str = "head") -> list[list[int]]:
    """Token ids of each text, special tokens included, at most `max_length` of them."""
    if truncation not in TRUNCATIONS:
        raise ValueError(f"truncation: {' or '.join(TRUNCATIONS)}, not {truncation!r}")
    tok = backend(tokenizer)
    if truncation == "head":
        tok.enable_truncation(max_length)
        return [e.ids for e in tok.encode_batch(list(texts))]
    tok.no_truncation()
    tok.no_padding()  # a transformers tokenizer may have left its last call's padding on
    before, after = _frame(tok)
    budget = max_length - len(before) - len(after)
    return [before + head_tail_ids(e.ids, budget) + after for e in tok.encode_batch(list(texts), add_special_tokens=False)]
