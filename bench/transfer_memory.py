"""Memory a transfer set takes once encoded: 100,000 texts (20news training texts repeated),
MiniLM-L6's tokenizer, at 128 and 256 tokens; Python's own allocations (tracemalloc).

    python bench/transfer_memory.py [--texts 100000]
"""

from __future__ import annotations

import argparse
import tracemalloc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=100_000)
    args = parser.parse_args()

    from slimtune.data import DataSpec, load_data
    from slimtune.data.tokenize import UNLABELED, encode
    from slimtune.models import load_tokenizer, resolve_model

    source = list(load_data(DataSpec("builtin:20news")).train["text"])
    texts = (source * (args.texts // len(source) + 1))[: args.texts]
    tokenizer = load_tokenizer(resolve_model("builtin:minilm-l6"))
    for length in (128, 256):
        tracemalloc.start()
        split = encode(texts, [UNLABELED] * len(texts), tokenizer, length)
        held, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        tokens = sum(map(len, split.input_ids)) / len(texts)
        print(f"{length} tokens: {len(texts):,} texts of {tokens:.0f} tokens on average hold {held / 1e6:.0f} MB "
              f"(peak {peak / 1e6:.0f} MB while encoding); logits add 4 bytes per label per text")
        del split


if __name__ == "__main__":
    main()
