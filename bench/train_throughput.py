"""Steady-state step time of the training loop: plain process vs Ray Train (1 worker), one run.

    python bench/train_throughput.py                 # CPU: MiniLM-L6 on tweets, plain vs Ray Train
    python bench/train_throughput.py --smoke-test    # a few steps, to check it runs
    python bench/train_throughput.py --gpu           # GPU, no Ray: BERT-base shape, bf16, MFU

Both sides run the same `slimtune.train.loop.train` on the same batches. Step time is the median
of per-window means (a window = `--log-every` steps, the first window dropped as warm-up). Ray's
fixed start cost (actors, imports, process group) is printed apart from the per-step overhead.
The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

from slimtune.data.tokenize import EncodedSplit
from slimtune.train.loop import LocalContext, TrainSpec, train


def _steady(step_seconds: list[float]) -> float:
    return statistics.median(step_seconds[1:] if len(step_seconds) > 1 else step_seconds)


def _real_splits(args):
    from slimtune.data import DataSpec, load_data
    from slimtune.data.tokenize import encode_data
    from slimtune.models import load_classifier, load_tokenizer, resolve_model

    resolved = resolve_model(args.model)
    data = load_data(DataSpec(args.data, max_train_samples=args.batch_size * args.steps, max_validation_samples=64))
    tok = load_tokenizer(resolved)
    enc = encode_data(data, tok, args.max_length)
    return lambda: load_classifier(resolved, data.label_names), enc, data.num_labels, tok.pad_token_id


def cpu_plain_vs_ray(args) -> dict:
    make_model, enc, num_labels, pad = _real_splits(args)
    spec = TrainSpec(epochs=1, batch_size=args.batch_size, lr=1e-4, log_every=args.log_every, max_steps=args.steps)
    common = dict(num_labels=num_labels, pad_token_id=pad)

    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)

    def plain_run():
        started = time.perf_counter()
        record = train(make_model(), enc["train"], enc["validation"], spec, ctx=LocalContext("cpu"), **common)
        return _steady(record.step_seconds), time.perf_counter() - started

    # The machine is shared and noisy: the plain loop runs before and after Ray (a sandwich),
    # and Ray is compared with the mean of the two.
    plain_before, plain_wall = plain_run()

    from slimtune.ray_session import ensure_ray
    from slimtune.train.ray_train import fit_on_ray

    ensure_ray()
    import ray

    started = time.perf_counter()
    _, on_ray, startup = fit_on_ray(make_model(), enc["train"], enc["validation"], spec, workers=1,
                                    use_gpu=False, storage=args.storage, name="bench", threads=threads, **common)
    ray_wall = time.perf_counter() - started
    ray.shutdown()
    plain_after, _ = plain_run()
    plain_step, ray_step = (plain_before + plain_after) / 2, _steady(on_ray.step_seconds)
    return {
        "bench": "train_throughput_cpu",
        "model": args.model,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "threads": threads,
        "plain_step_s": plain_step,
        "plain_step_s_before_after": [plain_before, plain_after],
        "ray_step_s": ray_step,
        "ray_over_plain": ray_step / plain_step,
        "ray_step_overhead_pct": 100 * (ray_step / plain_step - 1),
        "ray_fixed_start_s": startup,
        "plain_wall_s": plain_wall,
        "ray_wall_s": ray_wall,
    }


def gpu_mfu(args) -> dict:
    """BERT-base shape, random weights, fixed batch x sequence, bf16 autocast (+ torch.compile)."""
    from transformers import BertConfig, BertForSequenceClassification

    assert torch.cuda.is_available(), "--gpu needs a CUDA device"
    torch.backends.cuda.matmul.allow_tf32 = True
    config = BertConfig(num_labels=2)  # 12 layers, hidden 768, 12 heads, FFN 3072
    seq, batch = args.seq, args.gpu_batch
    n = batch * (args.steps + 1)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, config.vocab_size, (n, seq), generator=gen).tolist()
    split = EncodedSplit(ids, [i % 2 for i in range(n)])
    val = EncodedSplit(ids[:batch], [i % 2 for i in range(batch)])
    results = {}
    for compile_ in (False, True) if args.compile else (False,):
        torch.manual_seed(0)
        model = BertForSequenceClassification(config)
        spec = TrainSpec(epochs=1, batch_size=batch, lr=1e-4, log_every=args.log_every, max_steps=args.steps,
                         bf16=True, compile=compile_, eval_batch_size=batch)
        record = train(model, split, val, spec, num_labels=2, pad_token_id=0, ctx=LocalContext("cuda"))
        step = _steady(record.step_seconds)
        # Training FLOPs: 6 per parameter-token for the matmul weights (embeddings excluded: they
        # are lookups) plus attention scores and mixing, 12 * layers * hidden * seq per token.
        weights = sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)
        flops_per_token = 6 * weights + 12 * config.num_hidden_layers * config.hidden_size * seq
        achieved = flops_per_token * batch * seq / step
        key = "bf16_compile" if compile_ else "bf16"
        results[key] = {"samples_per_s": batch / step, "step_s": step, "mfu": achieved / (args.peak_tflops * 1e12)}
        print(f"{key:>13}: {batch / step:8.0f} samples/s  MFU {100 * results[key]['mfu']:.1f}%", file=sys.stderr)
    return {"bench": "train_throughput_gpu", "device": torch.cuda.get_device_name(), "batch": batch, "seq": seq,
            "peak_tflops": args.peak_tflops, **results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:minilm-l6")
    parser.add_argument("--data", default="builtin:tweets")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--log-every", type=int, default=5)
    parser.add_argument("--storage", default="/tmp/slimtune-bench")
    parser.add_argument("--threads", type=int, default=None, help="torch threads on both sides (default: all cores)")
    parser.add_argument("--gpu", action="store_true", help="GPU MFU of a BERT-base shape, no Ray")
    parser.add_argument("--gpu-batch", type=int, default=128)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile (GPU mode)")
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="bf16 peak to compute MFU against (H200 dense bf16 peak as assumed here: 790)")
    parser.add_argument("--smoke-test", action="store_true")
    args = parser.parse_args()
    if args.smoke_test:
        args.steps, args.log_every, args.batch_size = 6, 2, 8
    if args.gpu:
        report = gpu_mfu(args)
    else:
        report = cpu_plain_vs_ray(args)
        print(f"plain loop   {1000 * report['plain_step_s']:8.1f} ms/step", file=sys.stderr)
        print(f"Ray Train x1 {1000 * report['ray_step_s']:8.1f} ms/step   ratio {report['ray_over_plain']:.3f} "
              f"({report['ray_step_overhead_pct']:+.1f}% per step)", file=sys.stderr)
        print(f"Ray fixed start cost {report['ray_fixed_start_s']:.1f} s (not per step)", file=sys.stderr)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
