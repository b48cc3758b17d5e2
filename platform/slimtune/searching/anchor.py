"""A point the search tries first when a job has a speed-up to reach (`SearchSpec.steer_speedup`,
from `winners.min_speedup`): the deepest student of the space that its multiply-adds say runs that
much faster than the teacher. Without it an 8-trial search may leave the band just inside the
budget empty (tweets, seed 2 of bench/alternatives.py: every student within 5x had one layer), and
the winner is then far less accurate than one the space held.

The estimate needs no model: the encoder's multiply-adds of the candidate's shape against the
teacher's. It leaves out the embeddings, the head and the runtime's own overhead, so a measured
speed-up falls short of it; FLOPS_MARGIN covers that. The search still measures the student, and
the winners are chosen by what was measured."""

from __future__ import annotations

from slimtune.errors import SlimtuneError
from slimtune.pruning.run import hidden_kept
from slimtune.searching.space import Candidate, SearchSpace, TeacherInfo, _ratios

# FLOPs speed-ups against measured ones (search/trials.csv of `python bench/alternatives.py
# --datasets tweets`, 2 cores, 1 thread): 4 layers keeping 25% of heads and FFN 6.0x predicted, 5.65x
# measured; 1 layer 24x, 21x. The target is asked of the FLOPs ratio with this margin.
FLOPS_MARGIN = 1.15


def layer_flops(hidden: int, heads: int, head_size: int, ffn: int, seq: int) -> int:
    """Multiply-adds per token of one encoder layer: q, k, v and output projections, the FFN's two
    matrices, the attention scores and the weighted sum of values."""
    inner = heads * head_size
    return 4 * hidden * inner + 2 * hidden * ffn + 2 * seq * inner


def predicted_speedup(candidate: Candidate, teacher: TeacherInfo, seq: int) -> float | None:
    """The teacher's encoder FLOPs over the candidate's, or None where the shape alone does not say
    (a learned trial picks its shape while it trains; a base other than the teacher or its reference)."""
    if candidate.method != "oneshot":
        return None
    if candidate.base in ("teacher", teacher.path):
        base = teacher
    elif teacher.reference is not None and candidate.base == teacher.reference.path:
        base = teacher.reference
    else:
        return None
    head_size = base.hidden_size // base.num_heads
    whole = teacher.num_layers * layer_flops(teacher.hidden_size, teacher.num_heads,
                                             teacher.hidden_size // teacher.num_heads, teacher.ffn, seq)
    layers = base_layers_kept(candidate, base)
    if layers == 0:
        return None  # no encoder at all: the search enqueues it on its own (driver.zero_layer_point)
    heads, ffn = _ratios(candidate.heads), _ratios(candidate.ffn)
    hidden = hidden_kept(base.hidden_size, candidate.hidden)
    kept = sum(layer_flops(hidden, max(1, round(base.num_heads * (1 - heads[i % len(heads)]))), head_size,
                           max(1, round(base.ffn * (1 - ffn[i % len(ffn)]))), seq)
               for i in range(layers))
    return whole / kept


def base_layers_kept(candidate: Candidate, teacher: TeacherInfo) -> int:
    return teacher.num_layers if candidate.layers is None else candidate.layers


def budget_point(space: SearchSpace, teacher: TeacherInfo, speedup: float, seq: int,
                 draws: int = 256) -> tuple[dict, Candidate, float] | None:
    """Optuna parameters of the deepest candidate predicted at least `speedup` x FLOPS_MARGIN faster
    than the teacher (most FLOPs among the deepest, then most epochs), from `draws` random samples
    of the space: any space works, and the point is one the space itself gives. None when no sample
    fits."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    best, best_key = None, None
    for _ in range(draws):
        trial = study.ask()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                candidate = space.sample(trial, teacher)
            except SlimtuneError:
                continue
        predicted = predicted_speedup(candidate, teacher, seq)
        if predicted is None or predicted < speedup * FLOPS_MARGIN:
            continue
        key = (base_layers_kept(candidate, teacher), -predicted, candidate.epochs)
        if best_key is None or key > best_key:
            best, best_key = (dict(trial.params), candidate, predicted), key
    return best
