"""A BERT-base-size teacher against what a user would do without slimtune.

    python bench/big_teacher.py [--job jobs/mpnet.yaml] [--data SOURCE] [--seeds 1,2]
                                [--set key=value ...] [--out runs/bench-big] [--rounds 9]
                                [--arms transfer,labelled,blend]

For the job's data (`--data builtin:20news` for the 20 newsgroups) and each seed (`data.seed`: which
rows are labelled, which are held out; default the job's own):
(c) runs the job (MPNet-base teacher trained to its validation plateau; the search; the winners),
    resuming whatever an earlier run of the same command finished;
(a) MiniLM-L6 fine-tuned directly: the job's `reference`, the same labelled rows, epochs and patience;
(b) MiniLM-L6 distilled from the job's MPNet teacher with the reference's budget (logits and hidden
    states), once on the labelled rows plus the job's transfer set (its other training texts, labels
    hidden, and `data.unlabeled`) and once on the labelled rows alone: what the transfer set adds;
    where the job's linear model teaches beside MPNet (`alternatives.teach`, auto: on 20news it
    does), a third time with it, as the job's own students learn (`--arms` picks among the three).
Every bundle (fp32 and int8) is timed in turns in one process at 1 thread, batch 1, the export's
length; test accuracy comes from the bundles themselves, but for the job's teacher and reference
fp32 bundles, whose figures are their fine-tuning's test pass (manifest `test_fp32_from`). Per seed it prints them side by side, the
search's front, whether a winner dominates (a) and (b), and the linear TF-IDF model beside the
chosen winner (both timed from text by the job's compare stage); then, over the seeds, the chosen
winner's mean test accuracy against (a)'s and the linear model's, its speed-up over the teacher,
and a JSON line.

The harder data set is the 20 newsgroups with MPNet at 1e-4 (at the job's 5e-5 its 189 steps
underfit 20 classes; the reference keeps its own width's rate, 2e-4):
    python bench/big_teacher.py --data builtin:20news --seeds 42,43 --set finetune.lr=1e-4 \
                                --out runs/bench-big-20news-lr1e-4
(README's figures: with `--arms transfer,labelled`, the jobs resumed from finished runs.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

DIRECT, DISTILLED, LABELLED_ONLY = "(a) reference, fine-tuned", "(b) distilled", "(b) distilled, labelled only"
BLENDED = "(b) distilled, + linear teacher"


def run_seed(args, seed: int | None, folder: Path) -> dict:
    """One job and the distilled references `--arms` asks for, timed together; the rows and the chosen winner."""
    import slimtune
    from slimtune.exporting.benchmark import interleaved_latency
    from slimtune.pipeline import load_job, run_job

    overrides = [f"data.source={args.data}"] if args.data else []
    overrides += [f"data.seed={seed}"] if seed is not None else []
    job = load_job(args.job, overrides + args.set, out=str(folder / "job"))
    if job.reference is None:
        sys.exit(f"{args.job} names no reference model; add `reference: builtin:minilm-l6`")
    started = time.perf_counter()
    summary = run_job(job, resume=True).metrics  # reuses every stage an earlier run finished
    job_seconds = time.perf_counter() - started

    d, t = job.data, job.finetune.train
    bundles = {"teacher": Path(job.out) / "teacher_bundle", DIRECT: Path(job.out) / "reference_bundle"}
    arms = [(DISTILLED, "distilled", d.max_unlabeled_samples, None, "transfer"),
            (LABELLED_ONLY, "distilled-labelled", 0, None, "labelled")]
    if summary["stages"].get("alternatives", {}).get("teach", {}).get("on"):  # what the job's students learned from
        arms.append((BLENDED, "distilled-blend", d.max_unlabeled_samples, str(Path(job.out) / "alternatives" / "linear"),
                     "blend"))
    if "blend" in args.arms and not any(arm[4] == "blend" for arm in arms):
        print("--arms blend: the job's students had no linear teacher (alternatives.teach), so neither has this arm",
              file=sys.stderr)
    arms = [arm[:4] for arm in arms if arm[4] in args.arms]
    for name, tag, transfer, linear in arms:
        model, bundle = folder / tag, folder / f"{tag}_bundle"
        if not (model / "metrics.json").exists():  # the job's data section, the transfer set as the arm says
            slimtune.distill(teacher=job.teacher_dir, student=job.reference.model, out=str(model), epochs=t.epochs,
                             patience=t.patience, batch_size=t.batch_size, hidden_weight=0.5, workers=0,
                             max_length=job.finetune.max_length, data=d, max_unlabeled_samples=transfer,
                             linear_teacher=linear)
        if not (bundle / "manifest.json").exists():
            slimtune.export(model=str(model), out=str(bundle), threads=1, seq=job.export.seq, data=d)
        bundles[name] = bundle
    for w in summary["stages"]["winners"]["winners"]:
        bundles[f"(c) {w['name']}"] = Path(job.out) / "winners" / w["name"]

    models = {f"{name}|{kind}": bundle / f"model{'.int8' if kind == 'int8' else ''}.onnx"
              for name, bundle in bundles.items() for kind in ("fp32", "int8")}
    latency = interleaved_latency(models, seq=job.export.seq, threads=1, rounds=args.rounds)
    rows = {}
    for key, ms in latency.items():
        name, kind = key.split("|")
        manifest = json.loads((bundles[name] / "manifest.json").read_text())
        rows[key] = {"latency_ms": ms, "test_accuracy": manifest[f"accuracy_{kind}"], "size_mb": manifest[f"size_mb_{kind}"]}

    base = rows["teacher|fp32"]["latency_ms"]
    print(f"\nseed {d.seed}: {summary['data']['train_rows']} labelled rows, transfer set "
          f"{summary['data']['unlabeled_rows']} texts, test {summary['data']['test_rows']}", file=sys.stderr)
    print(f"{'model':<32} {'kind':>5} {'test acc':>9} {'ms':>8} {'x teacher':>10} {'MB':>7}", file=sys.stderr)
    for key, r in rows.items():
        name, kind = key.split("|")
        print(f"{name:<32} {kind:>5} {r['test_accuracy']:>9.4f} {r['latency_ms']:>8.2f} {base / r['latency_ms']:>9.2f}x "
              f"{r['size_mb']:>7.1f}", file=sys.stderr)

    pareto = json.loads((Path(job.out) / "search" / "pareto.json").read_text())
    print("the search's front (validation accuracy after the trial's short run, fixed-shape latency):", file=sys.stderr)
    front = [{k: m.get(k) for k in ("trial_id", "base", "layers", "heads", "ffn", "hidden", "epochs", "accuracy",
                                     "latency_ms", "speedup_vs_teacher")} for m in pareto["front"]]
    for m in front:
        base_name = "small" if m["base"] not in (None, "teacher") else "teacher"
        print(f"  {m['trial_id']}  {base_name:<7} layers {m['layers']}  cut heads {m['heads']}, ffn {m['ffn']}, "
              f"hidden {m['hidden']}  val {m['accuracy']:.4f}  {m['speedup_vs_teacher'] or 0:.1f}x", file=sys.stderr)

    def dominated_by_front(target: str, kind: str) -> list[str]:
        ref = rows[f"{target}|{kind}"]
        return [w for w in bundles if w.startswith("(c)") and rows[f"{w}|{kind}"]["test_accuracy"] >= ref["test_accuracy"]
                and rows[f"{w}|{kind}"]["latency_ms"] <= ref["latency_ms"]]

    verdict = {f"{target}|{kind}": dominated_by_front(target, kind)
               for target in (DIRECT, DISTILLED, LABELLED_ONLY, BLENDED) if target in bundles for kind in ("fp32", "int8")}
    for key, members in verdict.items():
        print(f"winner at least as accurate and as fast as {key}: {', '.join(members) or 'none'}", file=sys.stderr)
    chosen = summary["winner"]
    # the user's cheapest alternative, timed by the job's compare stage from text to label (tokenizing
    # included, as it is for the linear model's TF-IDF), beside the chosen winner timed the same way
    linear = next((a for a in summary["alternatives"] if a["kind"] == "linear"), None)
    if linear:
        print(f"from text to label (the job's compare stage): linear TF-IDF test {linear['test_accuracy']:.4f} at "
              f"{linear['latency_ms']:.2f} ms, {linear['size_mb']:.1f} MB; chosen {chosen['name']} "
              f"{chosen['test_accuracy']:.4f} at {chosen['latency_ms_text']:.2f} ms", file=sys.stderr)
    total = summary["total_seconds_all_runs"]  # with the stages of the runs a resume skipped
    before = f" ({total / 60:.1f} min with the runs before)" if summary["seconds_all_runs"] != summary["seconds"] else ""
    print(f"job: {job_seconds / 60:.1f} min this run{before}; chosen "
          f"{chosen['name']}: {chosen['speedup_vs_teacher_fp32']:.2f}x at {100 * chosen['accuracy_vs_teacher_fp32']:.1f}% "
          "of the teacher's test accuracy", file=sys.stderr)
    return {"seed": d.seed, "rows": rows, "dominated_by": verdict, "front": front,
            "data": summary["data"], "teacher_epochs": len(summary["stages"]["teacher"].get("history") or []),
            "job_seconds_all_runs": total, "chosen": chosen,
            "chosen_test_accuracy": rows[f"(c) {chosen['name']}|fp32"]["test_accuracy"],
            "linear": linear and {k: linear[k] for k in ("test_accuracy", "latency_ms", "size_mb")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", default="jobs/mpnet.yaml")
    parser.add_argument("--data", default=None, help="override the job's data source (builtin:20news, ...)")
    parser.add_argument("--seeds", default=None, help="data seeds, comma-separated (default: the job's data.seed)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a job override, for every seed")
    parser.add_argument("--out", default="runs/bench-big")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--arms", default="transfer,labelled,blend",
                        help="which (b) arms: transfer (with the transfer set), labelled (without), blend (with the "
                             "linear teacher too, where the job's students had it); on 20news on 2 cores transfer and "
                             "blend take about 25 min a seed each (the job cached the teacher's logits), labelled 5")
    args = parser.parse_args()
    args.arms = {arm.strip() for arm in args.arms.split(",") if arm.strip()}
    unknown = args.arms - {"transfer", "labelled", "blend"}
    if unknown:
        parser.error(f"--arms: {', '.join(sorted(unknown))} unknown; pick from transfer, labelled, blend")

    out = Path(args.out).resolve()
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [None]
    results = [run_seed(args, seed, out / f"seed-{seed}" if seed is not None else out) for seed in seeds]

    def mean(key: str) -> float:
        return statistics.mean(r["rows"][key]["test_accuracy"] for r in results)

    def mean_of(name: str) -> str:  # an arm's mean, where every seed ran it
        return (f", {name} {statistics.mean(r['rows'][f'{name}|fp32']['test_accuracy'] for r in results):.4f}"
                if all(f"{name}|fp32" in r["rows"] for r in results) else "")

    chosen = statistics.mean(r["chosen_test_accuracy"] for r in results)
    gain = 100 * (chosen - mean(f"{DIRECT}|fp32"))
    speedups = [r["chosen"]["speedup_vs_teacher_fp32"] for r in results]
    linear = (f", linear TF-IDF {statistics.mean(r['linear']['test_accuracy'] for r in results):.4f}"
              if all(r["linear"] for r in results) else "")
    print(f"\nover {len(results)} seed(s), test accuracy: teacher {mean('teacher|fp32'):.4f}, {DIRECT} "
          f"{mean(f'{DIRECT}|fp32'):.4f}{mean_of(DISTILLED)}{mean_of(LABELLED_ONLY)}{mean_of(BLENDED)}{linear}, "
          f"the chosen winner {chosen:.4f} ({gain:+.2f} points "
          f"over {DIRECT}); "
          f"its fp32 speed-up over the teacher {', '.join(f'{x:.2f}x' for x in speedups)}; jobs (all runs) "
          f"{', '.join(str(round(r['job_seconds_all_runs'] / 60)) for r in results)} min", file=sys.stderr)
    print(json.dumps({"bench": "big_teacher", "job": args.job, "data": args.data, "set": args.set,
                      "arms": sorted(args.arms),
                      "chosen_test_accuracy_mean": chosen, "points_over_direct": gain, "speedup_fp32": speedups,
                      "seeds": results}))


if __name__ == "__main__":
    main()
