"""Why students cut from a wide teacher collapse: one MPNet teacher, its cuts distilled several ways.

    python bench/wide_cut.py [--teacher DIR] [--reference DIR] [--data builtin:tweets] [--max-train-samples 1000]
                             [--arms space,aligned,longer,full-width,full-width-lr] [--out runs/bench-wide]

Fine-tunes MPNet-base (built in) on the labelled rows (2 epochs at most, patience 1) unless
`--teacher` names a fine-tuned one (a job's OUT/teacher), and MiniLM-L6 directly on the same rows
and epochs unless `--reference` names one (a job's OUT/reference): the small model a student must
not fall far below. Then each arm cuts the teacher
(8 layers, a quarter of the heads and FFN neurons by Taylor importance, and the arm's share of the
hidden width) and distils it from the teacher's logits on the labelled rows alone, changing one
thing at a time against `space` (a setting search_spaces/full.py gave a wide cut until this bench
took width cuts out of it: lr 2e-4, the geometric middle of its 1e-4..4e-4, one epoch, logits only;
it samples temperature, alpha and hidden states too):

    space          hidden 0.5   lr 2e-4   1 epoch   logits only
    aligned        hidden 0.5   lr 2e-4   1 epoch   + hidden states (weight 0.5, projected)
    longer         hidden 0.5   lr 2e-4   3 epochs  logits only
    full-width     hidden 0     lr 2e-4   1 epoch   logits only
    full-width-lr  hidden 0     lr 5e-5   1 epoch   logits only (the rate MPNet fine-tunes at)

Prints each arm's test accuracy right after the cut (before any training), its validation and
test accuracy after distillation and its training time, beside the teacher's and MiniLM's; ends with a JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ARMS = {
    "space": dict(hidden=0.5, lr=2e-4, epochs=1, hidden_weight=0.0),
    "aligned": dict(hidden=0.5, lr=2e-4, epochs=1, hidden_weight=0.5),
    "longer": dict(hidden=0.5, lr=2e-4, epochs=3, hidden_weight=0.0),
    "full-width": dict(hidden=0.0, lr=2e-4, epochs=1, hidden_weight=0.0),
    "full-width-lr": dict(hidden=0.0, lr=5e-5, epochs=1, hidden_weight=0.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default=None, help="a fine-tuned MPNet folder (default: fine-tune one)")
    parser.add_argument("--reference", default=None, help="MiniLM-L6 fine-tuned on the same rows (default: fine-tune it)")
    parser.add_argument("--data", default="builtin:tweets")
    parser.add_argument("--max-train-samples", type=int, default=1000)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--heads", type=float, default=0.25)
    parser.add_argument("--ffn", type=float, default=0.25)
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--out", default="runs/bench-wide")
    args = parser.parse_args()
    arms = args.arms.split(",")
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        sys.exit(f"--arms: unknown {unknown}; known: {', '.join(ARMS)}")

    from slimtune.data import DataSpec
    from slimtune.distillation import DistillSpec, run_distill
    from slimtune.distillation.losses import LossSpec
    from slimtune.pruning import PruneSpec, run_prune
    from slimtune.train.finetune import FinetuneSpec, run_finetune
    from slimtune.train.loop import TrainSpec

    out = Path(args.out).resolve()
    # labelled rows only: the arms differ in how they train, not in what they see
    data = DataSpec(args.data, max_train_samples=args.max_train_samples, max_unlabeled_samples=0)
    budget = TrainSpec(epochs=2, patience=1)

    def finetuned(model: str, folder: Path) -> dict:
        if not (folder / "metrics.json").exists():
            run_finetune(FinetuneSpec(model, data, str(folder), budget, workers=0))
        return json.loads((folder / "metrics.json").read_text())

    teacher_dir = Path(args.teacher).resolve() if args.teacher else out / "teacher"
    teacher = finetuned("builtin:mpnet-base", teacher_dir) if not args.teacher else \
        json.loads((teacher_dir / "metrics.json").read_text())
    small = finetuned("builtin:minilm-l6", out / "minilm-direct") if not args.reference else \
        json.loads((Path(args.reference) / "metrics.json").read_text())

    rows = {"teacher": {"validation": teacher["validation"]["accuracy"], "test": teacher["accuracy"]},
            "MiniLM-L6 direct": {"validation": small["validation"]["accuracy"], "test": small["accuracy"]}}
    for name in arms:
        arm = ARMS[name]
        # one --out per teacher and data: the folders name the cut, not what it was cut from
        shape = f"l{args.layers}-h{args.heads:g}-f{args.ffn:g}"
        cut, student = out / f"cut-{shape}-hidden{arm['hidden']:g}", out / f"{name}-{shape}"
        if not (cut / "metrics.json").exists():
            run_prune(PruneSpec(str(teacher_dir), data, str(cut), heads=args.heads, ffn=args.ffn, hidden=arm["hidden"],
                                layers=args.layers))
        pruned = json.loads((cut / "metrics.json").read_text())
        if not (student / "metrics.json").exists():
            started = time.perf_counter()
            run_distill(DistillSpec(str(teacher_dir), str(cut), data, str(student),
                                    loss=LossSpec(hidden_weight=arm["hidden_weight"]),
                                    train=TrainSpec(epochs=arm["epochs"], lr=arm["lr"]), workers=0))
            print(f"[wide_cut] {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
        m = json.loads((student / "metrics.json").read_text())
        rows[name] = {**arm, "cut_test": pruned["accuracy"], "validation": m["validation"]["accuracy"], "test": m["accuracy"],
                      "train_seconds": m["train_seconds"]}

    print(f"\n{'model':<18} {'hidden':>6} {'lr':>7} {'ep':>3} {'hw':>4} {'cut test':>9} {'val':>7} {'test':>7} "
          f"{'train s':>8}", file=sys.stderr)
    for name, r in rows.items():
        knobs = (f"{r['hidden']:>6g} {r['lr']:>7.0e} {r['epochs']:>3} {r['hidden_weight']:>4g} {r['cut_test']:>9.4f}"
                 if "lr" in r else f"{'':>6} {'':>7} {'':>3} {'':>4} {'':>9}")
        tail = f" {r['train_seconds']:>8.0f}" if "train_seconds" in r else ""
        print(f"{name:<18} {knobs} {r['validation']:>7.4f} {r['test']:>7.4f}{tail}", file=sys.stderr)
    print(json.dumps({"bench": "wide_cut", "data": args.data, "rows": args.max_train_samples, "models": rows}))


if __name__ == "__main__":
    main()
