"""`slimtune prune`: score units, remove layers, hidden width, heads and FFN neurons, optionally
recover, save.

Structure (which weights belong together) lives in `models.surgery`, scoring in `importance`,
how much to cut in `policy`; this module only puts them in order.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from slimtune import log
from slimtune.version import __version__
from slimtune.data import DataSpec, load_data, as_data_spec
from slimtune.errors import SlimtuneError
from slimtune.storage import ensure_writable
from slimtune.pruning import IMPORTANCE


@dataclass(frozen=True)
class PruneSpec:
    """One structured-pruning run. Ratios are the fraction removed."""

    model: str
    """A fine-tuned model folder (the teacher), e.g. the output of `slimtune finetune`."""
    data: DataSpec
    out: str
    heads: float = 0.0
    """Fraction of attention heads removed (each layer keeps at least one)."""
    ffn: float = 0.0
    """Fraction of FFN (intermediate) neurons removed."""
    hidden: float = 0.0
    """Fraction of the hidden size (the residual stream's width) removed, rounded to a multiple of 8."""
    layers: int | tuple[int, ...] | None = None
    """Encoder layers kept: a count (evenly spaced, always including the last) or exact indices
    (0, 2, 5); None keeps all."""
    keep_layer_indices: tuple[int, ...] | None = None
    """Exactly which layers to keep (overrides `layers`)."""
    importance: str = "taylor"
    """magnitude (no data) or taylor (|weight x gradient| on calibration batches)."""
    scope: str = "layer"
    """layer: the same ratio in every layer; global: rank units model-wide."""
    calibration_batches: int = 8
    """Training batches used for Taylor scores."""
    sparsity: float = 0.0
    """Unstructured magnitude sparsity on top (a size effect only, reported as such)."""
    recover_epochs: int = 0
    """Fine-tune epochs after pruning to recover accuracy (0: none; distillation does better)."""
    max_length: int | None = None
    """Tokens per text; None: the model's own (a slimtune model records it), else picked from the data."""
    batch_size: int = 32
    vocab: str = "full"
    """full keeps the vocabulary; data keeps only the pieces the training rows (and --vocab-extra)
    tokenize to, shrinking the embedding table and the tokenizer together."""
    vocab_extra: str | None = None
    """A text file of unlabelled in-domain texts, one per line, whose pieces are kept too."""
    method: str = "oneshot"
    """oneshot: score once and cut by the ratios above; learned: hard-concrete gates over heads,
    FFN neurons and layers, trained with distillation towards `target_speedup` (pruning.learned)."""
    target_speedup: float | None = None
    """learned: the ONNX fp32 speed-up over the model being pruned to aim at, as the latency model
    predicts it (metrics.json reports the measured one beside)."""
    teacher: str | None = None
    """learned: the model distilled from (None: the model being pruned)."""
    epochs: int = 1
    """learned: epochs of gate training. One, then two of distillation: the gates reach the target
    within an epoch, and the kept shape then needs its own training (bench/learned.py
    --gate-epochs compares splits of the same 3 epochs)."""
    final_epochs: int = 2
    """learned: distillation epochs after the closed units are removed."""
    scores: str = "gates"
    """learned: what ranks the units `fit` cuts to the target. gates: hard-concrete gates trained
    for `epochs`; taylor: no gate training (`epochs` unused), Taylor scores of each kind divided by
    that kind's mean (`GatedModel.rank_by`): the cheap recipe the gates are measured against
    (bench/learned.py runs it with `final_epochs` 3, the 1 + 2 epochs of the learned arm)."""
    hidden_weight: float = 0.0
    """learned: weight of CoFi's layer-wise distillation while the gates train, the MSE between
    each gated layer's output and the same layer of the teacher, which must then be the model
    being pruned (0: logits only). Off by default: no bench here shows it helping."""
    lr: float | None = None
    """learned: peak learning rate of the weights (None: by width); the gates move faster, at a
    rate set by the number of steps (GatedModel.gate_lr)."""
    latency_model: str | None = None
    """learned: a saved latency model to reuse (None: profile the model first, saved to OUT)."""
    seq: int = 128
    """learned: tokens per input the latency is predicted and measured at."""
    threads: int = 1
    """learned: ONNX Runtime threads the latency is predicted and measured at."""
    train_seed: int | None = None
    """learned: seed of the gates' noise and of shuffling (None: the data's seed, which also fixes
    the split); a benchmark varies it over one split."""

    def __post_init__(self):
        object.__setattr__(self, "data", as_data_spec(self.data))  # a source string is enough
        if isinstance(self.layers, (tuple, list)):  # indices: the same as keep_layer_indices
            object.__setattr__(self, "keep_layer_indices", tuple(self.layers))
            object.__setattr__(self, "layers", None)
        for name in ("heads", "ffn", "hidden", "sparsity"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise SlimtuneError(f"--{name}: a fraction to remove in [0, 1), got {value}")
        if self.importance not in IMPORTANCE:
            raise SlimtuneError(f"--importance: use one of {', '.join(IMPORTANCE)}, not {self.importance}")
        if self.scope not in ("layer", "global"):
            raise SlimtuneError(f"--scope: use layer or global, not {self.scope}")
        if self.layers is not None and self.layers < 1:
            raise SlimtuneError(f"--layers: layers kept, at least 1, got {self.layers}")
        indices = self.keep_layer_indices
        if indices is not None and (not indices or min(indices) < 0 or len(set(indices)) < len(indices)):
            # sorted as given, -1 would put the last layer first
            raise SlimtuneError(f"--layers: layer indices are 0-based, non-negative and distinct, like 0,2,5; got "
                                f"{','.join(map(str, indices))}")
        if self.vocab not in ("full", "data"):
            raise SlimtuneError(f"--vocab: full (keep every piece) or data (the pieces the training rows use), not {self.vocab}")
        if self.method not in ("oneshot", "learned"):
            raise SlimtuneError(f"--method: oneshot or learned, not {self.method}")
        if self.scores not in ("gates", "taylor"):
            raise SlimtuneError(f"--scores: gates (trained) or taylor (no gate training), not {self.scores}")
        if self.scores == "taylor" and (self.method != "learned" or self.hidden_weight):
            raise SlimtuneError("--scores taylor: goes with --method learned and without --hidden-weight (no gates "
                                "train, so there is nothing to distil layer-wise into)")
        if self.method == "learned":
            if self.target_speedup is None or self.target_speedup <= 1:
                raise SlimtuneError(f"--target-speedup: --method learned needs a speed-up above 1, got {self.target_speedup}")
            fixed = [f"--{n}" for n in ("heads", "ffn", "hidden", "sparsity") if getattr(self, n)]
            fixed += ["--layers"] if self.layers is not None or self.keep_layer_indices else []
            fixed += ["--vocab data"] if self.vocab == "data" else []  # prune the result's vocabulary after
            if fixed:
                raise SlimtuneError(f"{', '.join(fixed)}: --method learned decides the cuts itself from "
                                    "--target-speedup; drop them (or use --method oneshot)")
            if self.epochs < 1 or self.final_epochs < 0:
                raise SlimtuneError("--epochs: at least 1 epoch of gate training; --final-epochs: 0 or more")
            if self.hidden_weight < 0:
                raise SlimtuneError(f"--hidden-weight: 0 (off) or more, got {self.hidden_weight}")
            if self.hidden_weight and self.teacher and self.teacher != self.model:
                raise SlimtuneError("--hidden-weight: maps each gated layer to the same layer of the teacher, so the "
                                    "teacher must be the model being pruned: drop --teacher or --hidden-weight")
        elif self.target_speedup is not None:
            raise SlimtuneError("--target-speedup: goes with --method learned (oneshot cuts by --heads/--ffn/--layers)")
        elif self.hidden_weight:
            raise SlimtuneError("--hidden-weight: goes with --method learned (distil a one-shot cut with slimtune distill)")
        if self.vocab_extra and (self.vocab != "data" or not Path(self.vocab_extra).is_file()):
            raise SlimtuneError(f"--vocab-extra: a text file (one text per line) that goes with --vocab data, got {self.vocab_extra}")


def hidden_kept(hidden_size: int, ratio: float) -> int:
    """Dimensions kept when `ratio` of `hidden_size` goes: a multiple of 8 (vector-friendly), at least 8."""
    return min(hidden_size, max(8, 8 * round(hidden_size * (1 - ratio) / 8)))


def apply_pruning(model, *, heads=0.0, ffn=0.0, hidden: float = 0.0, layers: int | None = None,
                  keep_layer_indices: tuple[int, ...] | None = None, importance: str = "magnitude",
                  scope: str = "layer", calibration=None) -> dict:
    """Remove layers, then hidden width, then heads and neurons, each scored on what remains.
    Returns what was kept.

    The arguments mean what PruneSpec's fields of the same names mean; `heads` and `ffn` may
    also list one ratio per kept layer."""
    from slimtune.models.surgery import encoder_layers, keep_layers, prune_ffn, prune_heads, prune_hidden
    from slimtune.pruning.importance import hidden_scores, magnitude_scores, taylor_hidden_scores, taylor_scores
    from slimtune.pruning.policy import evenly_spaced_layers, keep_per_layer
    from slimtune.train.loop import cross_entropy_loss

    import torch

    total = len(encoder_layers(model))
    kept_layers = list(range(total))
    if keep_layer_indices is not None:
        kept_layers = sorted(keep_layer_indices)
        if kept_layers[-1] >= total:
            raise SlimtuneError(f"--layers: the model has {total} layers (0..{total - 1}), got {kept_layers}")
    elif layers is not None:
        if layers > total:
            raise SlimtuneError(f"--layers: the model has {total} layers; keep at most {total}")
        kept_layers = evenly_spaced_layers(total, layers)
    if len(kept_layers) < total:
        keep_layers(model, kept_layers)
    record = {"kept_layers": kept_layers, "heads": [], "ffn": []}
    if hidden:
        width = model.config.hidden_size
        scores = (taylor_hidden_scores(model, calibration, cross_entropy_loss) if importance == "taylor"
                  else hidden_scores(model))
        prune_hidden(model, sorted(torch.topk(scores, hidden_kept(width, hidden)).indices.tolist()))
        record["hidden_size"] = model.config.hidden_size
    if heads or ffn:
        if importance == "taylor":
            head_scores, ffn_scores = taylor_scores(model, calibration, cross_entropy_loss)
        else:
            head_scores, ffn_scores = magnitude_scores(model)
        try:
            heads = keep_per_layer(head_scores, heads, scope)
            neurons = keep_per_layer(ffn_scores, ffn, scope)
        except ValueError as exc:
            raise SlimtuneError(f"--heads/--ffn: {exc}") from None
        for i in range(len(kept_layers)):
            if heads and len(heads[i]) < len(head_scores[i]):
                prune_heads(model, i, heads[i])
            if ffn and len(neurons[i]) < len(ffn_scores[i]):
                prune_ffn(model, i, neurons[i])
        record["heads"] = [len(h) for h in heads]
        record["ffn"] = [len(n) for n in neurons]
    return record


def _layer_count(resolved: str) -> int:
    """Encoder layers, from a local folder's config.json as plain JSON (no transformers import: a
    bad --layers fails in the seconds of reading flags), else from the loaded config."""
    path = Path(resolved) / "config.json"
    if path.is_file():
        config = json.loads(path.read_text())
        for key in ("num_hidden_layers", "n_layers"):  # DistilBERT calls it n_layers
            if isinstance(config.get(key), int):
                return config[key]
    from slimtune.models import load_config

    return load_config(resolved).num_hidden_layers


def run_prune(spec: PruneSpec, data=None) -> dict:
    """Prune `spec.model`; write out/model/ and out/metrics.json (teacher figures beside).
    `data`: already loaded TextData, else loaded from `spec.data`."""
    from slimtune.models import load_classifier, load_tokenizer, resolve_model, save_model
    from slimtune.models.load import provenance, read_model_info

    out = Path(spec.out)
    resolved = resolve_model(spec.model)
    total = _layer_count(resolved)
    if total == 0:  # the zero-layer student has no heads, neurons or layers
        raise SlimtuneError(f"--model: {spec.model} has no layers to prune (a zero-layer student); prune the "
                            "model it was made from")
    # the config says how many layers there are: refuse an impossible cut before data and weights load
    if spec.layers is not None and spec.layers > total:
        raise SlimtuneError(f"--layers: the model has {total} layers; keep at most {total}")
    if spec.keep_layer_indices and max(spec.keep_layer_indices) >= total:
        raise SlimtuneError(f"--layers: the model has {total} layers (0..{total - 1}), got "
                            f"{','.join(map(str, spec.keep_layer_indices))}")
    ensure_writable(out)
    data = data if data is not None else load_data(spec.data)
    from dataclasses import replace

    from slimtune.data.length import inherit_truncation, resolve_max_length
    from slimtune.models import load_config

    data = inherit_truncation(data, resolved)
    spec = replace(spec, max_length=resolve_max_length(spec.max_length, resolved, data, load_tokenizer(resolved),
                                                       load_config(resolved)))
    if spec.method == "learned":
        return run_learned(spec, data)
    import torch

    from slimtune.data.tokenize import encode_data
    from slimtune.pruning.importance import calibration_batches
    from slimtune.train.report import model_metrics

    tokenizer = load_tokenizer(resolved)
    encoded = encode_data(data, tokenizer, spec.max_length)
    model = load_classifier(resolved, data.label_names).eval()
    pad = tokenizer.pad_token_id
    before = model_metrics(model, encoded["test"], data.num_labels, pad)  # not cached: `--model` may have a new head
    log.info(f"before: test accuracy {before['accuracy']:.4f}, {before['num_parameters']:,} parameters, "
             f"{before['encoder_flops'] / 1e9:.2f} GFLOPs")
    torch.manual_seed(spec.data.seed)
    calibration = None
    if spec.importance == "taylor" and (spec.heads or spec.ffn or spec.hidden):
        calibration = calibration_batches(encoded["train"], pad, spec.batch_size, spec.calibration_batches, spec.data.seed)
    started = time.perf_counter()
    kept = apply_pruning(model, heads=spec.heads, ffn=spec.ffn, hidden=spec.hidden, layers=spec.layers,
                         keep_layer_indices=spec.keep_layer_indices, importance=spec.importance,
                         scope=spec.scope, calibration=calibration)
    sparse = None
    if spec.sparsity:
        from slimtune.pruning.sparsity import sparsify

        sparse = sparsify(model, spec.sparsity)
    prune_seconds = time.perf_counter() - started
    history = []
    if spec.recover_epochs:
        from slimtune.train.loop import TrainSpec, train

        record = train(model, encoded["train"], encoded["validation"],
                       TrainSpec(epochs=spec.recover_epochs, batch_size=spec.batch_size, seed=spec.data.seed),
                       num_labels=data.num_labels, pad_token_id=pad)
        history = record.history
    vocab = {"vocab_size": len(tokenizer)}
    if spec.vocab == "data":
        from slimtune.models.vocab import coverage, prune_to_data, read_extra_texts

        extra = read_extra_texts(spec.vocab_extra) + list(data.unlabeled)  # the transfer set's pieces too
        model, tokenizer, vocab = prune_to_data(model, tokenizer, encoded["train"], extra, spec.max_length,
                                                data.truncation)
        encoded = encode_data(data, tokenizer, spec.max_length)  # test texts may now split differently
        vocab["test_unknown_share"] = coverage(tokenizer, list(data.test["text"]), spec.max_length)["unknown_share"]
        log.info(f"vocabulary: {vocab['vocab_size']:,} of {vocab['vocab_size_before']:,} pieces kept; "
                 f"{100 * vocab['test_unknown_share']:.2f}% of the test split's pieces are now unknown")
    after = model_metrics(model.eval(), encoded["test"], data.num_labels, tokenizer.pad_token_id)
    log.info(f"after:  test accuracy {after['accuracy']:.4f}, {after['num_parameters']:,} parameters, "
             f"{after['encoder_flops'] / 1e9:.2f} GFLOPs ({after['encoder_flops'] / before['encoder_flops']:.2f}x)")
    save_model(model, tokenizer, out / "model", provenance(spec.model, data, spec.max_length, pruned=kept, vocab=vocab,
                                                           teacher=spec.model, teacher_info=read_model_info(resolved)))
    metrics = {
        **after,
        "teacher": {k: v for k, v in before.items() if k != "confusion"},
        "flops_ratio": after["encoder_flops"] / before["encoder_flops"],
        "accuracy_retained": after["accuracy"] / before["accuracy"] if before["accuracy"] else 0.0,
        "pruned": kept,
        **vocab,
        "sparsity": sparse,
        "prune_seconds": prune_seconds,
        "recover_history": history,
    }
    return write_metrics(out, spec, data, metrics)


def write_metrics(out: Path, spec: PruneSpec, data, metrics: dict) -> dict:
    """Add the settings, the data's identity and the version; write out/metrics.json."""
    metrics = {**metrics, "spec": {k: v for k, v in asdict(spec).items() if k != "data"},
               "data": {"source": spec.data.source, "fingerprint": data.fingerprint}, "slimtune_version": __version__}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log.info(f"wrote {out / 'model'} and {out / 'metrics.json'}")
    return metrics


def run_learned(spec: PruneSpec, data) -> dict:
    """`slimtune prune --method learned`: train gates towards the target speed-up with distillation,
    remove what they closed, distil briefly again, time teacher and student in turns; write
    out/model/, out/metrics.json and out/latency_model.json. The stage lives here; the gates'
    algorithm in pruning.learned (which imports nothing of this module)."""
    from dataclasses import replace

    from slimtune.data.tokenize import encode_data
    from slimtune.distillation.cache import teacher_logits, teacher_test_metrics
    from slimtune.distillation.losses import DistillLoss, LossSpec
    from slimtune.exporting.latency_model import LatencyModel, profile
    from slimtune.models import load_classifier, load_config, load_tokenizer, resolve_model, save_model
    from slimtune.models.load import provenance
    from slimtune.models.surgery import encoder_layers, model_layer_shape
    from slimtune.pruning.learned import learn_and_cut, measure_pair
    from slimtune.storage import ensure_writable
    from slimtune.train.loop import TrainSpec, train
    from slimtune.train.report import model_metrics

    out = ensure_writable(spec.out)
    resolved = resolve_model(spec.model)
    teacher_dir = resolve_model(spec.teacher or spec.model, "--teacher")
    latency = LatencyModel.load(spec.latency_model) if spec.latency_model else None  # a bad file fails now
    config = load_config(resolved)
    if latency is not None:  # before any data or weights are read
        latency.check(family=config.model_type, hidden_size=config.hidden_size,
                      num_heads=config.num_attention_heads, seq=spec.seq, threads=spec.threads, batch=1,
                      precision="fp32")
    tokenizer, teacher_tok = load_tokenizer(resolved), load_tokenizer(teacher_dir, "--teacher")
    encoded = encode_data(data, tokenizer, spec.max_length, transfer=True)  # the transfer set teaches the gates too
    same = teacher_dir == resolved
    t_enc = encoded if same else encode_data(data, teacher_tok, spec.max_length, transfer=True)
    teacher = load_classifier(teacher_dir, data.label_names).eval()
    model = load_classifier(resolved, data.label_names)
    pad = tokenizer.pad_token_id
    before = teacher_test_metrics(teacher, teacher_dir, t_enc["test"], data.num_labels, teacher_tok.pad_token_id)
    log.info(f"teacher: test accuracy {before['accuracy']:.4f}")
    logits = teacher_logits(teacher, teacher_dir, t_enc["train"], teacher_tok.pad_token_id)
    if latency is None:
        log.info(f"profiling {resolved} under ONNX Runtime ({spec.threads} thread(s), {spec.seq} tokens) for the "
                 "latency model; pass --latency-model to reuse one")
        latency = profile(model, seq=spec.seq, threads=spec.threads)
        latency.save(out / "latency_model.json")

    started = time.perf_counter()
    # layer-wise (--hidden-weight): each gated layer against the same layer of the live teacher,
    # which is the model itself (PruneSpec checks); a skipped layer passes its input on
    distill = DistillLoss(LossSpec(hidden_weight=spec.hidden_weight), list(range(len(encoder_layers(model)))),
                          teacher_logits=logits, teacher=teacher if spec.hidden_weight else None,
                          teacher_split=None if same else t_enc["train"], teacher_pad_id=teacher_tok.pad_token_id)
    seed = spec.data.seed if spec.train_seed is None else spec.train_seed
    gate_spec = TrainSpec(epochs=spec.epochs, batch_size=spec.batch_size, lr=spec.lr, seed=seed)
    # the target is relative to the model being pruned (the teacher unless --teacher says otherwise)
    target_ms = latency.predict(model_layer_shape(model)) / spec.target_speedup
    kept, gate_record, trace = learn_and_cut(model, latency, target_ms, distill, encoded["train"],
                                             encoded["validation"], gate_spec, num_labels=data.num_labels,
                                             pad_token_id=pad, hidden=spec.hidden_weight > 0, scores=spec.scores)
    final_record = None
    if spec.final_epochs:
        final = DistillLoss(LossSpec(), list(range(len(kept["kept_layers"]))), teacher_logits=logits,
                            teacher_split=None if same else t_enc["train"], teacher_pad_id=teacher_tok.pad_token_id)
        final_record = train(model, encoded["train"], encoded["validation"], replace(gate_spec, epochs=spec.final_epochs),
                             num_labels=data.num_labels, pad_token_id=pad, loss_fn=final)
    prune_seconds = time.perf_counter() - started
    after = model_metrics(model.eval(), encoded["test"], data.num_labels, pad)
    # the target is relative to the model pruned, so is the speed-up: with another --teacher, time that model
    original = teacher if same else load_classifier(resolved, data.label_names).eval()
    base_ms, student_ms = measure_pair(original, model, spec.seq, spec.threads)
    predicted = latency.predict(model_layer_shape(model))
    log.info(f"after: test accuracy {after['accuracy']:.4f} ({after['accuracy'] / before['accuracy']:.1%} of the "
             f"teacher), {student_ms:.2f} ms against {base_ms:.2f} ms for {'the' if same else 'the model it pruned,'} "
             f"{spec.model}: {base_ms / student_ms:.2f}x (target {spec.target_speedup:g}x; predicted {predicted:.2f} ms)")
    save_model(model, tokenizer, out / "model", provenance(spec.model, data, spec.max_length, pruned=kept,
                                                           teacher=spec.teacher or spec.model, method="learned"))
    metrics = {
        **after,
        "teacher": {k: v for k, v in before.items() if k != "confusion"},
        "accuracy_retained": after["accuracy"] / before["accuracy"] if before["accuracy"] else 0.0,
        "latency_ms": student_ms,
        "base_latency_ms": base_ms,
        "teacher_latency_ms": base_ms if same else None,
        "speedup": base_ms / student_ms,
        "speedup_of": "the model pruned (--model), as the target is",
        "latency_ms_predicted": predicted,
        "target_speedup": spec.target_speedup,
        "pruned": kept,
        "shape": [{"heads": h, "ffn": f} for h, f in model_layer_shape(model)],
        "gate_history": gate_record.history if gate_record else [],
        "gate_trace": trace,
        "final_history": final_record.history if final_record else [],
        "prune_seconds": prune_seconds,
    }
    return write_metrics(Path(out), spec, data, metrics)
