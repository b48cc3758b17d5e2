"""Teacher vs pruned-and-distilled student, side by side from one run.

    python bench/compress.py --teacher runs/quickstart/teacher      # a fine-tuned MiniLM-L6 on tweets
    python bench/compress.py                                        # fine-tunes that teacher first
    python bench/compress.py --smoke-test                           # tiny budget, checks it runs

Steps: prune the teacher (layers, heads, FFN by Taylor importance), distil the teacher into it
(cached teacher logits), then measure both in this process: test accuracy, encoder FLOPs,
PyTorch eager latency at batch 1 x sequence 128 (interleaved rounds, medians), and the cost of
a distillation step against a plain training step of the same student. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch


def latency_ms(model, seq: int, rounds: int = 7, per_round: int = 10) -> list[float]:
    ids = torch.randint(1000, 2000, (1, seq))
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        for _ in range(3):
            model(input_ids=ids, attention_mask=mask)
        out = []
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(per_round):
                model(input_ids=ids, attention_mask=mask)
            out.append(1000 * (time.perf_counter() - started) / per_round)
    return out


def interleaved_latency(teacher, student, seq: int, rounds: int) -> tuple[float, float]:
    t, s = [], []
    for _ in range(rounds):  # alternate so that machine noise hits both sides alike
        t += latency_ms(teacher, seq, rounds=1)
        s += latency_ms(student, seq, rounds=1)
    return statistics.median(t), statistics.median(s)


def step_cost(student, split, pad_id, loss_fns: dict, steps: int, rounds: int) -> dict:
    """Median seconds per optimizer step of `student` under each loss, interleaved in rounds."""
    from slimtune.data.tokenize import PadCollator

    collate = PadCollator(pad_id)
    gen = torch.Generator().manual_seed(0)
    batches = [collate([split[i] for i in torch.randint(0, len(split), (32,), generator=gen).tolist()])
               for _ in range(steps)]
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-5)
    student.train()
    times = {name: [] for name in loss_fns}
    for _ in range(rounds):
        for name, fn in loss_fns.items():
            started = time.perf_counter()
            for batch in batches:
                fn(student, batch).backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            times[name].append((time.perf_counter() - started) / steps)
    return {name: statistics.median(v) for name, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default=None, help="fine-tuned teacher folder (default: fine-tune one)")
    parser.add_argument("--data", default="builtin:tweets")
    parser.add_argument("--max-train-samples", type=int, default=2000)
    parser.add_argument("--out", default="/tmp/slimtune-bench-compress")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--heads", type=float, default=0.5)
    parser.add_argument("--ffn", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=3, help="distillation epochs")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--smoke-test", action="store_true")
    args = parser.parse_args()
    if args.smoke_test:
        args.max_train_samples, args.epochs, args.rounds = 200, 1, 3

    from slimtune.data import DataSpec
    from slimtune.distillation import DistillSpec, run_distill
    from slimtune.distillation.losses import DistillLoss, DistillModule, LossSpec
    from slimtune.models import load_classifier, load_tokenizer
    from slimtune.pruning import PruneSpec, run_prune
    from slimtune.train.loop import TrainSpec, cross_entropy_loss

    out = Path(args.out)
    data = DataSpec(args.data, max_train_samples=args.max_train_samples)
    teacher_dir = args.teacher
    if teacher_dir is None:
        from slimtune.train.finetune import FinetuneSpec, run_finetune

        teacher_dir = str(out / "teacher")
        run_finetune(FinetuneSpec("builtin:minilm-l6", data, teacher_dir, TrainSpec(epochs=1), workers=0))
    pruned = run_prune(PruneSpec(teacher_dir, data, str(out / "pruned"), heads=args.heads, ffn=args.ffn,
                                 layers=args.layers))
    distilled = run_distill(DistillSpec(teacher_dir, str(out / "pruned"), data, str(out / "student"),
                                        train=TrainSpec(epochs=args.epochs), workers=0))

    from slimtune.models import resolve_model

    names = distilled["teacher"]
    t_path = resolve_model(teacher_dir)
    s_path = str(out / "student" / "model")
    label_names = tuple(json.loads((Path(s_path) / "config.json").read_text())["id2label"].values())
    teacher = load_classifier(t_path, label_names).eval()
    student = load_classifier(s_path, label_names).eval()
    t_ms, s_ms = interleaved_latency(teacher, student, args.seq, args.rounds)

    # distillation step (cached teacher logits) vs plain step, same student, same batches
    from slimtune.data import load_data
    from slimtune.data.tokenize import encode
    from slimtune.distillation.cache import teacher_logits

    text = load_data(data)
    tok = load_tokenizer(s_path)
    split = encode(text.train["text"], text.train["label"], tok, 128)
    logits = teacher_logits(teacher, t_path, split, tok.pad_token_id)
    module = DistillModule(load_classifier(s_path, label_names), teacher.config.hidden_size, LossSpec(), [0])
    costs = step_cost(module, split, tok.pad_token_id,
                      {"plain": cross_entropy_loss, "distill_cached": DistillLoss(LossSpec(), [0], teacher_logits=logits)},
                      steps=3 if args.smoke_test else 8, rounds=3 if args.smoke_test else 5)

    report = {
        "bench": "compress",
        "teacher_accuracy": names["accuracy"],
        "student_accuracy": distilled["accuracy"],
        "accuracy_retained": distilled["accuracy_retained"],
        "pruned_accuracy_before_distill": pruned["accuracy"],
        "flops_ratio": distilled["flops_ratio"],
        "teacher_params": names["num_parameters"],
        "student_params": distilled["num_parameters"],
        "teacher_latency_ms": t_ms,
        "student_latency_ms": s_ms,
        "speedup": t_ms / s_ms,
        "seq": args.seq,
        "plain_step_s": costs["plain"],
        "distill_step_s": costs["distill_cached"],
        "distill_over_plain": costs["distill_cached"] / costs["plain"],
        "distill_train_seconds": distilled["train_seconds"],
    }
    print(f"{'':>22}{'teacher':>12}{'student':>12}", file=sys.stderr)
    print(f"{'test accuracy':>22}{report['teacher_accuracy']:>12.4f}{report['student_accuracy']:>12.4f}"
          f"   ({100 * report['accuracy_retained']:.1f}% kept)", file=sys.stderr)
    print(f"{'encoder GFLOPs':>22}{names['encoder_flops'] / 1e9:>12.2f}{distilled['encoder_flops'] / 1e9:>12.2f}"
          f"   ({report['flops_ratio']:.2f}x)", file=sys.stderr)
    print(f"{'latency ms (b1 s%d)' % args.seq:>22}{t_ms:>12.1f}{s_ms:>12.1f}   ({report['speedup']:.2f}x faster)", file=sys.stderr)
    print(f"{'parameters':>22}{names['num_parameters']:>12,}{distilled['num_parameters']:>12,}", file=sys.stderr)
    print(f"distillation step (cached teacher) / plain step: {report['distill_over_plain']:.3f}", file=sys.stderr)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
