"""`slimtune search`: Ray Tune runs the trials, Optuna's samplers choose them, several objectives.

Each trial is a plain Tune function that trains in its own process (on a CPU that is far
cheaper than a TorchTrainer per trial). The data, the teacher and its logits are put in Ray's
object store once and shared by every trial. The Tune run has a fixed name in `OUT/tune`, so
`--resume` restores it: finished trials are kept and not rerun, a failing trial is retried
`--retries` times and then recorded as failed while the search goes on.

The teacher is measured once (OUT/teacher.json) and the space's behaviour is fingerprinted
(OUT/space.json): a resume uses the same teacher figures and refuses a space that samples
differently, while looser or tighter constraints just recompute the front from the same trials.
The sampler keeps what it was given when the search started: the speed-up it steers to, and the
latency limits below which drawn students are not trained (searching.anchor.TooSlow).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from slimtune import log
from slimtune.data import DataSpec, as_data_spec
from slimtune.errors import SlimtuneError
from slimtune.results import SearchResult, stage_test_metrics
from slimtune.searching.space import KNOBS, Constraints, SearchSpace, TeacherInfo, candidate_of, load_space
from slimtune.storage import ensure_writable, join
from slimtune.storage import resolve as resolve_storage

OBJECTIVES = {"accuracy": "max", "latency_ms": "min", "size_mb": "min"}
SAMPLERS = ("tpe", "nsga2", "random")


@dataclass(frozen=True)
class SearchSpec:
    """One search. The CLI, a job's `search:` section and `slimtune.search(...)` all build this."""

    teacher: str
    """A fine-tuned model folder."""
    data: DataSpec
    space: str | Callable
    """A space file's path, or a function space(trial) / space(trial, teacher)."""
    out: str
    constraints: Constraints | None = None
    """Limits deciding the front (default: the space file's CONSTRAINTS, else none)."""
    trials: int = 12
    concurrency: int = 2
    """Trials at once; each gets CPUs / concurrency threads."""
    objectives: tuple[str, ...] = ("accuracy", "latency_ms")
    """Some of accuracy (up), latency_ms (down), size_mb (down)."""
    sampler: str = "tpe"
    """tpe, nsga2 or random (Optuna's samplers)."""
    sampler_seed: int | None = None
    """Seed of the sampler (None: the data's seed); a benchmark varies it over one data split."""
    resume: bool = False
    retries: int = 1
    """Times a failing trial is retried before it is recorded as failed."""
    max_train_samples: int | None = 2000
    """Training rows each trial distils on (a stratified subsample; None: all)."""
    max_unlabeled_samples: int | None = 2000
    """Transfer-set texts (the data's unlabelled text) each trial distils on besides its labelled rows
    (a seeded sample; None: all; 0: none). The winners distil on every text."""
    max_length: int | None = None
    """Tokens per text; None: the teacher's own (a slimtune model records it), else picked from the data."""
    vocab: str = "full"
    """Each candidate's vocabulary when the space does not set the `vocab` knob: full, or data
    (only the pieces the training rows use: a smaller embedding table and tokenizer)."""
    seq: int = 128
    """Sequence length of the latency measurement."""
    latency_threads: int = 1
    """ONNX Runtime threads when timing trials (the same for the teacher)."""
    latency_model: str | None = None
    """A latency model (`slimtune bench --profile` JSON, made at the same seq and threads): each
    trial and the teacher also get `latency_ms_predicted`, the same on every run; `latency_ms`
    stays the measured figure."""
    keep_all: bool = False
    """Keep every trial's model, not only the front's."""
    max_steps: int | None = None
    """Cap on each trial's optimizer steps (None: the candidate's epochs)."""
    gpus_per_trial: float = 0.0
    """GPU share each trial asks Ray for; 0.25 lets four small trials train on one GPU at once."""
    trial_workers: int = 0
    """0: each trial trains in its own process. N: each trial is a small driver that runs its
    distillation as a Ray Train job on N workers (one GPU each when gpus_per_trial is set)."""
    storage: str | None = None
    """Tune's trial state and every trial's model: a folder every node reaches, or s3:// / gs://
    (default: OUT/tune, enough on one machine)."""
    reference: str | None = None
    """A small model fine-tuned directly on this data (a job sets its `reference:` here); the space
    sees it as `teacher.reference` and may start students from it."""
    linear_teacher: str | None = None
    """A linear TF-IDF bundle fitted on this data: every trial's and winner's soft targets are the
    teacher's and its log-probabilities together, weighted as validation prefers
    (`distillation.blend`). A job sets it from `alternatives.teach`."""
    steer_speedup: float | None = None
    """Steer the sampler toward students at least this many times faster than the teacher (Optuna's
    constraints; the front still follows `constraints`). A job sets it from `winners.min_speedup`.
    The steering is fixed when the search starts: a `--resume` keeps the first run's (Tune
    restores the sampler), while the front follows the constraints given then."""

    def __post_init__(self):
        object.__setattr__(self, "data", as_data_spec(self.data))  # a source string is enough
        if isinstance(self.objectives, str):
            object.__setattr__(self, "objectives", tuple(self.objectives.split(",")))
        bad = [o for o in self.objectives if o not in OBJECTIVES]
        if bad or not self.objectives:
            raise SlimtuneError(f"--objectives: use some of {', '.join(OBJECTIVES)}, not {','.join(bad) or 'nothing'}")
        if self.sampler not in SAMPLERS:
            raise SlimtuneError(f"--sampler: use one of {', '.join(SAMPLERS)}, not {self.sampler}")
        for name in ("trials", "concurrency", "latency_threads"):
            if getattr(self, name) < 1:
                raise SlimtuneError(f"--{name.replace('_', '-')}: must be at least 1, got {getattr(self, name)}")
        if self.trial_workers < 0:
            raise SlimtuneError(f"--trial-workers: 0 (train in the trial's process) or more, not {self.trial_workers}")
        if not 0 <= self.gpus_per_trial <= 8:
            raise SlimtuneError(f"--gpus-per-trial: a share like 0.25 or a count up to 8, not {self.gpus_per_trial}")
        if self.vocab not in ("full", "data"):
            raise SlimtuneError(f"--vocab: full or data, not {self.vocab}")
        if self.max_train_samples is not None and self.max_train_samples < 2:
            raise SlimtuneError(f"--max-train-samples: at least 2, got {self.max_train_samples}")
        if self.max_unlabeled_samples is not None and self.max_unlabeled_samples < 0:
            raise SlimtuneError(f"max_unlabeled_samples: 0 or more, got {self.max_unlabeled_samples}")
        if self.steer_speedup is not None and self.steer_speedup < 1:
            raise SlimtuneError(f"--steer-speedup: at least 1 (times faster than the teacher), got {self.steer_speedup}")
        if self.storage:
            resolve_storage(self.storage, Path(self.out))  # a bad scheme fails now
        if self.latency_model:
            from slimtune.exporting.latency_model import LatencyModel

            # unreadable, or measured at other settings than this search times at: one line now
            LatencyModel.load(self.latency_model).check(seq=self.seq, threads=self.latency_threads, batch=1,
                                                        precision="fp32")

    @property
    def seed(self) -> int:
        """The data's seed: splits, the trials' subsample and their training."""
        return self.data.seed


def _sampler(name: str, seed: int, trials: int):
    """Optuna's samplers, sized for the budget: TPE's default 10 random start-up trials would leave
    a 12-trial search almost all random, and NSGA-II needs a few generations to do anything. TPE
    and NSGA-II also read the constraint values the searcher sets on each trial (searching.steer)."""
    import optuna

    startup = max(3, min(10, trials // 3))
    return {"tpe": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=startup,
                                                      constant_liar=True),  # trials run in parallel
            "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, trials // 3))),
            "random": lambda: optuna.samplers.RandomSampler(seed=seed)}[name]()


def steering_limits(spec: SearchSpec, space: SearchSpace, info: TeacherInfo) -> dict[str, tuple[str, float]]:
    """The limits the sampler steers by: the space's constraints and `spec.steer_speedup`, in
    absolute terms for this teacher (its measured accuracy and latency)."""
    teacher = {"accuracy": info.accuracy, "latency_ms": info.latency_ms}
    limits = space.constraints.limits(teacher)
    if spec.steer_speedup is not None:
        limits["steer_speedup"] = Constraints(min_speedup=spec.steer_speedup).limits(teacher)["min_speedup"]
    return limits


def teacher_info(teacher: str, figures: dict | None = None, reference: str | None = None) -> TeacherInfo:
    """The teacher as a space sees it; without `figures` (not measured yet) latency and accuracy are None."""
    from slimtune.models import load_config, resolve_model

    figures = figures or {}
    small = None
    if reference:
        resolved = resolve_model(reference, "--reference")
        # absolute: trials run in Ray's working folders, not the caller's
        path = str(Path(resolved).resolve()) if Path(resolved).is_dir() else resolved
        small = TeacherInfo.from_config(load_config(resolved, "--reference"), path=path)
    resolved = resolve_model(teacher, "--teacher")
    return TeacherInfo.from_config(load_config(resolved, "--teacher"), latency_ms=figures.get("latency_ms"),
                                   accuracy=figures.get("accuracy"), size_mb=figures.get("size_mb"),
                                   path=resolved, reference=small)


def check_space(space, constraints: Constraints | None, teacher: TeacherInfo) -> SearchSpace:
    """Load a space and sample it once against this teacher, so a typo, an out-of-range knob or a
    range the teacher cannot take fails now. A space that needs the teacher's figures before they
    are measured (a job's early check) is sampled again once they are."""
    import optuna

    loaded = load_space(space, constraints)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    try:
        loaded.sample(trial, teacher)
    except SlimtuneError as exc:
        if teacher.accuracy is not None or not isinstance(exc.__cause__, TypeError):
            raise
    return loaded


def _samples_learned(space: SearchSpace, teacher: TeacherInfo, tries: int = 32) -> bool:
    """Whether random draws of the space give a candidate with method learned."""
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(tries):
        try:
            if space.sample(study.ask(), teacher).method == "learned":
                return True
        except SlimtuneError:
            return False  # needs the teacher's figures: found out at the first trial instead
    return False


# Optuna parameters that ask a space for the zero-layer student: `layers` alone, or with the teacher
# as the base where the space also offers another base (search_spaces/full.py).
ZERO_LAYER_POINTS = ({"layers": 0}, {"base": "teacher", "layers": 0})


def zero_layer_point(space: SearchSpace, teacher: TeacherInfo, probes: int = 16) -> dict | None:
    """The point to enqueue so the search always tries one zero-layer student, or None when the
    space cannot take one. A point counts only if, fixed in trials whose other parameters are drawn
    at random, every draw gives a valid candidate with layers=0. `layers` may lie below the space's
    own range: Optuna takes an enqueued value outside it, and a space whose sampled range starts
    at 1 spends no further trial on zero layers (TPE, drawn to its latency, asked for it again and
    again when the range started at 0), while a `base` must be one the space offers."""
    for point in ZERO_LAYER_POINTS:
        if all(_gives_zero_layers(space, teacher, point, seed) for seed in range(probes)):
            return point
    return None


def _gives_zero_layers(space: SearchSpace, teacher: TeacherInfo, point: dict, seed: int) -> bool:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    study.enqueue_trial(point)
    trial = study.ask()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna warns of a fixed value outside a range: that is the answer here
        try:
            candidate = space.sample(trial, teacher)
        except SlimtuneError:
            return False
    dists = trial.distributions
    inside = all(name in dists and (name == "layers" or dists[name]._contains(dists[name].to_internal_repr(value)))
                 for name, value in point.items())
    return inside and candidate.layers == 0


def build_shared(spec: SearchSpec, data=None, measure_teacher: bool = True, saved: dict | None = None):
    """(Shared, teacher metrics): the data, tokens, teacher weights and logits every trial reads,
    and the teacher measured the way every trial is (validation/test accuracy, ONNX latency).
    `data`: already loaded TextData (the pipeline's); `saved`: teacher metrics of an earlier run
    of this search, reused as they are."""
    from slimtune.data import load_data, subsample_train
    from slimtune.data.tokenize import encode_data, training_texts
    from slimtune.distillation.cache import teacher_logits
    from slimtune.models import load_classifier, load_tokenizer, resolve_model
    from slimtune.models.load import read_model_info
    from slimtune.searching.objective import Shared, measure_latency_ms, predicted_latency
    from slimtune.train.loop import evaluate

    from slimtune.distillation.blend import check_linear_teacher

    check_linear_teacher(spec.linear_teacher)
    teacher_dir = resolve_model(spec.teacher, "--teacher")
    if Path(teacher_dir).exists():  # trials run in their own working folders: hand them absolute paths
        teacher_dir = str(Path(teacher_dir).resolve())
    data = data if data is not None else load_data(spec.data)
    tokenizer = load_tokenizer(teacher_dir, "--teacher")
    from slimtune.data.length import inherit_truncation, resolve_max_length
    from slimtune.models import load_config

    data = inherit_truncation(data, teacher_dir)
    spec = replace(spec, max_length=resolve_max_length(spec.max_length, teacher_dir, data, tokenizer,
                                                       load_config(teacher_dir), spec.gpus_per_trial > 0))
    known_test = (stage_test_metrics(teacher_dir, data.fingerprint, spec.max_length, data.truncation) or {}).get("accuracy")
    data = subsample_train(data, spec.max_train_samples, spec.seed, spec.max_unlabeled_samples)
    teacher = load_classifier(teacher_dir, data.label_names).eval()
    encoded = encode_data(data, tokenizer, spec.max_length, transfer=True)
    logits = teacher_logits(teacher, teacher_dir, encoded["train"], tokenizer.pad_token_id)
    if spec.linear_teacher:
        from slimtune.distillation.blend import blend_for

        logits, _ = blend_for(logits, spec.linear_teacher, teacher, teacher_dir, data, encoded,
                             tokenizer.pad_token_id)
    from slimtune.models.families import family_of

    # position embeddings bound it. Not the length the texts are read at: the winners' speed-up is
    # judged at export.seq whatever it is (pipeline.compare), and what the search picks and steers by
    # must be the same measure (on the tweets, 56 tokens, a 4-layer student ran 4.6x faster than
    # the teacher where 128 tokens gave 6.1x: `python bench/alternatives.py --datasets tweets` logs)
    seq = min(spec.seq, family_of(teacher.config).usable_positions(teacher.config))
    shared = Shared(
        spec=replace(spec, space=""), seq=seq,  # trials need its settings, not the space (a function may not pickle)
        teacher_state={k: v.clone() for k, v in teacher.state_dict().items()}, teacher_config=teacher.config,
        teacher_shape=read_model_info(teacher_dir).get("shape"), tokenizer_dir=teacher_dir,
        label_names=data.label_names, encoded=encoded, teacher_logits=logits, pad_token_id=tokenizer.pad_token_id,
        data_fingerprint=data.fingerprint, truncation=data.truncation,
        texts={"train": training_texts(data, transfer=True),
               **{split: list(getattr(data, split)["text"]) for split in ("validation", "test")}},
        latency_model=json.loads(Path(spec.latency_model).read_text()) if spec.latency_model else None,
    )
    if not measure_teacher:
        return shared, None
    if saved is not None:
        if saved.get("seq", seq) != seq:  # searches before the seq was recorded: taken as they are
            raise SlimtuneError(f"--resume: this search timed its teacher and trials at {saved['seq']} tokens, this "
                                f"run would at {seq}; resume with --seq {saved['seq']} (a job: export.seq), or start a "
                                "new --out")
        log.info(f"teacher: validation accuracy {saved['accuracy']:.4f}, latency {saved['latency_ms']:.2f} ms "
                 "(measured when this search started)")
        return shared, saved
    if seq < spec.seq:
        log.info(f"latency sequence {spec.seq} is longer than the model takes; measuring at {seq}")
    folder = Path(spec.out) / "teacher"
    folder.mkdir(parents=True, exist_ok=True)
    latency, size = measure_latency_ms(teacher, folder, seq, spec.latency_threads)
    val = evaluate(teacher, encoded["validation"], data.num_labels, tokenizer.pad_token_id)
    if known_test is None:  # a big teacher's test pass costs minutes: skip it when finetune measured it
        known_test = evaluate(teacher, encoded["test"], data.num_labels, tokenizer.pad_token_id)["accuracy"]
    teacher_metrics = {"accuracy": val["accuracy"], "test_accuracy": known_test, "latency_ms": latency, "seq": seq,
                       "latency_ms_predicted": predicted_latency(shared, teacher),
                       "size_mb": size, "num_parameters": sum(p.numel() for p in teacher.parameters()),
                       "model_path": teacher_dir}
    log.info(f"teacher: validation accuracy {val['accuracy']:.4f}, latency {latency:.2f} ms (ONNX fp32, batch 1, "
             f"seq {seq}, {spec.latency_threads} thread), {size:.1f} MB")
    return shared, teacher_metrics


def _ray_train_fn(workers: int, use_gpu: bool, threads: int, cpus: float, storage: str):
    """A `train_fn` for run_candidate that runs the distillation as a Ray Train job: the trial is
    then only its driver (Ray 2.60's Tune-over-Train pattern: a Tune function fitting a TorchTrainer)."""

    def fn(module, train_split, val_split, spec, *, num_labels, pad_token_id, loss_fn):
        from slimtune.train.ray_train import fit_on_ray

        _, record, _ = fit_on_ray(module, train_split, val_split, spec, num_labels=num_labels,
                                  pad_token_id=pad_token_id, workers=workers, use_gpu=use_gpu, storage=storage,
                                  loss_fn=loss_fn, name="trial", threads=threads, cpus_per_worker=cpus)
        return record

    return fn


TRIAL_METRICS = "trial_metrics.json"  # beside a trial's model in its checkpoint


def _trainable(config: dict, shared=None, threads: int = 1, trial_workers: int = 0, use_gpu: bool = False,
               storage: str = "", worker_cpus: float = 1.0):
    """A Tune trial: candidate from the sampled knobs, built and measured in this process (its
    distillation here too, or on Ray Train workers). Its model goes to Tune's storage as the
    trial's checkpoint, so it is reachable from any node."""
    import tempfile

    import torch
    from ray import tune

    from slimtune.searching.objective import run_candidate

    restored = tune.get_checkpoint()
    if restored is not None:
        # A trial that had reported before its driver stopped, restored by --resume because Tune's
        # saved state still called it running: report what it measured instead of redoing it
        # (a rerun would measure another latency).
        with restored.as_directory() as folder:
            saved = Path(folder) / TRIAL_METRICS
            if saved.exists():
                tune.report(json.loads(saved.read_text()), checkpoint=restored)
                return
    torch.set_num_threads(threads)
    candidate = candidate_of(config)
    train_fn = _ray_train_fn(trial_workers, use_gpu, threads, worker_cpus, join(storage, "train")) if trial_workers else None
    with tempfile.TemporaryDirectory(prefix="slimtune-trial-") as folder:
        metrics = run_candidate(candidate, shared, Path(folder), train_fn=train_fn)
        metrics["model_path"] = None  # set by the driver for the models it keeps
        (Path(folder) / "model" / TRIAL_METRICS).write_text(json.dumps(metrics))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(Path(folder) / "model")))


def _progress_callback(total: int):
    """A line per finished or failed trial, in the driver (trials' own output stays in Ray's logs)."""
    from ray import tune

    class Progress(tune.Callback):
        def __init__(self):
            self.started, self.done = time.perf_counter(), 0

        def _line(self, trial, what: str):
            self.done += 1
            elapsed = time.perf_counter() - self.started
            eta = elapsed / self.done * max(0, total - self.done)
            knobs = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                              for k, v in trial.config.items() if k in KNOBS and v is not None)
            log.info(f"trial {self.done}/{total} {what} ({knobs})  elapsed {log.format_seconds(elapsed)}, "
                     f"eta {log.format_seconds(eta)}")

        def on_trial_complete(self, iteration, trials, trial, **info):
            r = trial.last_result or {}
            if "accuracy" in r:
                self._line(trial, f"done: val acc {r['accuracy']:.4f}, {r['latency_ms']:.2f} ms, {r['size_mb']:.1f} MB")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._line(trial, "FAILED (see trials.csv and Ray's logs)")

    return Progress()


class SpaceAdapter:
    """The define-by-run function OptunaSearch calls. Tune saves the searcher with plain pickle
    for `--resume`; this pickles the space by value with cloudpickle, so a lambda, a closure or
    a function from a space file all survive a restore in a new process."""

    def __init__(self, space: SearchSpace, teacher: TeacherInfo):
        self.space, self.teacher = space, teacher

    def __getstate__(self):
        from ray import cloudpickle

        return {"blob": cloudpickle.dumps((self.space, self.teacher))}

    def __setstate__(self, state):
        from ray import cloudpickle

        self.space, self.teacher = cloudpickle.loads(state["blob"])

    def __call__(self, trial):
        return self.space.sample(trial, self.teacher).as_dict()


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _check_same_space(out: Path, fingerprint: str, space: SearchSpace, resume: bool) -> None:
    saved = _read_json(out / "space.json")
    if resume and saved and saved["fingerprint"] != fingerprint:
        raise SlimtuneError(f"--space: {space.name} samples differently from the space this search started with "
                            f"({saved['name']}); resume with that space, or start a new --out")
    (out / "space.json").write_text(json.dumps({"name": space.name, "fingerprint": fingerprint}) + "\n")


def make_searcher(spec: SearchSpec, space: SearchSpace, info: TeacherInfo, shared=None):
    """Optuna's sampler behind Tune's searcher, over the objectives, with the zero-layer student
    enqueued first where the space allows one: the front then reaches down to where linear models
    live, and every slower student has to beat it to earn its latency. With `steer_speedup` and the
    search's teacher (`shared`), the deepest student timed within it comes next (searching.anchor).
    Drawn students that the constraints' latency rules out by their FLOPs are not trained
    (`searching.anchor.TooSlow`)."""
    from slimtune.searching.anchor import MARGIN, TooSlow, budget_point, describe_shape
    from slimtune.searching.steer import BUDGET, ZERO_LAYER, SteeredOptunaSearch

    seed = spec.seed if spec.sampler_seed is None else spec.sampler_seed
    zero = zero_layer_point(space, info)
    if zero:
        log.info("trial 1 is the zero-layer student (the teacher's embeddings, a mean, a head)")
    points = [(zero, ZERO_LAYER)] if zero else []
    if spec.steer_speedup is not None and shared is not None:
        log.info(f"timing the deepest students of the space that may run {spec.steer_speedup:g}x faster than the teacher")
        timer = _shape_timer(spec, shared)
        try:
            anchor = budget_point(space, info, spec.steer_speedup, shared.seq, timer)
        except Exception as exc:  # noqa: BLE001 (a head start, not a stage: the search goes on without it)
            log.info(f"no such trial enqueued: timing the shapes failed ({type(exc).__name__}: {exc})")
            anchor = None
        if anchor:
            params, candidate, measured = anchor
            points.append((params, BUDGET))
            log.info(f"trial {len(points)} is the deepest of them within it: {describe_shape(candidate, info)}, "
                     f"{measured:.1f}x measured untrained")
    limits = steering_limits(spec, space, info)
    # the front's latency limits (the constraints'), not the speed-up the sampler is only steered to
    bounds = tuple(bound for name, (metric, bound) in limits.items() if metric == "latency_ms" and name != "steer_speedup")
    too_slow = None
    if bounds and info.latency_ms:
        too_slow = TooSlow(info, info.latency_ms, bounds, shared.seq if shared is not None else spec.seq)
        log.info(f"drawn students whose FLOPs put them more than {MARGIN:g}x over the constraints' latency "
                 f"({min(too_slow.bounds):.4g} ms) are not trained")
    if limits and spec.sampler != "random":
        log.info("the sampler steers toward trials that meet " + ", ".join(
            f"{metric} {'>=' if metric == 'accuracy' else '<='} {bound:.4g} ({name})" for name, (metric, bound) in limits.items()))
    return SteeredOptunaSearch(space=SpaceAdapter(space, info), metric=list(spec.objectives),
                               mode=[OBJECTIVES[o] for o in spec.objectives],
                               sampler=_sampler(spec.sampler, seed, spec.trials),
                               seed=seed, points=points, drawn_by=spec.sampler, limits=limits, too_slow=too_slow)


def _shape_timer(spec: SearchSpec, shared):
    """ms of a candidate's shape, untrained, as this search times its trials (searching.anchor.shape_timer)."""
    from slimtune.searching.anchor import shape_timer

    return shape_timer(shared.tokenizer_dir, shared.teacher_config, shared.teacher_shape, shared.seq,
                       spec.latency_threads)


def _retimer(spec: SearchSpec, space: SearchSpace, info: TeacherInfo, shared):
    """With trials side by side and a latency budget among the limits the sampler steers by (a
    latency constraint, the speed-up to reach), the trials near it timed again alone
    (`searching.anchor.retime_near_budget`); else None."""
    teacher_ms = info.latency_ms
    budgets = [bound for metric, bound in steering_limits(spec, space, info).values() if metric == "latency_ms"]
    if spec.concurrency < 2 or not budgets:
        return None
    from slimtune.searching.anchor import retime_near_budget

    def retime(rows: list[dict]) -> None:
        try:
            retime_near_budget(rows, teacher_ms, budgets, _shape_timer(spec, shared))
        except Exception as exc:  # noqa: BLE001 (the teacher's shape failed: the trials' own figures stand)
            log.info(f"the trials near the budget were not timed again ({type(exc).__name__}: {exc})")

    return retime


def run_search(spec: SearchSpec, data=None) -> SearchResult:
    """Run (or resume) the search; `data` is an already loaded TextData (the pipeline's)."""
    import ray
    from ray import tune

    from slimtune.ray_session import ensure_ray
    from slimtune.searching.report import write_outputs

    out = ensure_writable(Path(spec.out).resolve())
    saved = _read_json(out / "teacher.json") if spec.resume else None
    info = teacher_info(spec.teacher, saved, spec.reference)  # the shape from the config; figures once measured
    space = check_space(spec.space, spec.constraints, info)
    if not spec.latency_model and _samples_learned(space, info):
        raise SlimtuneError("--latency-model: the space samples method learned, whose gates aim at a predicted "
                            "latency; make one with `slimtune bench --profile --model TEACHER --out FILE.json`")
    if saved:
        space.constraints.check_teacher(saved)
    storage = resolve_storage(spec.storage, out / "tune")
    experiment = join(storage, "search")
    if not spec.resume and tune.Tuner.can_restore(experiment):
        raise SlimtuneError(f"--out: {experiment} already holds a search; add --resume to continue it or pick a new folder")
    started = time.perf_counter()
    ensure_ray()  # first: what fits the cluster is checked before the teacher is measured
    cpus = ray.cluster_resources().get("CPU", 1)
    threads = max(1, int(cpus // (spec.concurrency * max(1, spec.trial_workers))))
    worker_cpus = 1.0
    if spec.trial_workers:
        # The trial only drives a Ray Train job: a sliver of a CPU. Its workers share what is left
        # (Ray takes fractional CPUs), or they would wait forever for the driver's sliver.
        resources = {"CPU": 0.1}
        worker_cpus = (cpus - 0.1 * spec.concurrency) / (spec.concurrency * spec.trial_workers)
        if worker_cpus < 0.5:
            raise SlimtuneError(f"--trial-workers: {spec.concurrency} trials x {spec.trial_workers} workers do not fit "
                                f"{cpus:g} CPUs; lower --concurrency or --trial-workers")
        worker_cpus = round(worker_cpus - 0.005, 2)  # Ray rounds resources to 1/10000; keep clear of the edge
    else:
        resources = {"CPU": threads, **({"GPU": spec.gpus_per_trial} if spec.gpus_per_trial else {})}
    shared, teacher_metrics = build_shared(spec, data, saved=saved)
    space.constraints.check_teacher(teacher_metrics)  # an absolute floor the teacher misses: refused now
    out.mkdir(parents=True, exist_ok=True)
    (out / "teacher.json").write_text(json.dumps(teacher_metrics, indent=2) + "\n")
    info = dataclasses.replace(info, latency_ms=teacher_metrics["latency_ms"], accuracy=teacher_metrics["accuracy"],
                               size_mb=teacher_metrics["size_mb"])
    _check_same_space(out, space.fingerprint(info), space, spec.resume)
    trainable = tune.with_resources(
        tune.with_parameters(_trainable, shared=shared, threads=threads, trial_workers=spec.trial_workers,
                             use_gpu=spec.gpus_per_trial > 0, storage=storage, worker_cpus=worker_cpus), resources)
    if spec.resume and tune.Tuner.can_restore(experiment):
        log.info(f"resuming the search in {experiment}")
        tuner = tune.Tuner.restore(experiment, trainable=trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=make_searcher(spec, space, info, shared), num_samples=spec.trials,
                                        max_concurrent_trials=spec.concurrency),
            run_config=tune.RunConfig(name="search", storage_path=storage, verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=spec.retries),
                                      callbacks=[_progress_callback(spec.trials)]),
        )
    # Tune prints its own boxes and hints on stdout whatever `verbose` says: they go to a log file,
    # so the terminal shows slimtune's lines and stdout stays clean for JSON.
    with open(out / "tune-output.log", "a") as sink, contextlib.redirect_stdout(sink):
        results = tuner.fit()
    summary = write_outputs(spec, space, results, teacher_metrics, out, time.perf_counter() - started,
                            retime=_retimer(spec, space, info, shared))
    return SearchResult(str(out), summary)

