"""bf16 autocast against fp32 on this CPU: training and scoring speed, then accuracy, one process.

    python bench/cpu_bf16.py                       # speed: MPNet-base and MiniLM-L6; accuracy: MiniLM-L6 on tweets
    python bench/cpu_bf16.py --accuracy-rows 0     # speed only
    python bench/cpu_bf16.py --smoke-test          # a few steps, to check it runs

Speed: a training step (forward, backward, AdamW) and a scoring pass of --batch real texts of
--data cut at --seq tokens (the shape is printed), fp32 and bf16 autocast in turns, each first in
every other round (`--rounds` rounds after one warm-up, medians), on the models' real weights.
Accuracy: --model fine-tuned on --accuracy-rows labelled rows of --accuracy-data by the training
loop, once in fp32 and once in bf16 (`TrainSpec.bf16`, which the loop passes to
`slimtune.train.loop.autocast`), same seed and batches; validation and test accuracy of each, and
the time of each (training and the test pass). slimtune runs bf16 on a CPU only where it has AMX
(`slimtune.train.loop.cpu_has_amx`); elsewhere the bench says so and stops. Last line JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def speed(model_name: str, data, args) -> dict:
    from slimtune.data.tokenize import PadCollator, encode_data
    from slimtune.models import load_classifier, load_tokenizer, resolve_model
    from slimtune.train.loop import autocast

    resolved = resolve_model(model_name)
    tok = load_tokenizer(resolved)
    split = encode_data(data, tok, args.seq)["train"]
    batch = PadCollator(tok.pad_token_id)([split[i] for i in range(args.batch)])
    model = load_classifier(resolved, data.label_names)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    def step(bf16: bool):
        model.train()
        with autocast("cpu", bf16):
            logits = model(**inputs).logits
        torch.nn.functional.cross_entropy(logits.float(), batch["labels"]).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def score(bf16: bool):
        model.eval()
        with autocast("cpu", bf16):
            model(**inputs)

    shape = tuple(inputs["input_ids"].shape)
    times = {(kind, bf16): [] for kind in ("train", "score") for bf16 in (False, True)}
    for round_ in range(args.rounds + 1):  # round 0 warms up and is dropped
        for bf16 in (False, True) if round_ % 2 else (True, False):  # each goes first in turn
            for kind, fn in (("train", step), ("score", score)):
                seconds = _timed(lambda: fn(bf16))
                if round_:
                    times[kind, bf16].append(seconds)
    out = {}
    for kind in ("train", "score"):
        fp32, bf16 = statistics.median(times[kind, False]), statistics.median(times[kind, True])
        out[kind] = {"shape": shape, "fp32_s": fp32, "bf16_s": bf16, "speedup": fp32 / bf16,
                     "fp32_per_s": args.batch / fp32, "bf16_per_s": args.batch / bf16}
        print(f"{model_name:<20} {kind:<5} {shape[0]}x{shape[1]} tokens: fp32 {fp32:6.2f} s, bf16 {bf16:6.2f} s, "
              f"{fp32 / bf16:4.2f}x ({args.batch / fp32:.1f} -> {args.batch / bf16:.1f} texts/s)", file=sys.stderr)
    return out


def accuracy(args) -> dict:
    from slimtune.data import DataSpec, load_data
    from slimtune.data.tokenize import encode_data
    from slimtune.models import load_classifier, load_tokenizer, resolve_model
    from slimtune.train.loop import TrainSpec, evaluate, train

    data = load_data(DataSpec(args.accuracy_data, max_train_samples=args.accuracy_rows, seed=args.seed))
    resolved = resolve_model(args.model)
    tok = load_tokenizer(resolved)
    enc = encode_data(data, tok, args.seq)
    out = {}
    for bf16 in (False, True):
        torch.manual_seed(args.seed)
        model = load_classifier(resolved, data.label_names)
        spec = TrainSpec(epochs=args.epochs, batch_size=32, lr=args.lr, seed=args.seed, bf16=bf16)
        started = time.perf_counter()
        result = train(model, enc["train"], enc["validation"], spec, num_labels=data.num_labels,
                       pad_token_id=tok.pad_token_id)
        test = evaluate(model, enc["test"], data.num_labels, tok.pad_token_id, spec=spec)["accuracy"]
        name = "bf16" if bf16 else "fp32"
        out[name] = {"validation": [h["val_accuracy"] for h in result.history], "test": test,
                     "seconds": time.perf_counter() - started}
        print(f"{args.model} on {len(enc['train']):,} rows of {args.accuracy_data}, {name}: validation "
              f"{', '.join(f'{a:.4f}' for a in out[name]['validation'])}; test {test:.4f} "
              f"({out[name]['seconds'] / 60:.1f} min)", file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="builtin:mpnet-base,builtin:minilm-l6")
    parser.add_argument("--data", default="builtin:20news", help="texts of the speed passes")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model", default="builtin:minilm-l6", help="the model of the accuracy arm")
    parser.add_argument("--accuracy-data", default="builtin:tweets")
    parser.add_argument("--accuracy-rows", type=int, default=2000, help="labelled rows of the accuracy arm; 0: skip it")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--smoke-test", action="store_true")
    args = parser.parse_args()
    if args.smoke_test:
        args.models, args.batch, args.seq, args.rounds = "builtin:minilm-l6", 4, 32, 1
        args.accuracy_rows, args.epochs = 64, 1

    from slimtune.data import DataSpec, load_data
    from slimtune.train.loop import CPU_BF16_ENV, cpu_has_amx

    os.environ[CPU_BF16_ENV] = "1"  # the accuracy arm's bf16 run, whatever the caller's environment says
    if not cpu_has_amx():
        sys.exit("this CPU has no AMX (no amx_bf16 flag in /proc/cpuinfo): slimtune trains it in fp32")
    data = load_data(DataSpec(args.data, max_train_samples=max(args.batch, 64), seed=args.seed))
    report = {"bench": "cpu_bf16", "threads": torch.get_num_threads(), "batch": args.batch, "seq": args.seq,
              "speed": {name: speed(name, data, args) for name in args.models.split(",")}}
    if args.accuracy_rows:
        report["accuracy"] = accuracy(args)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
