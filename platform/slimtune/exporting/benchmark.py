"""Latency and throughput of an ONNX model (or a PyTorch model) measured the same way every time:
fixed threads, warm-up, batch 1 for latency percentiles, batch 32 for throughput; and latency
from text to label (`text_latency`), the tokenizer included, which is what a device pays per
request: below a millisecond of model time the tokenizer is most of it."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import numpy as np

from slimtune.exporting.runtime import make_session


def _feed(batch: int, seq: int, vocab_low: int = 0, vocab_high: int = 5) -> dict[str, np.ndarray]:
    # Token ids do not change the cost of a dense forward pass; the first few ids exist in every
    # vocabulary, a pruned one too (the pad id and the ids below it are always kept).
    rng = np.random.default_rng(0)
    return {"input_ids": rng.integers(vocab_low, vocab_high, (batch, seq), dtype=np.int64),
            "attention_mask": np.ones((batch, seq), dtype=np.int64)}


def _percentiles(samples_ms: list[float]) -> dict:
    a = np.array(samples_ms)
    return {"latency_ms_p50": float(np.percentile(a, 50)), "latency_ms_p90": float(np.percentile(a, 90)),
            "latency_ms_p99": float(np.percentile(a, 99))}


def time_calls(run, feed, warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        run(feed)
    out = []
    for _ in range(iters):
        started = time.perf_counter()
        run(feed)
        out.append(1000 * (time.perf_counter() - started))
    return out


def bench_onnx(path: Path, seq: int = 128, threads: int | None = None, iters: int = 50, throughput_batch: int = 32,
               batch: int = 1) -> dict:
    """p50/p90/p99 latency at `batch` (1), throughput (texts/s) at `throughput_batch`, size, peak RSS."""
    threads = threads or os.cpu_count()
    session = make_session(path, threads)

    def run(feed):
        return session.run(["logits"], feed)

    report = _percentiles(time_calls(run, _feed(batch, seq), warmup=5, iters=iters))
    big = _feed(throughput_batch, seq)
    batch_ms = time_calls(run, big, warmup=1, iters=max(3, iters // 10))
    report.update({
        "throughput_per_s": throughput_batch / (float(np.median(batch_ms)) / 1000),
        "size_mb": Path(path).stat().st_size / 1e6,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "batch": batch, "seq": seq, "threads": threads, "throughput_batch": throughput_batch,
    })
    return report


def bench_torch(model, seq: int = 128, threads: int | None = None, iters: int = 50, throughput_batch: int = 32,
                batch: int = 1) -> dict:
    """The same measurement for a PyTorch model in eager mode."""
    import torch

    torch.set_num_threads(threads or os.cpu_count())
    model.eval()

    def run(feed):
        with torch.inference_mode():
            return model(input_ids=torch.from_numpy(feed["input_ids"]),
                         attention_mask=torch.from_numpy(feed["attention_mask"])).logits

    report = _percentiles(time_calls(run, _feed(batch, seq), warmup=5, iters=iters))
    batch_ms = time_calls(run, _feed(throughput_batch, seq), warmup=1, iters=max(3, iters // 10))
    report.update({
        "throughput_per_s": throughput_batch / (float(np.median(batch_ms)) / 1000),
        "size_mb": sum(p.numel() * p.element_size() for p in model.parameters()) / 1e6,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "batch": batch, "seq": seq, "threads": threads or os.cpu_count(), "throughput_batch": throughput_batch,
    })
    return report


def interleaved_latency(models: dict, seq: int = 128, threads: int | None = 1, rounds: int = 9,
                        per_round: int = 20) -> dict[str, float]:
    """Median batch-1 latency (ms) of several ONNX models timed in turns in one process: every
    round times each model once, so load from other work on a shared machine falls on all of
    them alike and the ratios hold even when the absolute numbers drift."""
    sessions = {name: make_session(path, threads) for name, path in models.items()}
    feed = _feed(1, seq)
    for session in sessions.values():
        time_calls(lambda f, s=session: s.run(["logits"], f), feed, warmup=5, iters=1)
    samples: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, session in sessions.items():
            times = time_calls(lambda f, s=session: s.run(["logits"], f), feed, warmup=0, iters=per_round)
            samples[name].append(float(np.median(times)))
    return {name: float(np.median(values)) for name, values in samples.items()}


def _classify_ms(bundle, texts: list[str]) -> list[float]:
    """Milliseconds of `bundle.classify` on each text, in order."""
    times = []
    for text in texts:
        started = time.perf_counter()
        bundle.classify(text)
        times.append(1000 * (time.perf_counter() - started))
    return times


def text_latency(bundles: dict, texts: list[str], rounds: int = 9) -> dict[str, float]:
    """Median milliseconds from a raw text in to a label out, batch 1, of loaded bundles (anything
    with `classify(text)`: `runtime.Bundle`, `linear_runtime.LinearBundle`), timed in turns in one
    process on the same real texts: every text once per bundle, in `rounds` rounds of consecutive
    texts, each bundle timing the same texts in turn, so short and long texts, and load from other
    work, fall on all of them alike. The median over rounds of each round's median."""
    if not texts:
        raise ValueError("text_latency needs at least one text")
    for bundle in bundles.values():  # warm-up: first calls allocate
        _classify_ms(bundle, texts[:5])
    per_round = -(-len(texts) // rounds)
    samples: dict[str, list[float]] = {name: [] for name in bundles}
    for start in range(0, len(texts), per_round):
        for name, bundle in bundles.items():
            samples[name].append(float(np.median(_classify_ms(bundle, texts[start : start + per_round]))))
    return {name: float(np.median(values)) for name, values in samples.items()}


def bench_texts(bundle, texts: list[str], iters: int = 50) -> dict:
    """Latency percentiles from a raw text in to a label out of one loaded bundle (any kind),
    cycling through `texts`, batch 1, after a warm-up."""
    _classify_ms(bundle, texts[:5])
    samples = _classify_ms(bundle, [texts[i % len(texts)] for i in range(iters)])
    return {k.replace("latency_ms", "latency_ms_text"): v for k, v in _percentiles(samples).items()}
