"""`slimtune export`: a folder a device can run with onnxruntime alone.

    BUNDLE/model.onnx          fp32, dynamic batch and sequence axes, checked against PyTorch
    BUNDLE/model.int8.onnx     ONNX Runtime int8 (dynamic by default, static QDQ on request)
    BUNDLE/tokenizer.json ...  the fast tokenizer's files
    BUNDLE/labels.json         label names in output order
    BUNDLE/model.int8.ort      the int8 model in ORT format for ONNX Runtime Mobile (see `mobile`)
    BUNDLE/required_operators.config   operators a reduced ONNX Runtime build needs for it
    BUNDLE/manifest.json       parity, accuracy, latency and size of both, opset, provenance
    BUNDLE/README.md           a short model card
    BUNDLE/SHA256SUMS          every file above, checked before a bundle is loaded

Everything is written to a temporary folder first and moved into place at the end: a failed
parity gate or any error leaves no bundle behind.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from slimtune import log
from slimtune.version import __version__
from slimtune.data import DataSpec, as_data_spec
from slimtune.errors import SlimtuneError
from slimtune.storage import ensure_writable

INT8_MAX_ACCURACY_DROP = 0.01


@dataclass(frozen=True)
class ExportSpec:
    """One export."""

    model: str
    """A model folder written by slimtune (finetune, prune or distill output) or any HF classifier folder."""
    out: str
    """The bundle folder to write (must not exist, or be empty)."""
    int8: bool = True
    """Also write model.int8.onnx."""
    static_int8: bool = False
    """Static int8 (activation ranges calibrated on training texts; needs --data) instead of dynamic."""
    data: DataSpec | None = None
    """Dataset whose test split gives accuracy_fp32/int8 and the parity texts (a source string is
    taken as DataSpec(source))."""
    optimize: bool = True
    """Try ONNX Runtime's graph fusions and keep whichever graph is faster."""
    seq: int = 128
    """Sequence length of the latency measurement."""
    threads: int | None = None
    """Threads of the latency measurement (default: all cores)."""
    max_parity_texts: int = 64
    rounds: int = 9
    """Interleaved timing rounds when `slimtune run` compares bundles (medians)."""

    def __post_init__(self):
        object.__setattr__(self, "data", as_data_spec(self.data))  # a source string is enough
        if self.seq < 8 or self.rounds < 1 or (self.threads is not None and self.threads < 1):
            raise SlimtuneError(f"--seq (>= 8), --threads (>= 1) and rounds (>= 1) are out of range: "
                                f"{self.seq}, {self.threads}, {self.rounds}")


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                              text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _feeds(tokenizer, texts: list[str], max_length: int, batch: int, truncation: str = "head") -> list[dict]:
    from slimtune.data.truncation import encode_ids
    from slimtune.exporting.runtime import pad_batch

    feeds = []
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        if truncation == "head":
            ids = tokenizer(chunk, truncation=True, max_length=max_length)["input_ids"]
        else:
            ids = encode_ids(tokenizer, chunk, max_length, truncation)
        feeds.append(pad_batch(ids, tokenizer.pad_token_id or 0))
    return feeds


def _model_card(manifest: dict) -> str:
    m = manifest
    acc = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    return f"""# {m['source_model']} (slimtune bundle)

Text classifier over {len(m['labels'])} labels: {', '.join(m['labels'])}.
Runs with onnxruntime, tokenizers and numpy only:

    slimtune predict --bundle . "some text"

| | fp32 (`model.onnx`) | int8 (`model.int8.onnx`) |
| --- | --- | --- |
| test accuracy | {acc(m['accuracy_fp32'])} | {acc(m['accuracy_int8'])} |
| latency p50, batch 1, {m['latency_seq']} tokens, {m['latency_threads']} threads | {m['latency_ms_p50_fp32']:.2f} ms | {(m['latency_ms_p50_int8'] or 0):.2f} ms |
| size | {m['size_mb_fp32']:.1f} MB | {(m['size_mb_int8'] or 0):.1f} MB |

Parity with PyTorch: max |logit difference| {m['parity_max_abs_diff']:.2e} on {m['parity_samples']} texts.
{"The fp32 test accuracy is the PyTorch model's, from its fine-tuning's test pass (" + m['test_fp32_from'] + "), not this graph's." if (m.get('test_fp32_from') or '').startswith('stage') else ''}
{m.get('int8_note') or ''}
Vocabulary: {m['vocab_size']:,} pieces (`tokenizer.json` and the embedding table match).
{_mobile_card(m)}
Integrity: `SHA256SUMS` lists every file of this folder, this card and `manifest.json` included;
`slimtune verify --bundle .` (or `sha256sum -c SHA256SUMS`) checks them, and `predict`, `eval` and
`bench` refuse a changed or truncated file before loading anything. This catches corruption in
copying or storage, not a deliberate forgery: whoever can change a file can change the list too.

Made by slimtune {m['slimtune_version']} (commit {m['git_commit'] or 'unknown'}) from `{m['source_model']}`;
evaluated on {m['eval_data'] or 'no dataset'}. Texts are truncated to {m['max_length']} tokens.
"""


def _mobile_card(m: dict) -> str:
    if not m.get("ort_file"):
        return ""
    return f"""
On phones: `{m['ort_file']}` is the int8 model in ONNX Runtime's ORT format ({m['size_mb_ort']:.1f} MB),
converted for ARM targets with ONNX Runtime {m['ort_version']}; load it with an ONNX Runtime Mobile of the
same or a newer version (Android: the `com.microsoft.onnxruntime:onnxruntime-android` package, `OrtSession`
from `OrtEnvironment.createSession(path)`; iOS: the `onnxruntime-objc` pod, `ORTSession`), or build a reduced
runtime that holds only the operators in `{m['ort_operators_file']}` (ONNX Runtime's build.py
`--minimal_build --include_ops_by_config {m['ort_operators_file']}`). Tokenize with `tokenizer.json`
(Hugging Face tokenizers) and feed `input_ids` and `attention_mask` as int64.
"""


def run_export(spec: ExportSpec, data=None, tested: dict | None = None) -> dict:
    """Export, check, quantize, measure and bundle `spec.model` into `spec.out`; `data`: the
    already loaded TextData of `spec.data` (a job loads it once). `tested`: the test metrics
    (accuracy, f1_macro, confusion) of this very model on `data`'s test split from the stage that
    trained it (`results.stage_test_metrics`): the fp32 graph, which parity ties to that model in
    fp32, is then not scored on test again; the figure is that pass's, in bf16 where it ran in bf16
    (`test_fp32_from`: stage-bf16). The int8 graph, which parity does not tie, always is."""
    from slimtune.exporting.benchmark import bench_onnx
    from slimtune.exporting.onnx_export import OPSET, check_parity, export_onnx, parity
    from slimtune.exporting.quantize import quantize_dynamic_int8, quantize_static_int8
    from slimtune.exporting.runtime import SAMPLE_TEXTS, Bundle, write_checksums
    from slimtune.models import load_classifier, load_config, load_tokenizer, read_model_info, resolve_model
    from slimtune.models.families import family_of

    out = Path(spec.out)
    if out.exists() and any(out.iterdir()):
        raise SlimtuneError(f"--out: {out} exists and is not empty; give a new folder")
    ensure_writable(out.parent)
    if spec.static_int8 and not spec.data:
        raise SlimtuneError("--static-int8: needs --data for calibration texts")
    resolved = resolve_model(spec.model)
    if not Path(resolved).is_dir():
        raise SlimtuneError(f"--model: export takes a local model folder, not {spec.model}")
    info = read_model_info(resolved)
    config = load_config(resolved)
    labels = [config.id2label[i] for i in range(config.num_labels)]
    max_length = int(info.get("max_length", 128))
    truncation = info.get("truncation", "head")  # as the model was trained; the runtime cuts the same way
    if max_length < spec.seq:  # the model never reads more: time it at the length it reads
        log.info(f"timing at {max_length} tokens, the most this model reads (--seq {spec.seq})")
        spec = replace(spec, seq=max_length)
    if spec.data is not None and data is None:
        from slimtune.data import load_data

        data = load_data(spec.data)
    if data is not None:
        if list(data.label_names) != labels:
            raise SlimtuneError(f"--data: its labels {list(data.label_names)} differ from the model's {labels}")
    tokenizer = load_tokenizer(resolved)
    model = load_classifier(resolved, tuple(labels)).eval()
    texts = list(data.test["text"][: spec.max_parity_texts]) if data is not None else SAMPLE_TEXTS
    feeds = _feeds(tokenizer, texts, max_length, 1, truncation)[:8] + _feeds(tokenizer, texts, max_length, 16, truncation)

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        plain = export_onnx(model, tmp / "plain.onnx")
        report = parity(model, plain, feeds)
        check_parity(report)
        log.info(f"ONNX export: parity max |diff| {report['max_abs_diff']:.2e} on {report['samples']} texts, same predictions")
        chosen, fusions, graph = plain, {}, "plain"
        if spec.optimize:
            chosen, fusions, graph = _pick_graph(plain, tmp, model, feeds, config, spec)
        shutil.copy(chosen, tmp / "model.onnx")
        int8_path = None
        if spec.int8:
            int8_path = tmp / "model.int8.onnx"
            # From the plain export: the quantizer cannot type the fused com.microsoft ops.
            if spec.static_int8:
                calib = _feeds(tokenizer, list(data.train["text"][:256]), max_length, 16, truncation)
                quantize_static_int8(plain, int8_path, calib)
            else:
                quantize_dynamic_int8(plain, int8_path)
        mobile = {}
        if int8_path is not None:
            from slimtune.exporting.mobile import to_ort_format

            mobile = to_ort_format(int8_path, tmp)
            log.info(f"ORT format for ONNX Runtime Mobile: {mobile['ort_file']} ({mobile['size_mb_ort']:.1f} MB), "
                     f"operators for a reduced build in {mobile['ort_operators_file']}")
        tokenizer.save_pretrained(tmp)
        (tmp / "labels.json").write_text(json.dumps(labels) + "\n")
        manifest = {
            "format": "slimtune-bundle/1",
            "labels": labels,
            "max_length": max_length,
            "truncation": truncation,
            "pad_token_id": int(tokenizer.pad_token_id or 0),
            "opset": OPSET,
            "parity_max_abs_diff": report["max_abs_diff"],
            "parity_samples": report["samples"],
            "graph": graph,
            "fusions": fusions,
            "int8_mode": None if not spec.int8 else ("static" if spec.static_int8 else "dynamic"),
            "vocab_size": int(config.vocab_size),
            "max_positions": family_of(config).usable_positions(config),  # the longest input the graph takes
            **mobile,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest))
        manifest.update(_measure(tmp, data, spec, int8_path is not None, bench_onnx, Bundle, tested))
        manifest.update({
            "source_model": spec.model,
            "source_info": {k: info.get(k) for k in ("source_model", "teacher", "data_fingerprint", "shape", "vocab")},
            "eval_data": spec.data.source if spec.data is not None else None,
            "eval_data_fingerprint": data.fingerprint if data is not None else None,
            "slimtune_version": __version__,
            "git_commit": _git_commit(),
            "export_seconds": time.perf_counter() - started,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        (tmp / "README.md").write_text(_model_card(manifest))
        for leftover in ("plain.onnx", "optimized.onnx"):
            (tmp / leftover).unlink(missing_ok=True)
        write_checksums(tmp)  # last: it covers every file above, the manifest included
        if out.exists():
            out.rmdir()
        tmp.rename(out)
        tmp.mkdir()  # TemporaryDirectory's cleanup expects its folder
    log.info(f"wrote bundle {out}")
    return manifest


def _pick_graph(plain: Path, tmp: Path, model, feeds, config, spec: ExportSpec):
    """Optimise, re-check parity, and keep the faster of the two graphs (measured, not assumed)."""
    from slimtune.exporting.benchmark import bench_onnx
    from slimtune.exporting.onnx_export import parity
    from slimtune.exporting.optimize import optimize_graph
    from slimtune.models.families import family_of
    from slimtune.models.surgery import model_shape

    try:
        # uniform models tell the fuser their head count; pruned ones (per-layer heads) let it detect
        uniform = model_shape(model) is None
        # a zero-layer student has no heads: the fuser then detects nothing rather than asserting
        heads, hidden = ((config.num_attention_heads, config.hidden_size) if uniform and config.num_attention_heads
                         else (0, 0))
        fusions = optimize_graph(plain, tmp / "optimized.onnx", heads, hidden, family_of(config).ort_model_type)
    except Exception as exc:  # the fuser is best effort; the plain graph is always valid
        log.info(f"graph optimisation skipped ({type(exc).__name__}: {str(exc)[:120]})")
        return plain, {}, "plain"
    check = parity(model, tmp / "optimized.onnx", feeds)
    if check["max_abs_diff"] > 1e-4 or not check["same_predictions"]:
        log.info(f"optimised graph failed parity ({check['max_abs_diff']:.2e}); keeping the plain graph")
        return plain, fusions, "plain"
    fast = bench_onnx(tmp / "optimized.onnx", spec.seq, spec.threads, iters=30)["latency_ms_p50"]
    slow = bench_onnx(plain, spec.seq, spec.threads, iters=30)["latency_ms_p50"]
    keep = "optimized" if fast < slow else "plain"
    log.info(f"graph fusions {fusions or 'none'}: {fast:.2f} ms optimised vs {slow:.2f} ms plain, keeping {keep}")
    return (tmp / "optimized.onnx" if keep == "optimized" else plain), fusions, keep


def _measure(folder: Path, data, spec: ExportSpec, has_int8: bool, bench_onnx, Bundle, tested: dict | None) -> dict:
    fp32 = bench_onnx(folder / "model.onnx", spec.seq, spec.threads)
    int8 = bench_onnx(folder / "model.int8.onnx", spec.seq, spec.threads) if has_int8 else None
    result = {
        "latency_ms_p50_fp32": fp32["latency_ms_p50"], "latency_ms_p90_fp32": fp32["latency_ms_p90"],
        "latency_ms_p99_fp32": fp32["latency_ms_p99"], "throughput_per_s_fp32": fp32["throughput_per_s"],
        "size_mb_fp32": fp32["size_mb"],
        "latency_ms_p50_int8": int8["latency_ms_p50"] if int8 else None,
        "latency_ms_p90_int8": int8["latency_ms_p90"] if int8 else None,
        "latency_ms_p99_int8": int8["latency_ms_p99"] if int8 else None,
        "throughput_per_s_int8": int8["throughput_per_s"] if int8 else None,
        "size_mb_int8": int8["size_mb"] if int8 else None,
        "latency_seq": spec.seq, "latency_threads": fp32["threads"],
        "accuracy_fp32": None, "accuracy_int8": None, "f1_macro_fp32": None, "f1_macro_int8": None,
        "int8_note": None, "test_fp32_from": None,
    }
    log.info(f"fp32: p50 {fp32['latency_ms_p50']:.2f} ms, {fp32['size_mb']:.1f} MB"
             + (f"; int8: p50 {int8['latency_ms_p50']:.2f} ms, {int8['size_mb']:.1f} MB "
                f"({fp32['latency_ms_p50'] / int8['latency_ms_p50']:.2f}x faster)" if int8 else ""))
    if data is not None:
        texts, labels = list(data.test["text"]), [data.label_names[i] for i in data.test["label"]]
        for kind, flag in (("fp32", False), ("int8", True)):
            if kind == "int8" and not has_int8:
                continue
            if kind == "fp32" and tested is not None:
                precision = tested.get("test_precision")
                scores, result["test_fp32_from"] = tested, f"stage-{precision}" if precision else "stage"
            else:
                # accuracy is not a timing: every core, large length-sorted batches
                scores = Bundle(folder, int8=flag, check=False).evaluate(texts, labels, batch_size=64)
                result["test_fp32_from"] = result["test_fp32_from"] or "bundle"
            result[f"accuracy_{kind}"], result[f"f1_macro_{kind}"] = scores["accuracy"], scores["f1_macro"]
            result[f"confusion_{kind}"] = scores["confusion"]  # rows: true label, columns: predicted
        log.info(f"test accuracy fp32 {result['accuracy_fp32']:.4f}"
                 + (f" (its fine-tuning's test pass: {result['test_fp32_from']}; not scored again)" if tested is not None else "")
                 + (f", int8 {result['accuracy_int8']:.4f}" if has_int8 else ""))
        if has_int8 and result["accuracy_fp32"] - result["accuracy_int8"] > INT8_MAX_ACCURACY_DROP:
            drop = 100 * (result["accuracy_fp32"] - result["accuracy_int8"])
            result["int8_note"] = (f"int8 loses {drop:.1f} accuracy points on the test split: "
                                   "use model.onnx (fp32) on the device.")
            log.info("WARNING: " + result["int8_note"])
    return result
