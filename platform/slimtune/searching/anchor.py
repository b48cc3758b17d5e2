"""A point the search tries first when a job has a speed-up to reach (`SearchSpec.steer_speedup`,
from `winners.min_speedup`): the deepest student of the space that runs that much faster than the
teacher. Without it an 8-trial search may leave the band just inside the budget empty (the tweets,
seed 2 of `python bench/alternatives.py --datasets tweets` at 8d49ce7: every student within 5x had
one layer or none), and the winner is then far less accurate than one the space held.

Shapes are ranked by their encoder's multiply-adds against the teacher's, which needs no model;
that estimate leaves out the embeddings, the head and the runtime's own overhead, and how much
they weigh depends on the machine and the length: 4 layers keeping a quarter of the heads and FFN
are 6.0x by FLOPs, measured untrained at 128 tokens 6.1x and 5.7x in two runs, trained at the
tweets' 56 tokens 4.6x (the logs of `python bench/alternatives.py --datasets tweets`, seed 1, at
930bd4a, 2d1ab58 and 1483773). So the shapes are then timed untrained beside the teacher's shape,
timed the same way (ONNX Runtime fp32, batch 1, the search's seq and threads: a job's export.seq),
and the deepest one measured within the target is the point. FLOPs are taken as an upper bound of
the measured speed-up (a shape below the target by FLOPs is not timed): within a few percent of
it here, and further below it the shorter the input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from slimtune import log
from slimtune.errors import SlimtuneError
from slimtune.pruning.policy import units_kept
from slimtune.pruning.run import hidden_kept
from slimtune.searching.space import Candidate, SearchSpace, TeacherInfo, _ratios, candidate_of

MAX_TIMED = 4
"""Shapes timed at most before giving up on a point: each costs an export and a benchmark."""
DRAWS = 1024
"""Random samples of the space: enough that most shapes of search_spaces/full.py come up with each
of its epoch counts (the point takes the most), under a second."""


def layer_flops(hidden: int, heads: int, head_size: int, ffn: int, seq: int) -> int:
    """Multiply-adds per token of one encoder layer: q, k, v and output projections, the FFN's two
    matrices, the attention scores and the weighted sum of values."""
    inner = heads * head_size
    return 4 * hidden * inner + 2 * hidden * ffn + 2 * seq * inner


def _base(candidate: Candidate, teacher: TeacherInfo) -> TeacherInfo | None:
    if candidate.base in ("teacher", teacher.path):
        return teacher
    if teacher.reference is not None and candidate.base == teacher.reference.path:
        return teacher.reference
    return None


def layers_kept(candidate: Candidate, base: TeacherInfo) -> int:
    return base.num_layers if candidate.layers is None else candidate.layers


def predicted_speedup(candidate: Candidate, teacher: TeacherInfo, seq: int) -> float | None:
    """The teacher's encoder FLOPs at `seq` tokens over the candidate's at the length it reads (the
    `seq` knob, at most `seq`), or None where the shape alone does not say (a learned trial picks
    its shape while it trains; a base other than the teacher or its reference; the zero-layer
    student, which the search enqueues on its own)."""
    base = _base(candidate, teacher)
    if candidate.method != "oneshot" or base is None or layers_kept(candidate, base) == 0:
        return None
    whole = teacher.num_layers * seq * layer_flops(teacher.hidden_size, teacher.num_heads,
                                                   teacher.hidden_size // teacher.num_heads, teacher.ffn, seq)
    heads, ffn = _ratios(candidate.heads), _ratios(candidate.ffn)
    hidden = hidden_kept(base.hidden_size, candidate.hidden)
    length = min(candidate.seq or seq, seq)
    kept = length * sum(layer_flops(hidden, units_kept(base.num_heads, heads[i % len(heads)]),
                                    base.hidden_size // base.num_heads, units_kept(base.ffn, ffn[i % len(ffn)]), length)
                        for i in range(layers_kept(candidate, base)))
    return whole / kept


def describe_shape(candidate: Candidate, teacher: TeacherInfo) -> str:
    base = _base(candidate, teacher)
    layers = layers_kept(candidate, base) if base else candidate.layers
    return (f"{layers} layers, heads {candidate.heads}, FFN {candidate.ffn} removed"
            + (f", hidden {candidate.hidden}" if candidate.hidden else "")
            + (f", reading {candidate.seq} tokens" if candidate.seq else "")
            + (f", from {candidate.base}" if candidate.base != "teacher" else ""))


def _shapes(space: SearchSpace, teacher: TeacherInfo, speedup: float, seq: int, draws: int = DRAWS) -> list:
    """(params, candidate, FLOPs speed-up) of every shape `draws` random samples of the space give
    whose FLOPs reach `speedup`: deepest first, then most FLOPs; of one shape, the most epochs."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # a fixed seed: one space gives the same point whatever the search's seed (as the zero-layer
    # point), so seeds of a bench differ in what the sampler draws after it
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    best: dict = {}
    for _ in range(draws):
        trial = study.ask()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                candidate = space.sample(trial, teacher)
            except SlimtuneError:
                continue
        predicted = predicted_speedup(candidate, teacher, seq)
        if predicted is None or predicted < speedup:
            continue
        shape = (candidate.base, candidate.layers, candidate.heads, candidate.ffn, candidate.hidden, candidate.seq)
        if shape not in best or candidate.epochs > best[shape][1].epochs:
            best[shape] = (dict(trial.params), candidate, predicted)
    return sorted(best.values(), key=lambda b: (layers_kept(b[1], _base(b[1], teacher)), -b[2]), reverse=True)


def budget_point(space: SearchSpace, teacher: TeacherInfo, speedup: float, seq: int,
                 measure: Callable[[Candidate], float], draws: int = DRAWS) -> tuple[dict, Candidate, float] | None:
    """Optuna parameters, candidate and measured speed-up of the deepest shape of the space that
    `measure` (ms of a candidate's shape; `Candidate()` is the teacher's) puts at least `speedup` x
    faster than the teacher; None when none of the MAX_TIMED shapes tried is. Each measurement also
    scales the FLOPs estimate of the shapes still to try, so those it already rules out are skipped."""
    shrink, timed, teacher_ms = 1.0, 0, None
    for params, candidate, predicted in _shapes(space, teacher, speedup, seq, draws):
        if predicted * shrink < speedup:
            continue
        if timed == MAX_TIMED:
            break
        teacher_ms = teacher_ms or measure(Candidate())
        measured = teacher_ms / measure(candidate)
        timed += 1
        if measured >= speedup:
            return params, candidate, measured
        log.info(f"  {describe_shape(candidate, teacher)}: {measured:.1f}x measured ({predicted:.1f}x by FLOPs), "
                 f"short of {speedup:g}x")
        shrink = min(shrink, measured / predicted)
    return None


def shape_timer(teacher_path: str, teacher_config, teacher_shape: dict | None, seq: int,
                threads: int) -> Callable[[Candidate], float]:
    """ms of a candidate's shape, untrained (weights do not change the time): its base rebuilt from
    the config, cut as a trial cuts it, exported and timed as `objective.measure_latency_ms` times
    every trial and the teacher, at `seq` tokens or as many as the model's positions allow."""

    def measure(candidate: Candidate) -> float:
        import copy
        import tempfile
        from pathlib import Path

        from slimtune.models import load_config, resolve_model
        from slimtune.models.surgery import rebuild
        from slimtune.pruning.run import apply_pruning
        from slimtune.searching.objective import measure_latency_ms

        # a copy: the surgery below edits the config it was built from (the trials' teacher_config)
        if candidate.base in ("teacher", teacher_path):
            model = rebuild(copy.deepcopy(teacher_config), teacher_shape)
        else:
            model = rebuild(load_config(resolve_model(candidate.base, "space: knob base"), "space: knob base"), None)
        apply_pruning(model, heads=candidate.heads, ffn=candidate.ffn, hidden=candidate.hidden, layers=candidate.layers)
        from slimtune.models.families import family_of

        # a trial given a shorter input (the `seq` knob) is timed at the length it reads, as it was
        length = min(candidate.seq or seq, seq, family_of(model.config).usable_positions(model.config))
        with tempfile.TemporaryDirectory() as tmp:
            return measure_latency_ms(model.eval(), Path(tmp), length, threads)[0]

    return measure


BAND = 1.5
"""Trials re-timed after a search whose trials ran side by side: those whose latency lies within
this factor of a budget, either way (the side of it they are on could change)."""


def retime_near_budget(rows: list[dict], teacher_ms: float, budgets: list[float],
                       measure: Callable[[Candidate], float], band: float = BAND) -> list[dict]:
    """Time again, alone, the trials near a latency budget (ms on the search's teacher scale).

    With several trials at a time on shared cores each trial times its model while another one
    trains, which can make it look slower than it is, and a student within a budget can land
    outside it (README, "The job on 20news"). After the search nothing else runs: each one-shot
    shape near a budget is timed untrained (weights do not change the time) between two timings
    of the teacher's shape, as the anchor is, and its `latency_ms` becomes the teacher's search
    latency over the speed-up measured so; the trial's own figure stays as `latency_ms_trial`. Trials
    further from every budget keep their own figures: their side of it does not change. Not the
    zero-layer student (a bag of embeddings, not a cut encoder the timer can rebuild) nor learned
    trials (their shape is in their model). The vocabulary a trial kept is not rebuilt: at batch 1
    an embedding lookup costs the same. Returns the rows it changed."""
    near = [r for r in rows if r.get("method") == "oneshot" and r.get("layers") != 0 and r.get("latency_ms")
            and any(b / band <= r["latency_ms"] <= b * band for b in budgets)]
    if not near:
        return []
    log.info(f"timing {len(near)} trial(s) near the latency budget again, untrained and alone (each trial was timed "
             "beside another one's training)")
    before = measure(Candidate())
    timed = []
    for r in near:
        try:
            timed.append((r, measure(candidate_of(r))))
        except Exception as exc:  # noqa: BLE001 (a correction: the trial's own figure stands)
            log.info(f"  trial {r.get('trial_id')}: not timed again ({type(exc).__name__}: {exc}); its own figure stands")
    teacher_alone = (before + measure(Candidate())) / 2
    for r, ms in timed:
        r["latency_ms_trial"] = r["latency_ms"]
        r["latency_ms"] = teacher_ms * ms / teacher_alone
        log.info(f"  trial {r.get('trial_id')}: {teacher_ms / r['latency_ms_trial']:.1f}x in its trial, "
                 f"{teacher_alone / ms:.1f}x alone")
    return [r for r, _ in timed]


MARGIN = 1.1
"""How far a drawn shape's FLOPs speed-up may fall short of the front's latency limit and still be
trained (`TooSlow`). Timed alone, as the front's figures near a budget are (`retime_near_budget`),
shapes have come out at most a few percent above their FLOPs speed-up (4 layers of MiniLM-L6
keeping a quarter of the heads and FFN: 6.0x by FLOPs, 6.1x timed, above); a trial's own timing
beside another's training can come out further above (contention varies: README, "The job on
20news"), but a trial that near a budget is timed again alone."""


@dataclass(frozen=True)
class TooSlow:
    """Which drawn trials the search does not train: those whose FLOPs speed-up over the teacher
    (`predicted_speedup`, taken as an upper bound of the measured one) misses the space's latency
    limits (`min_speedup`, `max_latency_ms`: `bounds`, in ms on the search's teacher scale) by more
    than MARGIN. Such a trial can never join the front, and cut from a big teacher it is the
    slowest to train: on 20news, MPNet cut to 8 layers (1.5x) or 6 (2.0x) took 10-14 minutes of an
    8x search (`trial_seconds`, session 19's runs of README "The job on 20news"). Steering (`steer_speedup`) alone skips nothing: the front may hold slower students.
    A dataclass, not a closure: Tune saves it with the searcher by plain pickle, so a `--resume`
    keeps the first run's bounds."""

    teacher: TeacherInfo
    teacher_ms: float
    bounds: tuple[float, ...]
    seq: int

    def check(self, candidate: Candidate) -> tuple[float, str] | None:
        """(its latency by FLOPs, a lower bound, in ms; why it is not trained), or None to train it."""
        predicted = predicted_speedup(candidate, self.teacher, self.seq)
        if predicted is None or not self.bounds:
            return None
        ms, bound = self.teacher_ms / predicted, min(self.bounds)
        if ms <= bound * MARGIN:
            return None
        return ms, (f"{describe_shape(candidate, self.teacher)}: {predicted:.1f}x faster than the teacher by FLOPs, "
                    f"the constraints ask {self.teacher_ms / bound:.1f}x")
