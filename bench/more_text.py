"""What more text buys: labelled rows, unlabelled rows (a transfer set), longer inputs.

    python bench/more_text.py [--data builtin:20news] [--labelled 2000] [--seeds 1,2] [--epochs 3]
                              [--lengths 128:head,256:head_tail] [--arms labelled,transfer,all]
                              [--out runs/bench-more-text]

For each seed and each length (tokens:truncation), on the same split:
- the teacher (MiniLM-L6) fine-tuned on `--labelled` rows (patience 1, at most `--epochs`);
- a 2-layer student cut from it (layers kept evenly, the last included) and distilled for `--epochs`:
  `labelled`: on those rows alone; `transfer`: plus every other training text with its label hidden
  (the teacher's logits only); `blend` (not run by default): as `transfer`, the targets the teacher's
  and the linear model's (below) log-probabilities together (`distill --linear-teacher`);
- `all` (first length only): teacher and student trained with every training row labelled;
- the linear TF-IDF model on the same labelled rows, and on every row.
Test accuracy of each, per seed and as the mean; then whether the transfer set adds a point to the
student and whether the second length beats the first (issue 22's checks); then a JSON line.
Each run writes its own folder under --out and is skipped when its metrics.json exists: a killed
bench resumes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def _done(folder: Path) -> dict | None:
    path = folder / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="builtin:20news")
    parser.add_argument("--labelled", type=int, default=2000)
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lengths", default="128:head,256:head_tail")
    parser.add_argument("--arms", default="labelled,transfer,all")
    parser.add_argument("--student-layers", type=int, default=2)
    parser.add_argument("--out", default="runs/bench-more-text")
    args = parser.parse_args()

    import slimtune
    from slimtune.alternatives.linear import run_linear
    from slimtune.data import DataSpec, load_data

    out = Path(args.out).resolve()
    lengths = [(int(n), t) for n, t in (item.split(":") for item in args.lengths.split(","))]
    arms = args.arms.split(",")
    started = time.perf_counter()
    scores: dict[str, list[float]] = {}

    def record(name: str, value: float) -> None:
        scores.setdefault(name, []).append(value)
        print(f"  {name}: test accuracy {value:.4f}", flush=True)

    def linear(seed: int, name: str, settings: dict) -> Path:
        """The linear model on those rows (fitted once): an alternative, and the `blend` arm's second teacher."""
        folder = out / f"s{seed}" / f"linear-{name}"
        if not (folder / "manifest.json").exists():
            run_linear(load_data(DataSpec(args.data, seed=seed, max_unlabeled_samples=0,
                                          max_train_samples=settings.get("max_train_samples"))), folder, seed=seed)
        return folder

    for seed in [int(s) for s in args.seeds.split(",")]:
        for i, (length, truncation) in enumerate(lengths):
            tag = f"{length}-{truncation}"
            data = dict(data=args.data, seed=seed, truncation=truncation)
            labelled = dict(data, max_train_samples=args.labelled)
            print(f"seed {seed}, {length} tokens, {truncation}", flush=True)
            plans = [("labelled", labelled, 0)] if "labelled" in arms else []
            plans += [("transfer", labelled, None)] if "transfer" in arms else []
            plans += [("blend", labelled, None)] if "blend" in arms else []
            teacher = out / f"s{seed}" / tag / "teacher"
            if plans and not _done(teacher):
                slimtune.finetune(model="builtin:minilm-l6", out=str(teacher), epochs=args.epochs, patience=1,
                                  max_length=length, workers=0, **labelled)
            if plans:
                record(f"teacher {args.labelled} labelled, {tag}", _done(teacher)["accuracy"])
            if i == 0 and "all" in arms:
                every = out / f"s{seed}" / tag / "teacher-all"
                if not _done(every):
                    slimtune.finetune(model="builtin:minilm-l6", out=str(every), epochs=args.epochs, patience=1,
                                      max_length=length, workers=0, **data)
                record(f"teacher all labelled, {tag}", _done(every)["accuracy"])
                plans.append(("all", data, 0))
            for arm, settings, transfer in plans:
                source = every if arm == "all" else teacher
                cut = source.parent / f"cut-{arm if arm == 'all' else 'labelled'}"
                if not _done(cut):
                    slimtune.prune(model=str(source / "model"), out=str(cut), layers=args.student_layers,
                                   importance="magnitude", max_length=length, **settings)
                student = out / f"s{seed}" / tag / f"student-{arm}"
                if not _done(student):
                    slimtune.distill(teacher=str(source / "model"), student=str(cut / "model"), out=str(student),
                                     epochs=args.epochs, max_length=length, workers=0,
                                     max_unlabeled_samples=transfer, **settings,
                                     linear_teacher=str(linear(seed, "labelled", labelled)) if arm == "blend" else None)
                record(f"{args.student_layers}-layer student, {arm}, {tag}", _done(student)["accuracy"])
            if i == 0:
                for name, settings in (("labelled", labelled), ("all", data)):
                    manifest = json.loads((linear(seed, name, settings) / "manifest.json").read_text())
                    record(f"linear TF-IDF, {name if name == 'all' else str(args.labelled)} labelled",
                           manifest["accuracy"])

    print(f"\n{args.data}, {args.labelled} labelled rows, seeds {args.seeds}, {args.epochs} epochs "
          f"({time.perf_counter() - started:.0f} s)")
    width = max(len(name) for name in scores)
    for name, values in scores.items():
        print(f"{name:<{width}}  mean {statistics.mean(values):.4f}  ({', '.join(f'{v:.4f}' for v in values)})")
    mean = {name: statistics.mean(values) for name, values in scores.items()}
    first = f"{lengths[0][0]}-{lengths[0][1]}"
    layers = args.student_layers
    checks = {}
    if f"{layers}-layer student, transfer, {first}" in mean and f"{layers}-layer student, labelled, {first}" in mean:
        gain = mean[f"{layers}-layer student, transfer, {first}"] - mean[f"{layers}-layer student, labelled, {first}"]
        checks["transfer_gain_points"] = round(100 * gain, 2)
        print(f"transfer set: {100 * gain:+.2f} points for the student ({'meets' if gain >= 0.01 else 'misses'} +1)")
    if f"{layers}-layer student, blend, {first}" in mean and f"{layers}-layer student, transfer, {first}" in mean:
        gain = mean[f"{layers}-layer student, blend, {first}"] - mean[f"{layers}-layer student, transfer, {first}"]
        checks["blend_gain_points"] = round(100 * gain, 2)
        print(f"teacher + linear model as the teacher: {100 * gain:+.2f} points for the student over the teacher alone")
    if len(lengths) > 1:
        second = f"{lengths[1][0]}-{lengths[1][1]}"
        for who in ("teacher 2000 labelled" if args.labelled == 2000 else f"teacher {args.labelled} labelled",
                    f"{layers}-layer student, transfer"):
            a, b = mean.get(f"{who}, {first}"), mean.get(f"{who}, {second}")
            if a is not None and b is not None:
                checks[f"{who}: {second} minus {first}"] = round(100 * (b - a), 2)
                print(f"{who}: {second} {'beats' if b > a else 'does not beat'} {first} ({100 * (b - a):+.2f} points)")
    print(json.dumps({"data": args.data, "labelled": args.labelled, "seeds": args.seeds, "mean": mean,
                      "per_seed": scores, "checks": checks}))


if __name__ == "__main__":
    main()
