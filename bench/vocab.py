"""Vocabulary pruning on a real model: the same student with and without `--vocab data`.

    python bench/vocab.py --teacher runs/quickstart/teacher [--data builtin:tweets]

Both students are pruned from the same teacher to the same shape (2 layers, 75% of heads and 25%
of FFN neurons removed by default), distilled with the same seeds and rows, and exported with
int8; it prints test accuracy and bundle sizes side by side, checks that the ORT-format model
predicts exactly as the int8 ONNX model on the test texts, and ends with a JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--data", default="builtin:tweets")
    parser.add_argument("--max-train-samples", type=int, default=2000)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=float, default=0.75)
    parser.add_argument("--ffn", type=float, default=0.25)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import numpy as np

    import slimtune
    from slimtune.data import DataSpec, load_data
    from slimtune.exporting.runtime import Bundle

    out = Path(args.out or tempfile.mkdtemp(prefix="slimtune-bench-vocab-"))
    common = dict(data=args.data, max_train_samples=args.max_train_samples, seed=42)
    rows = {}
    for vocab in ("full", "data"):
        folder = out / vocab
        pruned = slimtune.prune(model=args.teacher, out=str(folder / "pruned"), layers=args.layers, heads=args.heads,
                                ffn=args.ffn, vocab=vocab, **common)
        student = slimtune.distill(teacher=args.teacher, student=str(folder / "pruned"), out=str(folder / "student"),
                                   epochs=args.epochs, workers=0, **common)
        bundle = slimtune.export(model=str(folder / "student"), out=str(folder / "bundle"), threads=1, **common)
        m = bundle.metrics
        rows[vocab] = {"vocab_size": m["vocab_size"], "test_accuracy_fp32": m["accuracy_fp32"],
                       "test_accuracy_int8": m["accuracy_int8"], "size_mb_fp32": m["size_mb_fp32"],
                       "size_mb_int8": m["size_mb_int8"], "size_mb_ort": m.get("size_mb_ort"),
                       "test_unknown_share": pruned.metrics.get("test_unknown_share"),
                       "student_test_accuracy": student.metrics["accuracy"], "bundle": bundle.path}
    data = load_data(DataSpec(args.data, max_train_samples=args.max_train_samples, seed=42))
    texts = list(data.test["text"])
    small = Path(rows["data"]["bundle"])
    int8 = Bundle(small, int8=True).logits(texts)
    ort = Bundle(small, ort_format=True).logits(texts)
    rows["data"]["ort_same_predictions"] = bool((int8.argmax(-1) == ort.argmax(-1)).all())
    rows["data"]["ort_max_abs_diff"] = float(np.abs(int8 - ort).max())

    full, pruned = rows["full"], rows["data"]
    print(f"{'':>22} {'full vocab':>12} {'data vocab':>12} {'ratio':>7}", file=sys.stderr)
    for key in ("vocab_size", "size_mb_fp32", "size_mb_int8", "test_accuracy_fp32", "test_accuracy_int8"):
        ratio = full[key] / pruned[key] if pruned[key] else float("nan")
        print(f"{key:>22} {full[key]:>12.4f} {pruned[key]:>12.4f} {ratio:>7.2f}", file=sys.stderr)
    print(f"test pieces unknown after pruning: {100 * pruned['test_unknown_share']:.2f}%; ORT format == int8 ONNX on "
          f"{len(texts)} test texts: {pruned['ort_same_predictions']} (max |diff| {pruned['ort_max_abs_diff']:.1e})",
          file=sys.stderr)
    print(json.dumps({"full": full, "data": pruned, "int8_size_ratio": full["size_mb_int8"] / pruned["size_mb_int8"],
                      "accuracy_points_lost_int8": 100 * (full["test_accuracy_int8"] - pruned["test_accuracy_int8"])}))


if __name__ == "__main__":
    main()
