"""PyTorch eager vs ONNX Runtime fp32 vs ONNX Runtime int8, one process, interleaved rounds.

    python bench/export.py --model runs/quickstart/teacher --data builtin:tweets
    python bench/export.py --model DIR --extra-model PRUNED_DIR     # a pruned model through the same gate
    python bench/export.py --smoke-test --model DIR

Exports a bundle (parity gate, int8, test accuracy of both), then times batch 1 x sequence 128
on all three runtimes with the same threads, alternating runtimes every round so that noise on
this shared machine falls on all of them. Prints medians and ratios; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a fine-tuned model folder")
    parser.add_argument("--extra-model", default=None, help="another folder (e.g. pruned) to pass the same gate")
    parser.add_argument("--data", default="builtin:tweets")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--smoke-test", action="store_true")
    args = parser.parse_args()
    if args.smoke_test:
        args.rounds, args.per_round = 3, 3

    from slimtune.exporting.benchmark import _feed, time_calls
    from slimtune.exporting.bundle import ExportSpec, run_export
    from slimtune.exporting.runtime import make_session
    from slimtune.models import load_classifier, load_config, resolve_model

    work = Path(tempfile.mkdtemp(prefix="slimtune-bench-export-"))
    manifest = run_export(ExportSpec(args.model, str(work / "bundle"), data=args.data, seq=args.seq, threads=args.threads))
    extra = None
    if args.extra_model:
        extra = run_export(ExportSpec(args.extra_model, str(work / "bundle-extra"), data=args.data, seq=args.seq,
                                      threads=args.threads))

    resolved = resolve_model(args.model)
    config = load_config(resolved)
    model = load_classifier(resolved, tuple(config.id2label[i] for i in range(config.num_labels))).eval()
    torch.set_num_threads(args.threads)
    fp32 = make_session(work / "bundle" / "model.onnx", args.threads)
    int8 = make_session(work / "bundle" / "model.int8.onnx", args.threads)
    feed = _feed(1, args.seq)
    tensors = {k: torch.from_numpy(v) for k, v in feed.items()}

    def eager(_):
        with torch.inference_mode():
            return model(**tensors).logits

    runs = {"pytorch_eager": eager, "ort_fp32": lambda f: fp32.run(["logits"], f), "ort_int8": lambda f: int8.run(["logits"], f)}
    samples = {name: [] for name in runs}
    for name, run in runs.items():
        time_calls(run, feed, warmup=5, iters=1)
    for _ in range(args.rounds):
        for name, run in runs.items():
            samples[name].append(statistics.median(time_calls(run, feed, warmup=0, iters=args.per_round)))
    ms = {name: statistics.median(v) for name, v in samples.items()}
    report = {
        "bench": "export",
        "model": args.model,
        "seq": args.seq,
        "threads": args.threads,
        "parity_max_abs_diff": manifest["parity_max_abs_diff"],
        "accuracy_fp32": manifest["accuracy_fp32"],
        "accuracy_int8": manifest["accuracy_int8"],
        "int8_accuracy_drop_points": 100 * (manifest["accuracy_fp32"] - manifest["accuracy_int8"]),
        "graph": manifest["graph"],
        "fusions": manifest["fusions"],
        "latency_ms_p50": ms,
        "ort_fp32_over_eager_speedup": ms["pytorch_eager"] / ms["ort_fp32"],
        "int8_over_fp32_speedup": ms["ort_fp32"] / ms["ort_int8"],
        "size_mb_fp32": manifest["size_mb_fp32"],
        "size_mb_int8": manifest["size_mb_int8"],
        "extra_model": None if extra is None else {
            "model": args.extra_model, "parity_max_abs_diff": extra["parity_max_abs_diff"],
            "accuracy_fp32": extra["accuracy_fp32"], "accuracy_int8": extra["accuracy_int8"],
            "latency_ms_p50_fp32": extra["latency_ms_p50_fp32"], "latency_ms_p50_int8": extra["latency_ms_p50_int8"]},
    }
    print(f"parity max |logit diff| {report['parity_max_abs_diff']:.2e}; test accuracy fp32 "
          f"{report['accuracy_fp32']:.4f}, int8 {report['accuracy_int8']:.4f}", file=sys.stderr)
    for name in runs:
        print(f"{name:>14}: {ms[name]:7.2f} ms  (batch 1, seq {args.seq}, {args.threads} threads)", file=sys.stderr)
    print(f"ONNX fp32 vs PyTorch eager: {report['ort_fp32_over_eager_speedup']:.2f}x faster; "
          f"int8 vs fp32: {report['int8_over_fp32_speedup']:.2f}x faster", file=sys.stderr)
    if extra:
        print(f"extra model: parity {extra['parity_max_abs_diff']:.2e}, accuracy fp32 {extra['accuracy_fp32']:.4f} "
              f"int8 {extra['accuracy_int8']:.4f}", file=sys.stderr)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
