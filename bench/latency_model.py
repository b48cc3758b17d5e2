"""How well the latency model predicts measured latency, on random shapes.

    python bench/latency_model.py [--model builtin:minilm-l6] [--shapes 20] [--seq 128] [--threads 1]

Profiles the model (`slimtune bench --profile`), then cuts 20 random shapes from it (1 to all
layers; per layer a random number of heads and of FFN neurons), exports each to ONNX fp32 and
dynamic int8, times every file in turns in one process at batch 1, and prints predicted against
measured latency with the median and worst absolute error, ending with a JSON line.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:minilm-l6")
    parser.add_argument("--shapes", type=int, default=20)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    from slimtune.exporting.benchmark import interleaved_latency
    from slimtune.exporting.latency_model import export_both, profile
    from slimtune.models import load_classifier, load_config, resolve_model
    from slimtune.models.surgery import encoder_layers, ffn_width, keep_layers, model_layer_shape, num_heads
    from slimtune.models.surgery import prune_ffn, prune_heads

    started = time.perf_counter()
    resolved = resolve_model(args.model)
    config = load_config(resolved)
    labels = tuple(config.id2label[i] for i in range(config.num_labels)) if config.num_labels > 1 else ("a", "b")
    model = load_classifier(resolved, labels).eval()
    latency_model = profile(model, seq=args.seq, threads=args.threads)
    profile_seconds = time.perf_counter() - started

    rng = random.Random(args.seed)
    total = len(encoder_layers(model))
    heads, ffn = num_heads(encoder_layers(model)[0], model), ffn_width(encoder_layers(model)[0], model)
    shapes, files = [], {}
    with tempfile.TemporaryDirectory(prefix="slimtune-latency-model-") as tmp:
        for n in range(args.shapes):
            student = copy.deepcopy(model)
            keep_layers(student, sorted(rng.sample(range(total), rng.randint(1, total))))
            for i in range(len(encoder_layers(student))):
                prune_heads(student, i, sorted(rng.sample(range(heads), rng.randint(1, heads))))
                prune_ffn(student, i, sorted(rng.sample(range(ffn), rng.randint(ffn // 16, ffn))))
            shape = model_layer_shape(student)
            shapes.append(shape)
            for precision, path in export_both(student, Path(tmp), f"shape{n}").items():
                files[f"{n}|{precision}"] = path
        measured = interleaved_latency(files, seq=args.seq, threads=args.threads, rounds=args.rounds, per_round=10)

    rows, errors = [], {"fp32": [], "int8": []}
    print(f"{'#':>3} {'layers':>6} {'heads':>6} {'ffn':>6} {'fp32 ms':>8} {'pred':>8} {'err':>7} {'int8 ms':>8} {'pred':>8} "
          f"{'err':>7}", file=sys.stderr)
    for n, shape in enumerate(shapes):
        row = {"shape": shape}
        cells = []
        for precision in ("fp32", "int8"):
            got, want = measured[f"{n}|{precision}"], latency_model.predict(shape, precision)
            error = (want - got) / got
            errors[precision].append(abs(error))
            row[precision] = {"measured_ms": got, "predicted_ms": want, "error": error}
            cells.append(f"{got:>8.2f} {want:>8.2f} {100 * error:>+6.1f}%")
        rows.append(row)
        print(f"{n:>3} {len(shape):>6} {sum(h for h, _ in shape):>6} {sum(f for _, f in shape):>6} {' '.join(cells)}",
              file=sys.stderr)
    summary = {p: {"median_abs_error": statistics.median(e), "max_abs_error": max(e)} for p, e in errors.items()}
    for p, s in summary.items():
        print(f"{p}: median |error| {100 * s['median_abs_error']:.1f}%, worst {100 * s['max_abs_error']:.1f}% "
              f"over {args.shapes} random shapes", file=sys.stderr)
    print(f"profile took {profile_seconds:.0f} s; the whole bench {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(json.dumps({"model": args.model, "seq": args.seq, "threads": args.threads, "terms": latency_model.terms,
                      "summary": summary, "profile_seconds": profile_seconds, "rows": rows}))


if __name__ == "__main__":
    main()
