"""Optuna's TPE and NSGA-II against random search: same space, same data, same trial budget.

    python bench/search.py --teacher runs/quickstart/teacher    # a fine-tuned MiniLM-L6 on tweets
    python bench/search.py                                      # fine-tunes that teacher first
    python bench/search.py --smoke-test                         # tiny budget, checks it runs

Each sampler runs the whole `slimtune search` (Ray Tune + Optuna) with two sampler seeds, on the
same data split (the teacher's, seed 42) and the same training rows. Every front is
scored by its hypervolume in (validation error, latency / teacher latency), both minimised, with
the fixed reference point (0.5, 1.0): chance-level error on the two-class tweets, and the
teacher's own latency. A bigger hypervolume is a better front. Latency is divided by the
teacher's latency measured in the same search, so machine noise between searches mostly cancels.
The hypervolume is Optuna's own WFG implementation. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

REFERENCE = (0.5, 1.0)


def hypervolume(front: list[dict], teacher_ms: float, accuracy_key: str = "accuracy") -> float:
    import numpy as np
    from optuna._hypervolume import compute_hypervolume  # Optuna's WFG; the module is private

    points = [(1 - r[accuracy_key], r["latency_ms"] / teacher_ms) for r in front]
    points = np.array([p for p in points if p[0] < REFERENCE[0] and p[1] < REFERENCE[1]] or [REFERENCE], float)
    return float(compute_hypervolume(points, np.array(REFERENCE, float)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default=None, help="fine-tuned teacher folder (default: fine-tune one)")
    parser.add_argument("--data", default="builtin:tweets")
    parser.add_argument("--space", default=str(Path(__file__).resolve().parents[1] / "search_spaces" / "full.py"))
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--samplers", default="random,tpe,nsga2")
    parser.add_argument("--max-train-samples", type=int, default=1000)
    parser.add_argument("--max-steps", type=int, default=None, help="cap on each trial's training steps")
    parser.add_argument("--out", default=None, help="folder for the searches (default: a temp folder)")
    parser.add_argument("--smoke-test", action="store_true")
    args = parser.parse_args()
    if args.smoke_test:
        args.trials, args.seeds, args.max_train_samples, args.max_steps = 3, "0", 200, 3

    from slimtune.data import DataSpec
    from slimtune.searching.driver import SearchSpec, run_search

    out = Path(args.out or tempfile.mkdtemp(prefix="slimtune-bench-search-"))
    teacher = args.teacher
    if teacher is None:
        from slimtune.train.finetune import FinetuneSpec, run_finetune
        from slimtune.train.loop import TrainSpec

        teacher = str(out / "teacher")
        if not (Path(teacher) / "metrics.json").exists():
            data = DataSpec(args.data, max_train_samples=2000)
            run_finetune(FinetuneSpec("builtin:minilm-l6", data, teacher, TrainSpec(epochs=1, max_steps=args.max_steps), workers=0))
    runs = []
    for sampler in args.samplers.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            folder = out / f"{sampler}-seed{seed}"
            # the data split stays the teacher's (seed 42) whatever the sampler's seed: same data for every run
            data = DataSpec(args.data, max_train_samples=args.max_train_samples, seed=42)
            summary = run_search(SearchSpec(teacher=teacher, data=data, space=args.space, out=str(folder),
                                            trials=args.trials, concurrency=args.concurrency, sampler=sampler,
                                            sampler_seed=seed, max_train_samples=args.max_train_samples,
                                            max_steps=args.max_steps, resume=folder.exists())).metrics
            t_ms = summary["teacher"]["latency_ms"]
            runs.append({"sampler": sampler, "seed": seed, "front_size": len(summary["front"]),
                         "finished": summary["trials_finished"],
                         "hypervolume": hypervolume(summary["front"], t_ms),
                         "hypervolume_test": hypervolume(summary["front"], t_ms, "test_accuracy"),
                         "best_speedup_within_3pts": max([t_ms / r["latency_ms"] for r in summary["front"]
                                                          if r["accuracy"] >= summary["teacher"]["accuracy"] - 0.03]
                                                         or [0.0]),
                         "seconds": summary["seconds"]})
            print(json.dumps(runs[-1]), file=sys.stderr)

    by = {s: [r for r in runs if r["sampler"] == s] for s in args.samplers.split(",")}
    mean = {s: statistics.mean(r["hypervolume"] for r in rs) for s, rs in by.items()}
    mean_test = {s: statistics.mean(r["hypervolume_test"] for r in rs) for s, rs in by.items()}
    print(f"\nhypervolume, (val error, latency/teacher) against reference {REFERENCE}; "
          f"{args.trials} trials each, seeds {args.seeds}", file=sys.stderr)
    print(f"{'sampler':>8} {'seeds':>20} {'mean':>8} {'/random':>8} {'mean (test acc)':>16}", file=sys.stderr)
    for s, rs in by.items():
        ratio = mean[s] / mean["random"] if mean.get("random") else float("nan")
        seeds = ", ".join(f"{r['hypervolume']:.4f}" for r in rs)
        print(f"{s:>8} {seeds:>20} {mean[s]:>8.4f} {ratio:>8.3f} "
              f"{mean_test[s]:>16.4f}", file=sys.stderr)
    print(json.dumps({"runs": runs, "mean_hypervolume": mean, "mean_hypervolume_test": mean_test,
                      "reference": REFERENCE, "trials": args.trials, "out": str(out)}))


if __name__ == "__main__":
    main()
