"""Job files for `slimtune run`: each section is the stage's own settings object, the one the
CLI and the Python API build (see slimtune.settings), checked whole before any work.

    model, out, teacher, storage   the job's own keys
    reference                      a small pretrained model fine-tuned directly with the finetune
                                   settings (finetune.lr, when the job fine-tunes its teacher, only
                                   where it is as wide as the teacher, else its own width's
                                   default): what a user would do without slimtune, in the report
    data:      DataSpec      (source, text_column, label_column, max_train_samples, seed, unlabeled,
                              max_unlabeled_samples, truncation, ...)
    finetune:  FinetuneSpec  (epochs, batch_size, lr, max_length, workers, use_gpu, ...)
    search:    SearchSpec    (space, constraints, trials, concurrency, sampler, objectives, ...)
    winners:   WinnersSpec   (count, min_accuracy_ratio, max_latency_ms, min_speedup, epochs)
    export:    ExportSpec    (int8, seq, threads, rounds, ...)
    alternatives: AlternativesSpec (linear, latency_texts)

`reference:` defaults to builtin:minilm-l6 whenever `model` is another model; `reference: null`
turns it off.

The job fills in what links the stages (each stage's model, data, out and storage; the search's
max_length from finetune and seq from export), so a section cannot set those. An unknown key
or a wrong type fails with one line naming the key path (`finetune.epohcs`); `key=value`
overrides from the command line are applied before the check.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from slimtune.data import DataSpec
from slimtune.errors import SlimtuneError
from slimtune.exporting.bundle import ExportSpec
from slimtune.searching.driver import SearchSpec
from slimtune.settings import build_section, build_spec, check_type, flat_keys
from slimtune.train.finetune import FinetuneSpec


@dataclass(frozen=True)
class WinnersSpec:
    """The job's `winners:` section: trials distilled again with the full budget."""

    count: int = 2
    """How many trials at most are distilled again (`pipeline.pick_winners` says which): with a
    budget, the front member most accurate within it, the deepest trial within it, then the most
    accurate others; that one alone when the most accurate is the deepest."""
    min_accuracy_ratio: float = 0.97
    """Without a budget (`max_latency_ms`, `min_speedup`): the chosen winner is the fastest whose
    validation accuracy is at least this share of the teacher's (the most accurate when none is)."""
    max_latency_ms: float | None = None
    """A latency budget from text to label (batch 1, the export's threads): when set it decides,
    before and instead of `min_accuracy_ratio`: the most accurate winner within it (the fastest
    when none fits), and the trials within it are the ones distilled again."""
    min_speedup: float | None = None
    """A budget relative to the teacher, "at least N x faster than my teacher": the teacher's fp32
    latency divided by N, then as `max_latency_ms` (the search's fixed-shape latency picks the
    winners, the bundles' latency from text chooses). Set one of the two budgets."""
    epochs: int = 3
    """Distillation epochs of the final run, on all training rows of the data section."""

    def __post_init__(self):
        if self.count < 1 or self.epochs < 1:
            raise SlimtuneError(f"winners.count and winners.epochs must be at least 1, got {self.count}, {self.epochs}")
        if not 0 < self.min_accuracy_ratio <= 1:
            raise SlimtuneError(f"winners.min_accuracy_ratio must be in (0, 1], got {self.min_accuracy_ratio}")
        if self.max_latency_ms is not None and self.max_latency_ms <= 0:
            raise SlimtuneError(f"winners.max_latency_ms must be a positive number of milliseconds, got {self.max_latency_ms}")
        if self.min_speedup is not None and self.min_speedup < 1:
            raise SlimtuneError(f"winners.min_speedup must be at least 1 (times faster than the teacher), got {self.min_speedup}")
        if self.min_speedup is not None and self.max_latency_ms is not None:
            raise SlimtuneError("winners: set max_latency_ms or min_speedup, not both (each is a latency budget)")


@dataclass(frozen=True)
class AlternativesSpec:
    """The job's `alternatives:` section: what a user would do without slimtune, fitted and timed
    beside the winners (the teacher's fp32 and int8 bundles and the `reference:` are always there)."""

    linear: bool = True
    """Fit a TF-IDF (word + char_wb n-grams) logistic regression on the job's training rows."""
    latency_texts: int = 200
    """Real test texts each bundle is timed on, from text to label."""
    teach: bool | str = "auto"
    """The linear model teaches too: the trials' and winners' soft targets are the teacher's and
    its log-probabilities together, weighted as validation prefers (`distill --linear-teacher`).
    auto: when the two together beat the teacher alone on validation by a point
    (`distillation.blend.TEACH_MARGIN`), decided after the alternatives stage: they did on the five
    computer newsgroups and 20news; on the tweets, where the blend added nothing on test, they did not
    (README, Distil)."""

    def __post_init__(self):
        if self.latency_texts < 1:
            raise SlimtuneError(f"alternatives.latency_texts must be at least 1, got {self.latency_texts}")
        if isinstance(self.teach, str) and self.teach != "auto":
            raise SlimtuneError(f"alternatives.teach must be true, false or auto, got {self.teach!r}")
        if self.teach is True and not self.linear:
            raise SlimtuneError("alternatives.teach needs the linear model: set alternatives.linear: true, or drop teach")


@dataclass(frozen=True)
class JobSpec:
    """A whole job, as read from YAML plus `key=value` overrides; each section ready to run."""

    model: str
    out: str
    """Absolute output folder."""
    teacher: str | None
    """An already fine-tuned teacher folder: the fine-tune stage is skipped."""
    storage: str | None
    """Shared storage (a folder every node reaches, or s3:// / gs://) for Ray Train checkpoints and
    Tune trials; the report, summary and bundles are copied there at the end. None: under `out`."""
    data: DataSpec
    finetune: FinetuneSpec
    search: SearchSpec
    winners: WinnersSpec = field(default_factory=WinnersSpec)
    export: ExportSpec | None = None
    reference: FinetuneSpec | None = None
    """`reference:` fine-tuned directly on the same rows, epochs and patience as the teacher, then
    exported and timed beside it: the baseline the winners have to beat."""
    alternatives: AlternativesSpec = field(default_factory=AlternativesSpec)

    @property
    def teacher_dir(self) -> str:
        return self.teacher or self.finetune.out


# What the job itself sets in each section (the links between stages).
_OWNED = {
    FinetuneSpec: ("model", "data", "out", "storage", "seed"),
    SearchSpec: ("teacher", "data", "out", "storage", "seed", "resume", "max_length", "seq", "linear_teacher"),
    ExportSpec: ("model", "data", "out", "seed"),
}
_TOP = {"model": str, "out": str, "teacher": str | None, "storage": str | None, "reference": str | None}
_SECTIONS = ("data", "finetune", "search", "winners", "export", "alternatives")
DEFAULT_REFERENCE = "builtin:minilm-l6"


def _section_keys(cls) -> list[str]:
    data_keys = {f.name for f in dataclasses.fields(DataSpec)}
    own = {f.name for f in dataclasses.fields(cls)}
    return [k for k in flat_keys(cls, _OWNED[cls]) if k in own or k not in data_keys]


def _section(cls, raw, name: str, linked: dict):
    if not isinstance(raw, dict):
        raise SlimtuneError(f"job: {name} must be a mapping of keys, got {raw!r}")
    allowed = _section_keys(cls)
    for key in raw:
        if key not in allowed:
            raise SlimtuneError(f"job: unknown key '{name}.{key}'; known keys here: {', '.join(allowed)}")
    try:
        return build_spec(cls, {**raw, **linked}, where=f"job: {name}")
    except SlimtuneError as exc:  # the spec names its CLI flag (--sampler): name the job key instead
        message = re.sub(r"--([a-z0-9-]+)", lambda m: f"{name}.{m.group(1).replace('-', '_')}", str(exc))
        raise SlimtuneError(message if message.startswith("job: ") else f"job: {message}") from None


def _storage(storage: str | None, out: Path, part: str) -> str | None:
    from slimtune.storage import join

    return join(storage, out.name, part) if storage else None


def build_job(raw: dict, job_dir: Path) -> JobSpec:
    for key in raw:
        if key not in _TOP and key not in _SECTIONS:
            raise SlimtuneError(f"job: unknown key '{key}'; known keys here: {', '.join(sorted([*_TOP, *_SECTIONS]))}")
    top = {k: check_type(raw.get(k), t, f"job: {k}") for k, t in _TOP.items() if raw.get(k) is not None}
    model, out = top.get("model", "builtin:minilm-l6"), Path(top.get("out", "runs/job")).resolve()
    storage, teacher = top.get("storage"), top.get("teacher")
    if storage:
        from slimtune.storage import resolve

        resolve(storage, out, "job: storage")
    try:
        data = build_section(DataSpec, {"source": "builtin:tweets", **(raw.get("data") or {})}, "data")
    except SlimtuneError as exc:
        raise SlimtuneError(f"job: {exc}") from None
    finetune = _section(FinetuneSpec, raw.get("finetune") or {}, "finetune", {
        "model": model, "data": data, "out": str(out / "teacher"), "seed": data.seed,
        "storage": _storage(storage, out, "teacher-checkpoints")})
    export = _section(ExportSpec, raw.get("export") or {}, "export", {
        "model": teacher or finetune.out, "data": data, "out": str(out / "teacher_bundle")})
    search_raw = dict(raw.get("search") or {})
    search_raw["space"] = _find_space(search_raw.get("space", "search_spaces/full.py"), job_dir)
    search = _section(SearchSpec, search_raw, "search", {
        "teacher": teacher or finetune.out, "data": data, "out": str(out / "search"),
        "storage": _storage(storage, out, "search"), "max_length": finetune.max_length, "seq": export.seq})
    try:
        winners = build_section(WinnersSpec, raw.get("winners") or {}, "winners")
        alternatives = build_section(AlternativesSpec, raw.get("alternatives") or {}, "alternatives")
    except SlimtuneError as exc:
        raise SlimtuneError(f"job: {exc}") from None
    if winners.min_speedup is not None and search.steer_speedup is None:
        search = dataclasses.replace(search, steer_speedup=winners.min_speedup)  # search where the winner is chosen
    if alternatives.teach is True:  # fitted by the alternatives stage, before the search reads it; auto: run_job
        search = dataclasses.replace(search, linear_teacher=str(out / "alternatives" / "linear"))
    reference = None
    # a small pretrained model fine-tuned directly is what a user would try first: on by default
    reference_model = top.get("reference") if "reference" in raw else (DEFAULT_REFERENCE if model != DEFAULT_REFERENCE
                                                                      and not teacher else None)
    if reference_model:
        from slimtune.models import resolve_model

        resolve_model(reference_model, "job: reference")  # a bad name fails now
        reference = dataclasses.replace(finetune, model=reference_model, out=str(out / "reference"),
                                        storage=_storage(storage, out, "reference-checkpoints"))
        # fine-tuned before the search, so the space can start students from it (teacher.reference)
        search = dataclasses.replace(search, reference=reference.out)
    return JobSpec(model=model, out=str(out), teacher=teacher, storage=storage, data=data, finetune=finetune,
                   search=search, winners=winners, export=export, reference=reference, alternatives=alternatives)


def _apply_override(raw: dict, item: str) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise SlimtuneError(f"override '{item}': write it as key=value, e.g. finetune.epochs=2")
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SlimtuneError(f"override '{item}': {part} is not a section")
    node[parts[-1]] = yaml.safe_load(value)


def load_job(path: str, overrides: list[str] | None = None, out: str | None = None) -> JobSpec:
    """Read and check a job file; every key and type is checked before any work starts."""
    file = Path(path)
    if not file.exists():
        raise SlimtuneError(f"job file {path} does not exist; see jobs/quickstart.yaml for an example")
    try:
        raw = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SlimtuneError(f"job file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise SlimtuneError(f"job file {path} must be a mapping of keys (model, out, data, finetune, ...)")
    for item in overrides or []:
        _apply_override(raw, item)
    if out:
        raw["out"] = out
    return build_job(raw, file.parent)


def _find_space(space, job_dir: Path) -> str:
    """The space file: as given, else beside the job file, else beside its folder (jobs/../search_spaces)."""
    if not isinstance(space, str):
        raise SlimtuneError(f"job: search.space must be a file path, got {space!r}")
    for base in (Path.cwd(), job_dir, job_dir.parent):
        candidate = base / space
        if candidate.is_file():
            return str(candidate.resolve())
    raise SlimtuneError(f"job: search.space {space!r} is not a file (looked in the working folder and beside the job file)")
