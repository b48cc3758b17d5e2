"""A BERT-base-size teacher against what a user would do without slimtune.

    python bench/big_teacher.py [--job jobs/mpnet.yaml] [--data builtin:reuters-r8] [--out runs/bench-big]

(c) runs the job (MPNet-base teacher trained to its validation plateau; the search; the winners;
    `--resume` reuses whatever an earlier run finished);
(a) MiniLM-L6 fine-tuned directly: the job's `reference`, the same rows, epochs and patience;
(b) MiniLM-L6 distilled from the job's MPNet teacher, the same rows and epochs (logits and hidden
    states; the hidden targets come from the teacher's cache).
Every bundle (fp32 and int8) is timed in turns in one process at 1 thread, batch 1, 128 tokens;
test accuracy comes from the bundles themselves. It prints them side by side, says whether a
front member (a winner after the final distillation) dominates (a) and (b), and ends with a JSON
line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", default="jobs/mpnet.yaml")
    parser.add_argument("--data", default=None, help="override the job's data source (builtin:20news, ...)")
    parser.add_argument("--out", default="runs/bench-big")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()

    import slimtune
    from slimtune.exporting.benchmark import interleaved_latency
    from slimtune.pipeline import load_job, run_job

    out = Path(args.out).resolve()
    overrides = [f"data.source={args.data}"] if args.data else []
    job = load_job(args.job, overrides, out=str(out / "job"))
    if job.reference is None:
        sys.exit(f"{args.job} names no reference model; add `reference: builtin:minilm-l6`")
    started = time.perf_counter()
    summary = run_job(job, resume=True).metrics  # reuses every stage an earlier run finished
    job_seconds = time.perf_counter() - started

    # (b): the small model distilled from the job's teacher, with the reference's budget
    teacher = job.teacher_dir
    distilled, bundle_b = out / "distilled", out / "distilled_bundle"
    data = dict(data=job.data.source, max_train_samples=job.data.max_train_samples, seed=job.data.seed)
    t = job.finetune.train
    if not (distilled / "metrics.json").exists():
        slimtune.distill(teacher=teacher, student=job.reference.model, out=str(distilled), epochs=t.epochs,
                         patience=t.patience, batch_size=t.batch_size, hidden_weight=0.5, workers=0,
                         max_length=job.finetune.max_length, **data)
    if not (bundle_b / "manifest.json").exists():
        slimtune.export(model=str(distilled), out=str(bundle_b), threads=1, seq=job.export.seq, **data)

    job_out = Path(job.out)
    bundles = {"teacher": job_out / "teacher_bundle", "(a) reference, fine-tuned": job_out / "reference_bundle",
               "(b) distilled": bundle_b}
    winners = summary["stages"]["winners"]["winners"]
    for w in winners:
        bundles[f"(c) {w['name']}"] = job_out / "winners" / w["name"]
    models = {}
    for name, folder in bundles.items():
        models[f"{name}|fp32"] = folder / "model.onnx"
        models[f"{name}|int8"] = folder / "model.int8.onnx"
    latency = interleaved_latency(models, seq=job.export.seq, threads=1, rounds=args.rounds)
    rows = {}
    for key, ms in latency.items():
        name, kind = key.split("|")
        manifest = json.loads((bundles[name] / "manifest.json").read_text())
        rows[key] = {"latency_ms": ms, "test_accuracy": manifest[f"accuracy_{kind}"], "size_mb": manifest[f"size_mb_{kind}"]}

    base = rows["teacher|fp32"]["latency_ms"]
    print(f"\n{'model':<28} {'kind':>5} {'test acc':>9} {'ms':>8} {'x teacher':>10} {'MB':>7}", file=sys.stderr)
    for key, r in rows.items():
        name, kind = key.split("|")
        print(f"{name:<28} {kind:>5} {r['test_accuracy']:>9.4f} {r['latency_ms']:>8.2f} {base / r['latency_ms']:>9.2f}x "
              f"{r['size_mb']:>7.1f}", file=sys.stderr)

    def dominated_by_front(target: str, kind: str) -> list[str]:
        ref = rows[f"{target}|{kind}"]
        return [w for w in bundles if w.startswith("(c)") and rows[f"{w}|{kind}"]["test_accuracy"] >= ref["test_accuracy"]
                and rows[f"{w}|{kind}"]["latency_ms"] <= ref["latency_ms"]]

    verdict = {f"{target}|{kind}": dominated_by_front(target, kind)
               for target in ("(a) reference, fine-tuned", "(b) distilled") for kind in ("fp32", "int8")}
    for key, members in verdict.items():
        print(f"front member at least as accurate and as fast as {key}: {', '.join(members) or 'none'}", file=sys.stderr)
    chosen = summary["winner"]
    print(f"job: {job_seconds / 60:.1f} min this run (total {summary['total_seconds'] / 60:.1f} min); chosen "
          f"{chosen['name']}: {chosen['speedup_vs_teacher_fp32']:.2f}x at {100 * chosen['accuracy_vs_teacher_fp32']:.1f}% "
          "of the teacher's test accuracy", file=sys.stderr)
    print(json.dumps({"data": job.data.source, "rows": rows, "dominated_by": verdict,
                      "teacher_epochs": len(summary["stages"]["teacher"].get("history") or []),
                      "job_total_seconds": summary["total_seconds"], "chosen": chosen}))


if __name__ == "__main__":
    main()
