"""Does the search rank students as the final distillation does? Every trial of a finished job,
distilled again with the winners' budget.

    python bench/final_gain.py [--job jobs/quickstart.yaml] [--datasets tweets] [--seeds 1,2]
                               [--out runs/bench-alternatives]

For each job folder `bench/alternatives.py` left with the same options, every finished search
trial (its knobs from Tune's params.json) is distilled as the winners stage distils a winner (every
labelled row and transfer text, `winners.epochs`, the same code: `pipeline._winners_stage`), into
OUT/<data set>-s<seed>/gain/final/trial-<id>/ (skipped when there already: a killed run resumes).
Printed per job, deepest first: the trial's shape, its search validation accuracy and latency (the
search's fixed shape), then its final validation and test accuracy, and which trials the job
picked and chose. The search trains each trial on a sample of the rows for 1-2 epochs: if the
final ranking differs, picking the winners by the search's accuracy misses the best student. Each
job ends with the rank correlation of the two validation accuracies; then a JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path


def trials(folder: Path) -> list[dict]:
    """Finished trials: knobs (Tune's params.json) joined with the search's figures (trials.csv)."""
    rows = {r["trial_id"]: r for r in csv.DictReader((folder / "search" / "trials.csv").open())
            if r["status"] == "finished"}
    found = []
    for params in sorted((folder / "search" / "tune" / "search").glob("_trainable_*/params.json")):
        trial_id = params.parent.name.split("_")[2]
        if trial_id in rows:
            found.append({**json.loads(params.read_text()), "trial_id": trial_id,
                          "search_accuracy": float(rows[trial_id]["accuracy"]),
                          "search_latency_ms": float(rows[trial_id]["latency_ms"])})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", default="jobs/quickstart.yaml")
    parser.add_argument("--datasets", default="tweets")
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--out", default="runs/bench-alternatives")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).parent))
    from alternatives import source

    from slimtune.data import load_data
    from slimtune.pipeline import Winner, _winners_stage, load_job

    out = Path(args.out).resolve()
    started = time.perf_counter()
    report = {}
    for name in args.datasets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            folder = out / f"{name}-s{seed}"
            summary_path = folder / "summary.json"
            if not summary_path.exists() or "total_seconds" not in json.loads(summary_path.read_text()):
                sys.exit(f"{folder}: no finished job; run `python bench/alternatives.py --datasets {name} "
                         f"--seeds {seed} --out {args.out}` first")
            summary = json.loads(summary_path.read_text())
            job = load_job(args.job, [f"data.source={source(name, out)}", f"data.seed={seed}"], out=str(folder))
            data = load_data(job.data)
            rows = trials(folder)
            winners = [Winner(f"trial-{r['trial_id']}", r["trial_id"], "bench", r) for r in rows]
            _winners_stage(job, data, winners, folder / "gain")
            stage = summary["stages"]["winners"]
            picked = {w["trial_id"]: w["name"] for w in stage["winners"]}
            chosen = next(w["trial_id"] for w in stage["winners"] if w["name"] == stage["chosen"])
            table = []
            print(f"\n{name}, seed {seed}: search (validation, ms at the fixed shape) -> final (validation, test)")
            for w in sorted(winners, key=lambda w: (-(w.search["layers"] or 0), w.search["search_latency_ms"])):
                s, f = w.search, w.final
                mark = picked.get(w.trial_id, "") + (" (chosen)" if w.trial_id == chosen else "")
                print(f"  {s['layers']} layers, heads {s['heads']}, FFN {s['ffn']}, {s['epochs']} epoch(s): "
                      f"{s['search_accuracy']:.4f}, {s['search_latency_ms']:6.2f} ms -> {f['accuracy']:.4f}, "
                      f"{f['test_accuracy']:.4f}  {mark}")
                table.append({"trial_id": w.trial_id, "layers": s["layers"], "heads": s["heads"], "ffn": s["ffn"],
                              "search_accuracy": s["search_accuracy"], "search_latency_ms": s["search_latency_ms"],
                              "final_accuracy": f["accuracy"], "final_test_accuracy": f["test_accuracy"],
                              "mark": mark})
            from scipy.stats import spearmanr

            rho = (float(spearmanr([r["search_accuracy"] for r in table], [r["final_accuracy"] for r in table]).statistic)
                   if len(table) > 2 else float("nan"))  # nan too when either side is constant
            print(f"  rank correlation (Spearman) of search and final validation accuracy: {rho:.2f}")
            report[f"{name}-s{seed}"] = {"trials": table, "spearman": rho}
    print(f"\nwall time {time.perf_counter() - started:.0f} s")
    print(json.dumps({"bench": "final_gain", "job": args.job, "results": report}))


if __name__ == "__main__":
    main()
