"""How many tokens a model reads per text, when the user does not say.

A fine-tuned slimtune model keeps the length it was trained at (its students must read what it
read); otherwise the length is picked from the data: the one that covers COVERAGE of the training
texts, rounded up to a multiple of 8, capped by the model's positions and, on a CPU, by CPU_CAP
(attention's cost grows with the square of the length, and a laptop pays it on every step).
"""

from __future__ import annotations

import math
import random

from dataclasses import replace

from slimtune import log

COVERAGE = 0.95
CPU_CAP = 256
SAMPLE = 2000
"""Training texts tokenized to pick the length: enough for a 95th percentile, seconds at most."""


def token_lengths(texts: list[str], tokenizer, seed: int = 0) -> list[int]:
    """Untruncated token counts (special tokens included) of a seeded sample of `texts`."""
    sample = list(texts) if len(texts) <= SAMPLE else random.Random(seed).sample(list(texts), SAMPLE)
    return sorted(len(ids) for ids in tokenizer(sample, add_special_tokens=True)["input_ids"])


def inherit_truncation(data, model_dir: str):
    """`data` with its truncation: as the user set it, else as `model_dir` was trained (slimtune.json),
    else head. A student reads texts cut as its teacher read them, unless told otherwise."""
    if data.truncation is not None:
        return data
    from slimtune.models.load import read_model_info

    return replace(data, truncation=read_model_info(model_dir).get("truncation", "head"))


def resolve_max_length(requested: int | None, model_dir: str, data, tokenizer, config, on_gpu: bool = False) -> int:
    """`requested`; else the length `model_dir` was fine-tuned at (slimtune.json); else picked from
    the training texts. Logs the choice and the share of training texts it cuts."""
    from slimtune.models.families import family_of
    from slimtune.models.load import read_model_info

    lengths = token_lengths(list(data.train["text"]), tokenizer)
    positions = family_of(config).usable_positions(config)
    if requested is not None:
        length, why = requested, "as set"
    elif read_model_info(model_dir).get("max_length"):
        length, why = int(read_model_info(model_dir)["max_length"]), f"as {model_dir} was trained"
    else:
        want = lengths[max(0, math.ceil(COVERAGE * len(lengths)) - 1)] if lengths else 8
        caps = [positions] + ([] if on_gpu else [CPU_CAP])
        length = max(8, min([8 * math.ceil(want / 8)] + caps))
        why = (f"covers {COVERAGE:.0%} of the training texts" if length >= want else
               f"capped by {'the model' if length == positions else 'the CPU default'}; {want} would cover "
               f"{COVERAGE:.0%}") + "; set --max-length to choose"
    cut = sum(n > length for n in lengths) / max(1, len(lengths))
    log.info(f"max_length {length} ({why}): {cut:.1%} of the training texts are longer and cut "
             f"({getattr(data, 'truncation', None) or 'head'})")
    return length
