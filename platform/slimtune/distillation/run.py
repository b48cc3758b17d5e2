"""`slimtune distill`: teach a student from a fine-tuned teacher, on the same training loop.

Students: a model folder (e.g. `slimtune prune` output: the teacher's layers kept by index,
then width pruned), a model name (`builtin:minilm-l6`: another pretrained model, new head), or
`random:layers=4,hidden=256,heads=4,ffn=1024` (the teacher's architecture at that shape, random
weights, the teacher's tokenizer).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from slimtune import log
from slimtune.version import __version__
from slimtune.data import DataSpec, load_data, as_data_spec
from slimtune.distillation.losses import LossSpec
from slimtune.errors import SlimtuneError
from slimtune.storage import ensure_writable
from slimtune.train.loop import TrainSpec

_RANDOM_KEYS = {"layers": "num_hidden_layers", "hidden": "hidden_size", "heads": "num_attention_heads",
                "ffn": "intermediate_size"}


@dataclass(frozen=True)
class DistillSpec:
    """One distillation run."""

    teacher: str
    """A fine-tuned model folder."""
    student: str
    """A model folder, a model name, or random:layers=L,hidden=H,heads=A,ffn=F."""
    data: DataSpec
    out: str
    loss: LossSpec = field(default_factory=LossSpec)
    train: TrainSpec = field(default_factory=lambda: TrainSpec(epochs=3))
    max_length: int | None = None
    """Tokens per text; None: the teacher's own (a slimtune model records it), else picked from the data."""
    workers: int | None = None
    """As in finetune: 0 here, N on Ray Train, None: 1 under a cluster else 0."""
    use_gpu: bool = False
    storage: str | None = None
    """Ray Train's checkpoints: a folder every node reaches, or s3:// / gs:// (default: OUT/ray)."""
    linear_teacher: str | None = None
    """A linear TF-IDF bundle fitted on this data (a job's OUT/alternatives/linear): the soft
    targets become the teacher's and its log-probabilities together, weighted as validation
    prefers (`distillation.blend`)."""

    def __post_init__(self):
        object.__setattr__(self, "data", as_data_spec(self.data))  # a source string is enough
        if self.loss.temperature <= 0:
            raise SlimtuneError(f"--temperature: must be positive, got {self.loss.temperature}")
        if not 0 <= self.loss.alpha <= 1:
            raise SlimtuneError(f"--alpha: must be in [0, 1], got {self.loss.alpha}")
        if self.loss.hidden_weight < 0 or self.loss.attention_weight < 0:
            raise SlimtuneError("--hidden-weight / --attention-weight: must be 0 or more")


def parse_random_student(spec: str) -> dict:
    """`random:layers=4,hidden=256,heads=4,ffn=1024` -> config overrides."""
    body = spec.removeprefix("random:")
    overrides = {}
    for item in filter(None, body.split(",")):
        key, _, value = item.partition("=")
        if key not in _RANDOM_KEYS or not value.isdigit() or int(value) < 1:
            raise SlimtuneError(
                f"--student: '{item}' in {spec}: use layers=, hidden=, heads=, ffn= with positive integers"
            )
        overrides[_RANDOM_KEYS[key]] = int(value)
    hidden, heads = overrides.get("hidden_size"), overrides.get("num_attention_heads")
    if hidden and heads and hidden % heads:
        raise SlimtuneError(f"--student: hidden={hidden} is not a multiple of heads={heads}")
    return overrides


def _student(spec: DistillSpec, teacher_dir: str, teacher_tok, label_names, attn: str | None):
    """(student model, its tokenizer, where it came from)."""
    from slimtune.models import load_classifier, load_tokenizer, resolve_model

    if spec.student.startswith("random:"):
        from transformers import AutoConfig, AutoModelForSequenceClassification

        from slimtune.models.families import family_of

        config = AutoConfig.from_pretrained(teacher_dir)
        overrides = parse_random_student(spec.student)
        if "hidden_size" in overrides and "num_attention_heads" not in overrides and overrides["hidden_size"] % config.num_attention_heads:
            raise SlimtuneError(f"--student: hidden={overrides['hidden_size']} needs heads= dividing it")
        for key, value in overrides.items():  # the FFN width's field is the family's own
            setattr(config, family_of(config).ffn_config if key == "intermediate_size" else key, value)
        kwargs = {"attn_implementation": attn} if attn else {}
        return AutoModelForSequenceClassification.from_config(config, **kwargs), teacher_tok, "random"
    resolved = resolve_model(spec.student, "--student")
    return load_classifier(resolved, label_names, attn), load_tokenizer(resolved, "--student"), resolved


def uniform_layer_map(n_student: int, n_teacher: int) -> list[int]:
    """Student layer i learns from the last teacher layer of its block of n_teacher / n_student."""
    return [round((i + 1) * n_teacher / n_student) - 1 for i in range(n_student)]


def _layer_map(spec: DistillSpec, student_dir: str | None, n_student: int, n_teacher: int) -> list[int]:
    from slimtune.models.load import read_model_info

    if spec.loss.layer_map is not None:
        mapping = list(spec.loss.layer_map)
    else:
        pruned = read_model_info(student_dir).get("pruned", {}) if student_dir and Path(student_dir).is_dir() else {}
        if pruned.get("kept_layers") and len(pruned["kept_layers"]) == n_student:
            mapping = list(pruned["kept_layers"])  # a pruned student learns from the layers it came from
        else:
            mapping = uniform_layer_map(n_student, n_teacher)
    if len(mapping) != n_student or not all(0 <= t < n_teacher for t in mapping):
        raise SlimtuneError(f"--layer-map: give {n_student} teacher layers in 0..{n_teacher - 1}, got {mapping}")
    return mapping


def run_distill(spec: DistillSpec, data=None) -> dict:
    """Distil into the student; write out/model/ and out/metrics.json; return the metrics.
    `data`: already loaded TextData, else loaded from `spec.data`."""
    from slimtune.models import load_config, resolve_model

    out = ensure_writable(spec.out)
    teacher_dir = resolve_model(spec.teacher, "--teacher")
    if spec.student.startswith("random:"):
        parse_random_student(spec.student)  # bad shapes fail before any work
    else:  # the config (a hub id's too) before torch, data, teacher evaluation and its logits: seconds, not minutes
        load_config(resolve_model(spec.student, "--student"), "--student")
    from slimtune.distillation.blend import check_linear_teacher

    check_linear_teacher(spec.linear_teacher)
    import torch

    from slimtune.data.tokenize import encode_data
    from slimtune.distillation.cache import teacher_hidden, teacher_logits, teacher_test_metrics
    from slimtune.distillation.losses import DistillLoss, DistillModule
    from slimtune.models import load_classifier, load_tokenizer, save_model
    from slimtune.models.load import provenance
    from slimtune.models.surgery import encoder_layers
    from slimtune.train.finetune import FinetuneSpec, train_model
    from slimtune.train.report import model_metrics

    data = data if data is not None else load_data(spec.data)
    attn = "eager" if spec.loss.attention_weight > 0 else None  # sdpa returns no attention maps
    teacher_tok = load_tokenizer(teacher_dir, "--teacher")
    from dataclasses import replace

    from slimtune.data.length import inherit_truncation, resolve_max_length

    data = inherit_truncation(data, teacher_dir)
    spec = replace(spec, max_length=resolve_max_length(spec.max_length, teacher_dir, data, teacher_tok,
                                                       load_config(teacher_dir), spec.use_gpu))
    teacher = load_classifier(teacher_dir, data.label_names, attn).eval()
    t_enc = encode_data(data, teacher_tok, spec.max_length, transfer=True)
    teacher_report = teacher_test_metrics(teacher, teacher_dir, t_enc["test"], data.num_labels, teacher_tok.pad_token_id)
    log.info(f"teacher: test accuracy {teacher_report['accuracy']:.4f}, {teacher_report['encoder_flops'] / 1e9:.2f} GFLOPs")
    logits = teacher_logits(teacher, teacher_dir, t_enc["train"], teacher_tok.pad_token_id)
    blended = None
    if spec.linear_teacher:
        from slimtune.distillation.blend import blend_for

        logits, blended = blend_for(logits, spec.linear_teacher, teacher, teacher_dir, data, t_enc,
                                     teacher_tok.pad_token_id)

    torch.manual_seed(spec.train.seed)
    student, tok, student_src = _student(spec, teacher_dir, teacher_tok, data.label_names, attn)
    enc = t_enc if tok is teacher_tok else encode_data(data, tok, spec.max_length, transfer=True)
    mapping = _layer_map(spec, student_src, len(encoder_layers(student)), len(encoder_layers(teacher)))
    same_tokens = tok is teacher_tok or enc["train"].input_ids == t_enc["train"].input_ids
    if (spec.loss.hidden_weight or spec.loss.attention_weight) and not same_tokens:
        if not enc["train"].lines_up_with(t_enc["train"]):
            raise SlimtuneError(
                "--hidden-weight/--attention-weight: teacher and student tokenize the texts into different "
                "lengths, so positions do not line up; use logit distillation only (both weights 0)"
            )
    hidden = None
    if spec.loss.hidden_weight:  # read from disk each step instead of a teacher forward per step
        hidden = teacher_hidden(teacher, teacher_dir, t_enc["train"], teacher_tok.pad_token_id, mapping)
    loss_fn = DistillLoss(spec.loss, mapping, teacher_logits=logits, teacher_hidden=hidden,
                          teacher=teacher if spec.loss.attention_weight else None,
                          teacher_split=None if same_tokens else t_enc["train"], teacher_pad_id=teacher_tok.pad_token_id)
    module = DistillModule(student, teacher.config.hidden_size, spec.loss, mapping)
    train_spec = spec.train
    ft = FinetuneSpec(model=spec.student, data=spec.data, out=spec.out, train=train_spec,
                      max_length=spec.max_length, workers=spec.workers, use_gpu=spec.use_gpu, storage=spec.storage)
    module, record, startup, device = train_model(ft, module, enc, data, tok.pad_token_id, out, loss_fn=loss_fn)
    student = module.student
    report = model_metrics(student.eval(), enc["test"], data.num_labels, tok.pad_token_id)
    log.info(f"student: test accuracy {report['accuracy']:.4f} ({report['accuracy'] / teacher_report['accuracy']:.1%} "
             f"of the teacher), {report['encoder_flops'] / teacher_report['encoder_flops']:.2f}x the teacher's FLOPs")
    save_model(student, tok, out / "model", provenance(spec.student, data, spec.max_length, teacher=spec.teacher,
                                                       layer_map=mapping))
    metrics = {
        **report,
        "train_seconds": record.train_seconds,
        "startup_seconds": startup,
        "teacher": {k: v for k, v in teacher_report.items() if k != "confusion"},
        "accuracy_retained": report["accuracy"] / teacher_report["accuracy"] if teacher_report["accuracy"] else 0.0,
        "flops_ratio": report["encoder_flops"] / teacher_report["encoder_flops"],
        "layer_map": mapping,
        "labelled_rows": enc["train"].labelled(),
        "transfer_rows": len(enc["train"]) - enc["train"].labelled(),
        "best_epoch": record.best_epoch,
        "validation": record.best_metrics,
        "history": record.history,
        "device": device,
        "loss": asdict(spec.loss),
        "linear_teacher": blended,
        "train": {**asdict(train_spec), "lr": record.lr},
        "data": {"source": spec.data.source, "fingerprint": data.fingerprint},
        "slimtune_version": __version__,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log.info(f"wrote {out / 'model'} and {out / 'metrics.json'}")
    return metrics
