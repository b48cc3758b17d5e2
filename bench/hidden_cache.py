"""What hidden-state distillation costs per training step: cached teacher targets against logits
only and against a live teacher.

    python bench/hidden_cache.py [--teacher builtin:mpnet-base] [--student builtin:minilm-l6]

The same student, batches and optimizer; the three losses take steps in turns (rounds), so load
from other work on a shared machine falls on all of them alike. It prints the median seconds per
step and the ratios to the logits-only step, and ends with a JSON line. The teacher's classifier
head may be untrained: only time is measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="builtin:mpnet-base")
    parser.add_argument("--student", default="builtin:minilm-l6")
    parser.add_argument("--data", default="builtin:reuters-r8")
    parser.add_argument("--rows", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="steps per loss per round")
    args = parser.parse_args()

    import torch

    from slimtune.data import DataSpec, load_data
    from slimtune.data.tokenize import PadCollator, encode_data
    from slimtune.distillation.cache import compute_logits, teacher_hidden
    from slimtune.distillation.losses import DistillLoss, DistillModule, LossSpec
    from slimtune.distillation.run import uniform_layer_map
    from slimtune.models import load_classifier, load_tokenizer, resolve_model
    from slimtune.models.surgery import encoder_layers

    torch.manual_seed(0)
    data = load_data(DataSpec(args.data, max_train_samples=args.rows, seed=42))
    t_dir, s_dir = resolve_model(args.teacher), resolve_model(args.student)
    t_tok, s_tok = load_tokenizer(t_dir), load_tokenizer(s_dir)
    teacher = load_classifier(t_dir, data.label_names).eval()
    t_train, s_train = encode_data(data, t_tok, args.max_length)["train"], encode_data(data, s_tok, args.max_length)["train"]
    logits = compute_logits(teacher, t_train, t_tok.pad_token_id)
    student = load_classifier(s_dir, data.label_names)
    mapping = uniform_layer_map(len(encoder_layers(student)), len(encoder_layers(teacher)))
    cache = teacher_hidden(teacher, t_dir, t_train, t_tok.pad_token_id, mapping)
    if not cache.lengths_match(s_train):
        sys.exit("the student's tokens do not line up with the teacher's: pick a student with the same word pieces")
    hidden = LossSpec(hidden_weight=1.0)
    losses = {
        "logits only": (LossSpec(), DistillLoss(LossSpec(), mapping, teacher_logits=logits)),
        "hidden, cached": (hidden, DistillLoss(hidden, mapping, teacher_logits=logits, teacher_hidden=cache)),
        "hidden, live teacher": (hidden, DistillLoss(hidden, mapping, teacher_logits=logits, teacher=teacher,
                                                     teacher_split=t_train, teacher_pad_id=t_tok.pad_token_id)),
    }
    modules = {name: DistillModule(student, teacher.config.hidden_size, spec, mapping).train() for name, (spec, _) in losses.items()}
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-5) for name, m in modules.items()}
    collate = PadCollator(s_tok.pad_token_id)
    batches = [collate([s_train[i] for i in range(s, s + args.batch_size)])
               for s in range(0, len(s_train) - args.batch_size + 1, args.batch_size)]
    times: dict[str, list[float]] = {name: [] for name in losses}
    step = 0
    for round_ in range(args.rounds + 1):  # round 0 warms every path up and is not counted
        for name, (_, loss_fn) in losses.items():
            for _ in range(args.steps):
                batch = batches[step % len(batches)]
                step += 1
                started = time.perf_counter()
                loss = loss_fn(modules[name], batch)
                loss.backward()
                optimizers[name].step()
                optimizers[name].zero_grad(set_to_none=True)
                if round_:
                    times[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(t) for name, t in times.items()}
    base = medians["logits only"]
    print(f"{'loss':<22} {'s/step':>8} {'x logits only':>14}", file=sys.stderr)
    for name, seconds in medians.items():
        print(f"{name:<22} {seconds:>8.3f} {seconds / base:>13.2f}x", file=sys.stderr)
    print(json.dumps({"teacher": args.teacher, "student": args.student, "batch_size": args.batch_size,
                      "layer_map": mapping, "median_step_seconds": medians,
                      "ratio_cached": medians["hidden, cached"] / base,
                      "ratio_live": medians["hidden, live teacher"] / base}))


if __name__ == "__main__":
    main()
