"""The transformer teacher and the linear TF-IDF model together, on validation and on test.

    python bench/two_teachers.py --teacher DIR --linear DIR --data SOURCE [--max-train-samples N]
                                 [--seed 42] [--max-length N]

`distill --linear-teacher` (and a job's `alternatives.teach`) distils from the teacher's
log-probabilities plus a weight times the linear model's, the weight picked on validation
(`distillation.blend`). This prints the accuracy of that product at every weight on the validation
split (where it is picked) and on the test split (what a student distilled from it could reach),
beside the teacher and the linear model alone, and a JSON line. The teacher's logits come through
the logits cache: after `distill` from the same teacher, nothing is computed again.
For the 20 newsgroups with an MPNet teacher, the folders of `python bench/big_teacher.py --data
builtin:20news --seeds 42 --set finetune.lr=1e-4 --out runs/bench-big-20news-lr1e-4`:
    python bench/two_teachers.py --teacher runs/bench-big-20news-lr1e-4/seed-42/job/teacher \
        --linear runs/bench-big-20news-lr1e-4/seed-42/job/alternatives/linear --data builtin:20news \
        --max-train-samples 2000 --seed 42
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True, help="a fine-tuned teacher folder")
    parser.add_argument("--linear", required=True, help="a linear TF-IDF bundle fitted on the same labelled rows")
    parser.add_argument("--data", required=True)
    parser.add_argument("--max-train-samples", type=int, default=None)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-length", type=int, default=None,
                        help="tokens per text (default: the length the teacher was fine-tuned at, as distill reads it)")
    args = parser.parse_args()

    from slimtune.data import DataSpec, load_data
    from slimtune.data.length import inherit_truncation, resolve_max_length
    from slimtune.data.tokenize import encode_data
    from slimtune.distillation.blend import WEIGHTS, _log_probs, best_weight, check_linear_teacher, linear_log_probs
    from slimtune.distillation.cache import teacher_logits
    from slimtune.models import load_classifier, load_config, load_tokenizer, resolve_model

    check_linear_teacher(args.linear, "--linear")
    teacher_dir = resolve_model(args.teacher, "--teacher")
    data = load_data(DataSpec(args.data, max_train_samples=args.max_train_samples, seed=args.seed))
    data = inherit_truncation(data, teacher_dir)  # texts cut as the teacher read them, as distill does
    tokenizer = load_tokenizer(teacher_dir, "--teacher")
    max_length = resolve_max_length(args.max_length, teacher_dir, data, tokenizer, load_config(teacher_dir))
    teacher = load_classifier(teacher_dir, data.label_names).eval()
    encoded = encode_data(data, tokenizer, max_length)
    result = {}
    for split in ("validation", "test"):
        labels = np.asarray(encoded[split].labels)
        mine = _log_probs(teacher_logits(teacher, teacher_dir, encoded[split], tokenizer.pad_token_id).double().numpy())
        linear = linear_log_probs(args.linear, list(getattr(data, split)["text"]), data.label_names)
        result[split] = {"rows": len(labels), "linear": float((linear.argmax(1) == labels).mean()),
                         "weights": {w: float(((mine + w * linear).argmax(1) == labels).mean()) for w in WEIGHTS}}
    picked = best_weight(result["validation"]["weights"])
    print(f"{'':<28} {'validation':>10} {'test':>8}")
    print(f"{'linear TF-IDF alone':<28} {result['validation']['linear']:>10.4f} {result['test']['linear']:>8.4f}")
    for w in WEIGHTS:
        name = "teacher alone" if w == 0 else f"teacher + {w:g} x linear"
        mark = "  <- picked on validation" if w == picked else ""
        print(f"{name:<28} {result['validation']['weights'][w]:>10.4f} {result['test']['weights'][w]:>8.4f}{mark}")
    print(json.dumps({"bench": "two_teachers", "teacher": args.teacher, "linear": args.linear, "data": args.data,
                      "seed": args.seed, "picked_weight": picked, **result}))


if __name__ == "__main__":
    main()
