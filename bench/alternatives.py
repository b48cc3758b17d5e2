"""The quickstart job against what a user would do without slimtune, on three data sets.

    python bench/alternatives.py [--job jobs/quickstart.yaml] [--datasets tweets,comp5,reuters-r8]
                                 [--seeds 1,2] [--out runs/bench-alternatives] [--set key=value ...]

For each data set and seed it runs the job with only the data source (and the seed) changed:
`tweets` (builtin:tweets), `comp5` (the five computer newsgroups of builtin:20news, as
bench/learned.py builds them) and `reuters-r8` (builtin:reuters-r8). Each job fits its own
alternatives on the rows its winners train on: a linear TF-IDF model, the teacher in fp32 and int8
(and a small model fine-tuned directly when the teacher is not one). `--resume` semantics: a job
that finished is read back (with `--rejudge`, resumed: the winners are picked and the winner chosen
again by the current rule; only a trial it newly picks is distilled and exported, and then every
bundle is timed again in turns), one that stopped continues. Figures come from each job's summary.json:
test accuracy (the bundles' own, on the same test split), macro-F1, latency from text to label
(batch 1, tokenizer included, timed in turns within the job) and the bundle's size. Printed per
data set: each model's mean test accuracy over the seeds and each seed's, whether the chosen
winner's mean is at least the linear model's, and its fp32 speed-up over the teacher (fixed shape,
as the job reports it); then a JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

SOURCES = {"tweets": "builtin:tweets", "reuters-r8": "builtin:reuters-r8", "20news": "builtin:20news"}


def source(name: str, out: Path) -> str:
    if name == "comp5":
        sys.path.insert(0, str(Path(__file__).parent))
        from learned import hard_subset

        out.mkdir(parents=True, exist_ok=True)
        return str(hard_subset(out))
    if name not in SOURCES:
        sys.exit(f"--datasets: unknown {name!r}; known: comp5, {', '.join(SOURCES)}")
    return SOURCES[name]


def rows_of(summary: dict) -> dict[str, dict]:
    """Model name -> its figures in one job: the chosen winner (fp32, int8) and every alternative."""
    w = summary["winner"]
    rows = {"winner/fp32": {"test_accuracy": w["test_accuracy"], "f1_macro": w["f1_macro"],
                            "latency_ms": w["latency_ms_text"], "size_mb": w["bundle_mb"],
                            "speedup": w["speedup_vs_teacher_fp32"]}}
    if w.get("int8"):
        i = w["int8"]
        rows["winner/int8"] = {"test_accuracy": i["test_accuracy"], "f1_macro": i["f1_macro"],
                               "latency_ms": i["latency_ms_text"], "size_mb": i["bundle_mb"],
                               "speedup": i["speedup_vs_teacher_fp32"]}
    for a in summary["alternatives"]:
        rows[a["name"]] = {k: a[k] for k in ("test_accuracy", "f1_macro", "latency_ms", "size_mb")}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", default="jobs/quickstart.yaml")
    parser.add_argument("--datasets", default="tweets,comp5,reuters-r8")
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--out", default="runs/bench-alternatives")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a job override, for every run")
    parser.add_argument("--rejudge", action="store_true",
                        help="resume finished jobs too: the winners are picked and the winner chosen and judged again "
                             "by the current code (after a change to the winner rule); a newly picked trial is distilled")
    args = parser.parse_args()

    from slimtune.pipeline import load_job, run_job

    out = Path(args.out).resolve()
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.perf_counter()
    results = {}
    for name in args.datasets.split(","):
        per_seed = []
        for seed in seeds:
            folder = out / f"{name}-s{seed}"
            summary_path = folder / "summary.json"
            done = summary_path.exists() and "total_seconds" in json.loads(summary_path.read_text())
            timings = folder / "timings.json"  # the job's own stage times, kept when --rejudge resumes it
            if done and not timings.exists():
                first = json.loads(summary_path.read_text())
                timings.write_text(json.dumps({k: first[k] for k in ("seconds", "total_seconds")}) + "\n")
            if not done or args.rejudge:
                job = load_job(args.job, [f"data.source={source(name, out)}", f"data.seed={seed}", *args.set],
                               out=str(folder))
                run_job(job, resume=folder.exists())
            if not timings.exists():
                first = json.loads(summary_path.read_text())
                timings.write_text(json.dumps({k: first[k] for k in ("seconds", "total_seconds")}) + "\n")
            summary = json.loads(summary_path.read_text()) | json.loads(timings.read_text())
            per_seed.append((summary, rows_of(summary)))
        results[name] = per_seed

    report = {}
    for name, per_seed in results.items():
        models = sorted(set.intersection(*(set(rows) for _, rows in per_seed)),
                        key=lambda m: -statistics.mean(rows[m]["test_accuracy"] for _, rows in per_seed))
        print(f"\n{name}: {len(per_seed)} seed(s); test accuracy mean (per seed), macro-F1 mean, ms from text "
              "(median), MB")
        table = {}
        for m in models:
            accs = [rows[m]["test_accuracy"] for _, rows in per_seed]
            table[m] = {"test_accuracy_mean": statistics.mean(accs), "test_accuracy": accs,
                        "f1_macro_mean": statistics.mean(rows[m]["f1_macro"] for _, rows in per_seed),
                        "latency_ms": statistics.median(rows[m]["latency_ms"] for _, rows in per_seed),
                        "size_mb": statistics.median(rows[m]["size_mb"] for _, rows in per_seed)}
            t = table[m]
            print(f"  {m:>16}  {t['test_accuracy_mean']:.4f} ({', '.join(f'{a:.4f}' for a in accs)})  "
                  f"F1 {t['f1_macro_mean']:.4f}  {t['latency_ms']:7.2f} ms  {t['size_mb']:6.1f} MB")
        winner, linear = table["winner/fp32"], table.get("linear")
        speedups = [rows["winner/fp32"]["speedup"] for _, rows in per_seed]
        verdicts = [s["winner"].get("notes", []) for s, _ in per_seed]
        print(f"  chosen winner: {', '.join(s['winner']['name'] for s, _ in per_seed)}; fp32 speed-up over the teacher "
              f"{', '.join(f'{x:.2f}x' for x in speedups)}"
              + (f"; mean test accuracy {'at least' if winner['test_accuracy_mean'] >= linear['test_accuracy_mean'] else 'BELOW'} "
                 f"the linear model's ({winner['test_accuracy_mean']:.4f} against {linear['test_accuracy_mean']:.4f})"
                 if linear else ""))
        for seed, notes in zip(seeds, verdicts):
            for line in notes:
                print(f"  seed {seed}: {line}")
        report[name] = {"models": table, "speedup_fp32": speedups,
                        "winner_at_least_linear": bool(linear) and winner["test_accuracy_mean"] >= linear["test_accuracy_mean"],
                        "job_seconds": [s["total_seconds"] for s, _ in per_seed], "notes": verdicts}
    print(f"\nwall time {time.perf_counter() - started:.0f} s")
    print(json.dumps({"bench": "alternatives", "job": args.job, "seeds": seeds, "results": report}))


if __name__ == "__main__":
    main()
