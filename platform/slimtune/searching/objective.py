"""One trial: build the candidate student from the teacher, distil it, measure it. No Ray here.

Everything a trial reads that does not depend on the candidate (tokenized data, the teacher's
cached logits, the teacher's weights) is computed once per search and handed in as `Shared`.
Latency is measured the same way for every trial and for the teacher: ONNX Runtime fp32 on the
CPU, fixed threads, batch 1, the job's sequence length, after warm-up.

A candidate with layers=0 is the zero-layer student (models.bag): the base's embeddings, a masked
mean and a new head, distilled from the teacher's logits alone.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from slimtune.errors import SlimtuneError
from slimtune.searching.space import Candidate


@dataclass
class Shared:
    """Per-search inputs, built once by the driver. The search's own settings are its SearchSpec
    (`spec`, `max_length` resolved from the data), not copied field by field."""

    spec: object  # SearchSpec (typed loosely: the driver imports this module)
    seq: int
    """Tokens a student is timed at: the spec's (a job's export.seq), capped by the teacher's positions."""
    teacher_state: dict
    teacher_config: object
    teacher_shape: dict | None
    tokenizer_dir: str
    label_names: tuple[str, ...]
    encoded: dict  # train / validation / test EncodedSplit
    teacher_logits: torch.Tensor
    pad_token_id: int
    texts: dict | None = None
    """train / validation / test texts, for a student whose vocabulary is pruned (it re-encodes them)."""
    data_fingerprint: str = ""
    truncation: str = "head"
    """How long texts are cut (DataSpec.truncation): students re-encode and record it."""
    latency_model: dict | None = None
    """A LatencyModel's fields, when the search predicts latency beside measuring it."""
    batch_size: int = 32

    @property
    def max_length(self) -> int:
        return self.spec.max_length

    @property
    def seed(self) -> int:
        return self.spec.seed


def teacher_model(shared: Shared, attn_implementation: str | None = None):
    from slimtune.models.surgery import rebuild

    model = rebuild(shared.teacher_config, shared.teacher_shape, attn_implementation)
    model.load_state_dict(shared.teacher_state)
    return model.eval()


def predicted_latency(shared: Shared, model) -> float | None:
    """The latency model's figure for `model`, when the search has one and it covers the model's
    width (a narrowed student or another base is outside a profile of the teacher's width)."""
    if not shared.latency_model:
        return None
    from slimtune.exporting.latency_model import LatencyModel

    profiled = LatencyModel(**shared.latency_model)
    return profiled.predict_model(model) if model.config.hidden_size == profiled.hidden_size else None


def measure_latency_ms(model, folder: Path, seq: int, threads: int) -> tuple[float, float]:
    """(p50 ms of ONNX Runtime fp32 at batch 1 x seq, ONNX file MB)."""
    from slimtune.exporting.benchmark import bench_onnx
    from slimtune.exporting.onnx_export import export_onnx

    path = export_onnx(model, folder / "model.onnx")
    report = bench_onnx(path, seq=seq, threads=threads, iters=30, throughput_batch=1)
    size = path.stat().st_size / 1e6
    path.unlink()
    return report["latency_ms_p50"], size


def run_candidate(candidate: Candidate, shared: Shared, folder: Path, log_every: int = 10_000, train_fn=None,
                  shape: dict | None = None) -> dict:
    """Build, distil, evaluate and time one candidate; save its model under `folder/model`.

    `train_fn` (default: the plain loop in this process) trains the distillation module in
    place and returns its TrainResult; the search driver passes a Ray Train one for trials that
    run on several workers.

    `shape`: a cut already found (a learned trial's `pruned` record: the base's layers kept, heads and
    FFN neurons kept per layer), taken instead of the candidate's cut and gates: the winners stage
    distils a learned front member afresh at the shape its gates found, not gated again."""
    from slimtune import log
    from slimtune.version import __version__
    from slimtune.distillation.cache import teacher_hidden
    from slimtune.distillation.losses import DistillLoss, DistillModule
    from slimtune.distillation.run import uniform_layer_map
    from slimtune.models.bag import bag_from
    from slimtune.models.vocab import prune_to_data
    from slimtune.models.load import save_model
    from slimtune.models.surgery import encoder_flops, encoder_layers, model_layer_shape
    from slimtune.pruning.importance import calibration_batches
    from slimtune.pruning.run import apply_pruning
    from slimtune.train.loop import evaluate, train

    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(shared.seed)
    attn = "eager" if candidate.attention_weight else None  # attention maps need eager attention (sdpa has none)
    teacher = teacher_model(shared, attn)
    student, tokenizer, encoded, source = _base(candidate, shared, teacher, attn)
    length = min(candidate.seq or shared.max_length, shared.max_length)  # what the student reads
    if length < shared.max_length:  # rows keep their order: the teacher's logits (of whole texts) still line up
        encoded = _encode(shared, tokenizer, length)
    calibration = None
    if candidate.importance == "taylor" and (candidate.heads or candidate.ffn or candidate.hidden or shape):
        calibration = calibration_batches(encoded["train"], tokenizer.pad_token_id, shared.batch_size, 4, shared.seed)
    n_base = len(encoder_layers(student))
    base_shape = model_layer_shape(student)
    if candidate.layers == 0:  # the base's embeddings under a new head (the candidate refused every layer knob)
        student, kept = bag_from(student, seed=shared.seed), {"kept_layers": [], "heads": [], "ffn": [], "bag": True}
    elif shape is not None:  # the recorded shape; units ranked by the candidate's importance
        layers = shape["kept_layers"]
        kept = apply_pruning(student, keep_layer_indices=tuple(layers), hidden=candidate.hidden,
                             heads=tuple(1 - n / base_shape[i][0] for i, n in zip(layers, shape["heads"])),
                             ffn=tuple(1 - n / base_shape[i][1] for i, n in zip(layers, shape["ffn"])),
                             importance=candidate.importance, calibration=calibration)
        kept = {**kept, "kept_layers": list(layers), "method": candidate.method, "shape_from": "the trial",
                **({"gates_ms": shape["gates_ms"]} if "gates_ms" in shape else {})}
    else:
        kept = apply_pruning(student, heads=candidate.heads, ffn=candidate.ffn, hidden=candidate.hidden,
                             layers=candidate.layers, importance=candidate.importance, calibration=calibration)
    if candidate.method == "learned" and shape is None:
        kept = _learn_shape(candidate, shared, teacher, base_shape, student, encoded, kept, tokenizer.pad_token_id,
                            train_fn)
    vocab = {"vocab_size": len(tokenizer), "vocab": "full"}
    if (candidate.vocab or shared.spec.vocab) == "data":
        student, tokenizer, vocab = prune_to_data(student, tokenizer, encoded["train"])
        vocab["vocab"] = "data"
        # training texts keep their pieces (new ids); validation and test texts may split differently
        encoded = _encode(shared, tokenizer, length)
    pad = tokenizer.pad_token_id
    # a student cut from the teacher learns from the layers it kept; another base from evenly spaced
    # ones; the zero-layer student keeps none, so it learns from the logits alone
    mapping = (kept["kept_layers"] if candidate.base == "teacher"
               else uniform_layer_map(len(kept["kept_layers"]), len(encoder_layers(teacher))))
    aligned = encoded is shared.encoded or encoded["train"].lines_up_with(shared.encoded["train"])
    hidden_weight = candidate.hidden_weight if aligned else 0.0  # positions must line up token for token
    attention_weight = candidate.attention_weight if aligned else 0.0
    if (candidate.hidden_weight or candidate.attention_weight) and not aligned:
        log.info(f"base {candidate.base}: its tokens do not line up with the teacher's; logits only")
    loss_spec = _loss_spec(candidate, hidden_weight, attention_weight)
    module = DistillModule(student, teacher.config.hidden_size, loss_spec, mapping)
    hidden_cache = None
    if hidden_weight:
        hidden_cache = teacher_hidden(teacher, shared.tokenizer_dir, shared.encoded["train"], shared.pad_token_id,
                                      mapping)
    loss_fn = DistillLoss(loss_spec, mapping, teacher_logits=shared.teacher_logits,
                          teacher=teacher if attention_weight else None, teacher_hidden=hidden_cache,
                          teacher_split=None if encoded is shared.encoded else shared.encoded["train"],
                          teacher_pad_id=shared.pad_token_id)
    spec = _train_spec(candidate, shared, log_every)
    if candidate.method == "learned" and shape is None:  # the gates had their share of the epochs and steps
        spec = learned_budget(candidate, spec)[1]
    record = (train_fn or train)(module, encoded["train"], encoded["validation"], spec,
                                 num_labels=len(shared.label_names), pad_token_id=pad, loss_fn=loss_fn)
    student = module.student.eval()
    test = evaluate(student, encoded["test"], len(shared.label_names), pad)
    student = student.cpu()  # trained on a GPU when the trial has one; timed and saved on the CPU
    # at the search's fixed shape, where the winners are judged too (export.seq); a student given a
    # shorter input (the `seq` knob) at the length it reads, its export length
    seq = min(shared.seq, length) if candidate.seq else shared.seq
    latency, onnx_mb = measure_latency_ms(student, folder, seq, shared.spec.latency_threads)
    save_model(student, tokenizer, folder / "model", {
        "slimtune_version": __version__, "source_model": source, "teacher": shared.tokenizer_dir,
        "data_fingerprint": shared.data_fingerprint, "label_names": list(shared.label_names),
        "max_length": length, "truncation": shared.truncation, "pruned": kept, "vocab": vocab, "candidate": candidate.as_dict()})
    return {
        "accuracy": record.best_metrics["accuracy"],  # validation: the search never looks at test
        "test_accuracy": test["accuracy"],
        "test_f1_macro": test["f1_macro"],
        "latency_ms": latency,
        # the latency model was profiled at the search's length: no prediction for a student that reads fewer
        "latency_ms_predicted": predicted_latency(shared, student) if seq == shared.seq else None,
        "size_mb": onnx_mb,
        "num_parameters": sum(p.numel() for p in student.parameters()),
        "encoder_flops": encoder_flops(student, seq),
        "num_layers": len(encoder_layers(student)),  # what it kept (the knob is a bound for a learned one)
        "seq": seq,
        "trial_seconds": time.perf_counter() - started,
        # the trial's budget: a learned one's gates take their share of `epochs` (Candidate.method)
        "gate_epochs": gate_epochs(candidate) if candidate.method == "learned" and shape is None else 0,
        "distill_epochs": len(record.history),
        "labelled_rows": encoded["train"].labelled(),
        "transfer_rows": len(encoded["train"]) - encoded["train"].labelled(),
        "lr": record.lr,
        "vocab_size": vocab["vocab_size"],
        "hidden_size": student.config.hidden_size,
        "base_layers": n_base,
        "model_path": str(folder / "model"),
    }


def _learn_shape(candidate: Candidate, shared: Shared, teacher, base_shape, student, encoded, kept: dict,
                 pad_token_id: int, train_fn) -> dict:
    """Gates trained for the candidate's share of gate epochs (`gate_epochs`) towards its target
    speed-up, then removal; the layers kept so far map to their place in the base."""
    from slimtune.distillation.losses import DistillLoss
    from slimtune.exporting.latency_model import LatencyModel
    from slimtune.pruning.learned import learn_and_cut

    if not shared.latency_model:
        raise SlimtuneError("space: method learned needs a latency model: pass --latency-model "
                            "(slimtune bench --profile --model TEACHER --out FILE.json)")
    latency = LatencyModel(**shared.latency_model)
    if latency.hidden_size != student.config.hidden_size:
        raise SlimtuneError(f"space: method learned: the latency model is for hidden size {latency.hidden_size}, "
                            f"this student has {student.config.hidden_size} (base {candidate.base}, hidden "
                            f"{candidate.hidden}); profile that width too")
    loss = DistillLoss(_loss_spec(candidate), list(range(len(kept["kept_layers"]))),
                       teacher_logits=shared.teacher_logits,
                       teacher_split=None if encoded is shared.encoded else shared.encoded["train"],
                       teacher_pad_id=shared.pad_token_id)
    # relative to the teacher where the profile fits its width, else to the base before any cut
    full_ms = (latency.predict_model(teacher) if teacher.config.hidden_size == latency.hidden_size
               else latency.predict(base_shape))
    target_ms = full_ms / candidate.target_speedup
    spec = learned_budget(candidate, _train_spec(candidate, shared))[0]
    shape, _, _ = learn_and_cut(student, latency, target_ms, loss, encoded["train"],
                                encoded["validation"], spec, num_labels=len(shared.label_names),
                                pad_token_id=pad_token_id, train_fn=train_fn)
    return {**kept, "kept_layers": [kept["kept_layers"][i] for i in shape["kept_layers"]],
            "heads": shape["heads"], "ffn": shape["ffn"], "method": "learned", "gates_ms": shape["gates_ms"]}


def gate_epochs(candidate: Candidate) -> int:
    """A learned trial's epochs of gate training: half of its epochs, at least one (Candidate.method)."""
    return max(1, candidate.epochs // 2)


def learned_budget(candidate: Candidate, spec):
    """A learned trial's TrainSpec in two: the gates' share (`gate_epochs`, and as much of a step
    cap), then the rest for distilling the kept shape, so the trial trains as long as a one-shot one."""
    gates = gate_epochs(candidate)
    gate_steps = spec.max_steps and max(1, round(spec.max_steps * gates / max(candidate.epochs, 2)))
    return (replace(spec, epochs=gates, max_steps=gate_steps),
            replace(spec, epochs=max(1, candidate.epochs - gates),
                    max_steps=spec.max_steps and max(1, spec.max_steps - gate_steps)))


def _loss_spec(candidate: Candidate, hidden_weight: float = 0.0, attention_weight: float = 0.0):
    """The candidate's distillation loss: one place for the gates' training and the student's."""
    from slimtune.distillation.losses import LossSpec

    return LossSpec(temperature=candidate.temperature, standardize=candidate.standardize, alpha=candidate.alpha,
                    hidden_weight=hidden_weight, attention_weight=attention_weight)


def _train_spec(candidate: Candidate, shared: Shared, log_every: int = 10_000):
    """The candidate's training run: its epochs and rate, the search's batch, seed and step cap."""
    from slimtune.train.loop import TrainSpec

    return TrainSpec(epochs=candidate.epochs, batch_size=shared.batch_size, lr=candidate.lr, seed=shared.seed,
                     log_every=log_every, max_steps=shared.spec.max_steps)


def _encode(shared: Shared, tokenizer, length: int | None = None) -> dict:
    from slimtune.data.tokenize import encode

    return {split: encode(shared.texts[split], shared.encoded[split].labels, tokenizer, length or shared.max_length,
                          shared.truncation)
            for split in ("train", "validation", "test")}


def _base(candidate: Candidate, shared: Shared, teacher, attn: str | None):
    """(student before pruning, its tokenizer, the data in its tokens, where it came from): a copy of
    the teacher, or another pretrained model with a new head for the teacher's labels."""
    from transformers import AutoTokenizer

    if candidate.base == "teacher":
        return copy.deepcopy(teacher), AutoTokenizer.from_pretrained(shared.tokenizer_dir), shared.encoded, shared.tokenizer_dir
    from slimtune.models import load_classifier, load_tokenizer, resolve_model

    resolved = resolve_model(candidate.base, "space: knob base")
    tokenizer = load_tokenizer(resolved, "space: knob base")
    return load_classifier(resolved, shared.label_names, attn), tokenizer, _encode(shared, tokenizer), candidate.base
