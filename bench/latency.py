"""Model folders side by side: ONNX fp32 latency in turns in one process, ratios to the first.

    python bench/latency.py MODEL_DIR [MODEL_DIR ...] [--seq 128] [--threads 1] [--rounds 9]
                            [--out runs/bench-latency]

Each folder (a finetune, prune or distill output, or a model folder) is exported as a bundle
without int8 (`slimtune export`: the parity gate; no data, so no accuracy) under --out, once:
an existing bundle of the same folder is reused. Then every model is timed at batch 1 x --seq tokens, --threads
threads, one model after the other in each of --rounds rounds (`exporting.benchmark.
interleaved_latency`), so that load from other work on this shared machine falls on all alike.
Prints the medians and each model's speed-up over the first; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="model folders; the first is the one the others are compared to")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--out", default="runs/bench-latency")
    args = parser.parse_args()

    import slimtune
    from slimtune.exporting.benchmark import interleaved_latency

    if len(set(args.models)) < len(args.models):
        sys.exit("models: a folder is named twice")
    onnx = {}
    for model in args.models:
        name = Path(model).name if Path(model).name != "model" else Path(model).parent.name
        bundle = Path(args.out) / f"{len(onnx)}-{name}"
        manifest = bundle / "manifest.json"
        if manifest.exists() and json.loads(manifest.read_text()).get("source_model") != model:
            shutil.rmtree(bundle)  # an earlier run's bundle of another folder in this place
        if not manifest.exists():
            slimtune.export(model=model, out=str(bundle), int8=False, threads=args.threads, seq=args.seq)
        onnx[model] = bundle / "model.onnx"
    latency = interleaved_latency(onnx, seq=args.seq, threads=args.threads, rounds=args.rounds)
    first = latency[args.models[0]]
    for model, ms in latency.items():
        print(f"{model:<64} {ms:8.2f} ms  {first / ms:6.2f}x")
    print(json.dumps({"bench": "latency", "seq": args.seq, "threads": args.threads, "rounds": args.rounds,
                      "latency_ms": latency, "speedup_vs_first": {m: first / ms for m, ms in latency.items()}}))


if __name__ == "__main__":
    main()
