"""With a speed-up to reach, the search tries first the deepest student timed within it."""

import dataclasses
from types import SimpleNamespace

import pytest

from slimtune.searching.anchor import _shapes, budget_point, predicted_speedup, retime_near_budget, shape_timer
from slimtune.searching.space import KNOBS, Candidate, TeacherInfo, load_space
from tests.searching.test_space import SPACES

MINILM = TeacherInfo(family="bert", num_layers=6, num_heads=12, ffn=1536, hidden_size=384, vocab_size=30522,
                     latency_ms=10.0, accuracy=0.9, path="builtin:minilm-l6")
FULL = str(SPACES[0].parent / "full.py")


@pytest.mark.parametrize("knobs", [{"layers": 4, "heads": 0.75, "ffn": 0.75},
                                   {"layers": 2, "heads": (0.5, 0.25), "ffn": (0.0, 0.75), "hidden": 0.25}])
def test_the_estimate_is_the_ratio_of_the_cut_models_own_flops(knobs):
    """Against the real MiniLM cut by the same surgery the trials use (models.surgery.encoder_flops)."""
    from slimtune.models import resolve_model
    from slimtune.models.load import load_classifier
    from slimtune.models.surgery import encoder_flops
    from slimtune.pruning.run import apply_pruning

    model = load_classifier(resolve_model("builtin:minilm-l6", "--teacher"), ("a", "b"))
    whole = encoder_flops(model, 128)
    apply_pruning(model, **knobs)
    assert predicted_speedup(Candidate(**knobs), MINILM, 128) == pytest.approx(whole / encoder_flops(model, 128))
    assert predicted_speedup(Candidate(layers=0), MINILM, 128) is None  # the zero-layer student has its own point


def _flops_ms(overhead: float):
    """A machine where a model costs `overhead` ms besides its encoder, the teacher 10 ms in all."""
    calls = []

    def ms(candidate):
        calls.append(candidate)
        return overhead + (10.0 - overhead) / predicted_speedup(candidate, MINILM, 128)

    return ms, calls


def test_the_deepest_shape_measured_within_the_target_not_the_deepest_estimated():
    full = load_space(FULL)
    shapes = _shapes(full, MINILM, 5.0, 128)
    assert [c.layers for _, c, _ in shapes] == sorted((c.layers for _, c, _ in shapes), reverse=True)
    assert (shapes[0][1].layers, shapes[0][1].heads, shapes[0][1].ffn) == (4, 0.75, 0.75)  # 6.0x by FLOPs
    exact, calls = _flops_ms(0.0)
    params, candidate, measured = budget_point(full, MINILM, 5.0, 128, exact)
    assert candidate == shapes[0][1] and params["layers"] == 4 and measured == pytest.approx(6.0)
    assert calls == [Candidate(), candidate]  # the teacher's shape, timed beside
    # 1 ms of embeddings and runtime: 4 layers run 4.0x, 3 layers (8x by FLOPs) 4.7x, 2 layers of 8.8x
    # 4.9x, of 12x 5.7x; a 2-layer shape of 7.4x is not timed (4.9 / 8.8 of it is short)
    slow, calls = _flops_ms(1.0)
    params, candidate, measured = budget_point(full, MINILM, 5.0, 128, slow)
    assert (candidate.layers, candidate.heads, candidate.ffn) == (2, 0.75, 0.75) and measured >= 5.0
    assert [(c.layers, c.heads) for c in calls] == [(None, 0.0), (4, 0.75), (3, 0.75), (2, 0.5), (2, 0.75)]
    assert budget_point(full, MINILM, 1000.0, 128, slow) is None  # no student of the space is that fast


def test_the_search_enqueues_it_after_the_zero_layer_student_only_with_a_speedup(tmp_path):
    """Through the searcher the search builds, timed for real (untrained MiniLM shapes, ONNX Runtime)."""
    from slimtune.models import load_config, resolve_model
    from slimtune.searching.driver import SearchSpec, make_searcher

    path = resolve_model("builtin:minilm-l6", "--teacher")
    shared = SimpleNamespace(tokenizer_dir=path, teacher_config=load_config(path, "--teacher"), teacher_shape=None,
                             seq=64)
    timer = shape_timer(path, shared.teacher_config, None, 64, 1)
    assert timer(Candidate(layers=2, heads=0.75, ffn=0.75)) < timer(Candidate()) / 2
    teacher = MINILM
    full = load_space(FULL)
    firsts = {}
    for steer in (None, 4.0):
        spec = SearchSpec(teacher="unused", data="unused.csv", space=FULL, out=str(tmp_path), trials=8,
                          steer_speedup=steer, seq=64)
        searcher = make_searcher(spec, full, teacher, shared)
        searcher.set_search_properties(None, None, {})
        firsts[steer] = [searcher.suggest(f"t{i}") for i in range(2)]
    assert firsts[4.0][0]["layers"] == firsts[None][0]["layers"] == 0
    knobs = lambda config: {k: v for k, v in config.items() if k in KNOBS}  # noqa: E731 (not why it was tried)
    assert firsts[4.0][1]["layers"] >= 1 and knobs(firsts[None][1]) != knobs(firsts[4.0][1])
    ranked = [(c.layers, c.heads, c.ffn, c.temperature) for _, c, _ in _shapes(full, teacher, 4.0, 64)]
    second = firsts[4.0][1]
    assert (second["layers"], second["heads"], second["ffn"], second["temperature"]) in ranked  # a timed shape
    assert shared.teacher_config.num_hidden_layers == 6  # the trials' teacher config is left as it was


def _trial(trial_id: str, latency_ms: float, **knobs) -> dict:
    """A finished trial's row as `searching.report._rows` builds it: every knob, None where unset."""
    return {"trial_id": trial_id, "status": "finished", **dict.fromkeys(KNOBS), **Candidate(**knobs).as_dict(),
            "accuracy": 0.8, "test_accuracy": 0.8, "latency_ms": latency_ms}


def test_trials_near_the_budget_are_timed_again_alone_and_take_that_figure():
    """Two trials at a time on two cores: a trial times itself beside the other's training, here 25%
    slow. The 4-layer trial (6.0x by FLOPs alone) measured 4.8x in its trial (20.8 ms against a 20 ms
    budget: out); alone it is 6.0x (in). The trial far from the budget, the zero-layer student and
    the learned trial are not timed again."""
    exact, calls = _flops_ms(0.0)
    teacher_ms = 100.0  # the search's teacher figure: the re-timed rows are put on its scale
    rows = [_trial("deep", 20.8, layers=4, heads=0.75, ffn=0.75), _trial("one", 40.0, layers=1),
            _trial("zero", 19.0, layers=0), _trial("learned", 20.0, layers=2, method="learned", target_speedup=5.0)]
    changed = retime_near_budget(rows, teacher_ms, [teacher_ms / 5.0], exact)
    assert [r["trial_id"] for r in changed] == ["deep"]
    deep = rows[0]
    assert deep["latency_ms_trial"] == 20.8 and deep["latency_ms"] == pytest.approx(teacher_ms / 6.0)
    assert [c.layers for c in calls] == [None, 4, None]  # the teacher's shape before and after
    assert all("latency_ms_trial" not in r for r in rows[1:])
    assert retime_near_budget(rows[1:], teacher_ms, [teacher_ms / 5.0], exact) == []  # nothing near: nothing timed


def test_the_search_draws_its_front_from_the_figures_timed_alone(tmp_path):
    """Through `write_outputs`: the re-timed trial moves within the space's min_speedup constraint,
    onto the front; with no retimer (one trial at a time, or no budget) it stays off it."""
    from slimtune.searching.driver import SearchSpec, _retimer
    from slimtune.searching.report import write_outputs
    from slimtune.searching.space import Constraints

    exact, _ = _flops_ms(0.0)
    teacher = {"accuracy": 0.9, "test_accuracy": 0.9, "latency_ms": 100.0, "size_mb": 90.0}
    space = SimpleNamespace(constraints=Constraints(min_speedup=5.0), name="test")
    spec = SearchSpec(teacher="t", data="d.csv", space=FULL, out=str(tmp_path), objectives=("accuracy", "latency_ms"))

    def results():
        row = _trial("deep", 20.8, layers=4, heads=0.75, ffn=0.75)
        return [SimpleNamespace(metrics={k: row[k] for k in ("trial_id", "accuracy", "test_accuracy", "latency_ms")},
                                config={k: row[k] for k in KNOBS}, path=str(tmp_path / "trainable_deep_0"), error=None,
                                checkpoint=None)]

    without = write_outputs(spec, space, results(), teacher, tmp_path, 1.0)
    assert without["front"] == []
    retime = lambda rows: retime_near_budget(rows, 100.0, [20.0], exact)  # noqa: E731 (the timer: FLOPs alone)
    front = write_outputs(spec, space, results(), teacher, tmp_path, 1.0, retime=retime)["front"]
    assert [r["trial_id"] for r in front] == ["deep"] and front[0]["latency_ms_trial"] == 20.8
    shared = SimpleNamespace(tokenizer_dir="t", teacher_config=None, teacher_shape=None, seq=32)
    info = dataclasses.replace(MINILM, latency_ms=teacher["latency_ms"], accuracy=teacher["accuracy"])
    assert _retimer(spec, space, info, shared) is not None
    assert _retimer(SearchSpec(**{**spec.__dict__, "concurrency": 1}), space, info, shared) is None
    no_budget = SimpleNamespace(constraints=Constraints(), name="test")
    assert _retimer(spec, no_budget, info, shared) is None  # no latency budget: nothing to be near


def test_a_shape_too_slow_by_its_flops_is_ruled_out_with_a_margin():
    """MiniLM at 10 ms, a front that asks 4x (2.5 ms): 6.0x by FLOPs trains; 1.5x does not; 3.7x, short
    by less than MARGIN, trains (measured speed-ups have come out a little above FLOPs)."""
    from slimtune.searching.anchor import MARGIN, TooSlow

    rule = TooSlow(MINILM, 10.0, (2.5,), 128)
    assert rule.check(Candidate(layers=4, heads=0.75, ffn=0.75)) is None
    ms, why = rule.check(Candidate(layers=4))
    assert ms == pytest.approx(10.0 / 1.5) and "1.5x" in why and "4.0x" in why
    near = Candidate(layers=2, heads=0.5)  # 2 of 6 layers, half the heads removed: 3.68x by FLOPs
    assert 4.0 / MARGIN < predicted_speedup(near, MINILM, 128) < 4.0 and rule.check(near) is None
    # the seq knob: a student reading 32 tokens of the teacher's 128 is more than 4x faster uncut
    assert predicted_speedup(Candidate(seq=32), MINILM, 128) > 4.0 and rule.check(Candidate(seq=32)) is None
    assert rule.check(Candidate(layers=0)) is None  # the zero-layer student: not a cut the FLOPs say anything of
    assert TooSlow(MINILM, 10.0, (), 128).check(Candidate(layers=6)) is None  # no latency limit


@pytest.mark.parametrize("rule_on", [True, False])
def test_the_search_trains_no_draw_its_flops_rule_out(tmp_path, rule_on):
    """A real TPE sampler over search_spaces/full.py with a 4x constraint, as Tune drives it (suggest,
    then complete): every trial given to Tune may meet 4x by its FLOPs; the draws that could not are
    in Optuna's study as pruned, over their constraint. Without the rule some trials would be trained."""
    from slimtune.searching.anchor import TooSlow
    from slimtune.searching.driver import SearchSpec, make_searcher
    from slimtune.searching.space import Constraints

    space = load_space(FULL, Constraints(min_speedup=4.0))
    spec = SearchSpec(teacher="unused", data="unused.csv", space=FULL, out=str(tmp_path), trials=10, seq=128)
    searcher = make_searcher(spec, space, MINILM, None)
    if not rule_on:
        searcher._too_slow = None
    searcher.set_search_properties(None, None, {})
    rule = TooSlow(MINILM, 10.0, (2.5,), 128)
    slow = 0
    for i in range(10):
        config = searcher.suggest(str(i))
        candidate = Candidate(**{k: v for k, v in config.items() if k in KNOBS})
        slow += rule.check(candidate) is not None
        speedup = predicted_speedup(candidate, MINILM, 128) or 20.0
        searcher.on_trial_complete(str(i), {"accuracy": 0.9 - 0.3 / speedup, "latency_ms": 10.0 / speedup})
    pruned = [t for t in searcher._ot_study.trials if t.state.name == "PRUNED"]
    if rule_on:
        assert slow == 0 and pruned and all(t.constraints["min_speedup"] > 0 for t in pruned)
    else:
        assert slow > 0 and not pruned


def _layers(trial):  # at module level: Tune pickles the searcher with its space
    return {"layers": trial.suggest_int("layers", 1, 6)}


def test_an_enqueued_point_is_tried_as_it_is_and_the_rule_survives_a_restore(tmp_path):
    """The points the search enqueues on purpose are not ruled out; Tune's save and restore of the
    searcher (pickle, on --resume) keeps the rule."""
    from slimtune.searching.anchor import TooSlow
    from slimtune.searching.driver import _sampler
    from slimtune.searching.steer import BUDGET, SteeredOptunaSearch

    rule = TooSlow(MINILM, 10.0, (2.5,), 128)
    searcher = SteeredOptunaSearch(space=_layers, metric=["accuracy", "latency_ms"], mode=["max", "min"],
                                   sampler=_sampler("random", 0, 8), limits={}, points=[({"layers": 6}, BUDGET)],
                                   too_slow=rule)
    assert searcher.suggest("0")["layers"] == 6  # 1.0x by FLOPs, yet tried: it was put there on purpose
    searcher.save(str(tmp_path / "searcher.pkl"))
    again = SteeredOptunaSearch(space=_layers, metric=["accuracy", "latency_ms"], mode=["max", "min"], limits={})
    again.restore(str(tmp_path / "searcher.pkl"))
    assert again._too_slow == rule
    assert all(again.suggest(str(i))["layers"] == 1 for i in range(1, 6))  # 6x by FLOPs: the only one within 4x
