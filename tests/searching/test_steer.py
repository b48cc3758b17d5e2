"""The search's constraints steer Optuna's sampler (searching.steer), through Tune's OptunaSearch."""

import pytest

from slimtune.searching.space import Constraints
from slimtune.searching.steer import violations


def test_violations_are_relative_and_at_most_zero_when_met():
    limits = Constraints(min_accuracy_ratio=0.9, min_speedup=5).limits({"accuracy": 0.8, "latency_ms": 10.0})
    assert violations({"accuracy": 0.72, "latency_ms": 2.0}, limits) == pytest.approx(
        {"min_accuracy_ratio": 0.0, "min_speedup": 0.0})
    assert violations({"accuracy": 0.36, "latency_ms": 4.0}, limits) == pytest.approx(
        {"min_accuracy_ratio": 0.5, "min_speedup": 1.0})
    assert violations({"accuracy": 0.9}, limits)["min_speedup"] == 0.0  # not reported: not held against it


def _space(trial):
    return {"x": trial.suggest_float("x", 0.0, 1.0)}


def _run(limits: dict, trials: int = 30) -> tuple[list[float], object]:
    """A real TPE sampler behind the searcher, on a pure trade-off (accuracy = latency = x: every x is
    on the front), as Tune drives it: suggest, then complete with the trial's metrics."""
    from slimtune.searching.driver import _sampler
    from slimtune.searching.steer import SteeredOptunaSearch

    searcher = SteeredOptunaSearch(space=_space,
                                   metric=["accuracy", "latency_ms"], mode=["max", "min"],
                                   sampler=_sampler("tpe", 0, trials), limits=limits)
    xs = []
    for i in range(trials):
        x = searcher.suggest(str(i))["x"]
        searcher.on_trial_complete(str(i), {"accuracy": x, "latency_ms": x})
        xs.append(x)
    return xs, searcher


def test_the_sampler_draws_where_the_constraints_hold_and_only_when_steered():
    xs, steered = _run({"min_speedup": ("latency_ms", 0.2)})
    ys, _ = _run({})
    assert [t.constraints for t in steered._ot_study.trials] == [{"min_speedup": pytest.approx((x - 0.2) / 0.2)}
                                                                 for x in xs]  # what Optuna's sampler reads
    share = lambda values: sum(v <= 0.2 for v in values[10:]) / len(values[10:])  # noqa: E731 (after start-up)
    assert share(xs) >= 0.6 and share(xs) >= share(ys) + 0.3


def test_a_job_steers_its_search_to_the_winners_budget(tmp_path):
    from slimtune.job import load_job
    from slimtune.searching.driver import steering_limits
    from slimtune.searching.space import SearchSpace, TeacherInfo

    job = tmp_path / "job.yaml"
    job.write_text("model: builtin:minilm-l6\nsearch: {space: search_spaces/full.py}\nwinners: {min_speedup: 5}\n")
    spec = load_job(str(job)).search
    assert spec.steer_speedup == 5
    space = SearchSpace(lambda trial, teacher: {}, Constraints(min_accuracy_ratio=0.9, min_speedup=2.0), "s")
    info = TeacherInfo(family="bert", num_layers=6, num_heads=12, ffn=1536, hidden_size=384, vocab_size=100,
                       latency_ms=20.0, accuracy=0.9)
    limits = steering_limits(spec, space, info)
    assert limits == {"min_accuracy_ratio": ("accuracy", pytest.approx(0.81)), "min_speedup": ("latency_ms", 10.0),
                      "steer_speedup": ("latency_ms", 4.0)}


def test_the_steering_survives_a_save_and_restore(tmp_path):
    """Tune saves the searcher (pickle of its __dict__) and restores it on --resume."""
    from slimtune.searching.steer import SteeredOptunaSearch

    xs, searcher = _run({"min_speedup": ("latency_ms", 0.2)}, trials=4)
    searcher.save(str(tmp_path / "searcher.pkl"))
    again = SteeredOptunaSearch(space=_space,
                                metric=["accuracy", "latency_ms"], mode=["max", "min"], limits={})
    again.restore(str(tmp_path / "searcher.pkl"))
    x = again.suggest("4")["x"]
    again.on_trial_complete("4", {"accuracy": x, "latency_ms": float("nan")})  # NaN: not a constraint Optuna refuses
    assert again._limits == {"min_speedup": ("latency_ms", 0.2)}
    assert [t.constraints for t in again._ot_study.trials][-1] == {"min_speedup": 0.0} and len(again._ot_study.trials) == 5


def test_each_trial_says_why_it_was_tried_across_a_restore(tmp_path):
    """Enqueued points keep their reason; the sampler's draws are named after it, also after --resume."""
    from slimtune.searching.driver import _sampler
    from slimtune.searching.steer import BUDGET, ORIGIN, ZERO_LAYER, SteeredOptunaSearch, why_tried

    searcher = SteeredOptunaSearch(space=_space, metric=["accuracy", "latency_ms"], mode=["max", "min"],
                                   sampler=_sampler("tpe", 0, 6), limits={}, drawn_by="tpe",
                                   points=[({"x": 0.0}, ZERO_LAYER), ({"x": 0.9}, BUDGET)])
    first = [searcher.suggest(str(i)) for i in range(3)]
    assert [(c["x"], c[ORIGIN]) for c in first[:2]] == [(0.0, ZERO_LAYER), (0.9, BUDGET)] and first[2][ORIGIN] == "tpe"
    for i, c in enumerate(first):
        searcher.on_trial_complete(str(i), {"accuracy": c["x"], "latency_ms": c["x"]})
    searcher.save(str(tmp_path / "searcher.pkl"))
    again = SteeredOptunaSearch(space=_space, metric=["accuracy", "latency_ms"], mode=["max", "min"], limits={})
    again.restore(str(tmp_path / "searcher.pkl"))
    assert again.suggest("3")[ORIGIN] == "tpe" and len(again._ot_study.trials) == 4  # the points were not enqueued again
    assert "zero-layer student" in why_tried(ZERO_LAYER) and why_tried("tpe").startswith("drawn by the tpe sampler")
    del searcher._drawn_by, searcher._points  # a searcher pickled before origins were recorded
    searcher.save(str(tmp_path / "old.pkl"))
    old = object.__new__(SteeredOptunaSearch)  # as Tuner.restore unpickles it: no __init__
    old.restore(str(tmp_path / "old.pkl"))
    assert old.suggest("5")[ORIGIN] is None and why_tried(None).startswith("not recorded")


def test_trials_far_under_the_reference_are_listed_with_why(trained_tiny_dir):
    """The reference's validation accuracy from its `slimtune finetune` metrics; a trial more than
    10 points under it is listed with its reason, one within 10 points is not."""
    import json

    from slimtune.searching.report import below_reference
    from slimtune.searching.steer import ZERO_LAYER, why_tried

    val = json.loads((trained_tiny_dir / "metrics.json").read_text())["validation"]["accuracy"]
    rows = [{"trial_id": "a", "accuracy": val - 0.11, "origin": ZERO_LAYER, "layers": 0, "epochs": 1},
            {"trial_id": "b", "accuracy": val - 0.09, "origin": "tpe", "layers": 2, "epochs": 1},
            {"trial_id": "c", "accuracy": val - 0.30, "origin": "tpe", "base": str(trained_tiny_dir / "model"),
             "layers": 1, "heads": 0.5, "epochs": 2}]
    for where in (trained_tiny_dir, trained_tiny_dir / "model"):  # the out folder or its model folder
        far = below_reference(rows, str(where))
        assert far["validation_accuracy"] == val and [t["trial_id"] for t in far["trials"]] == ["c", "a"]
        assert [t["why"] for t in far["trials"]] == [why_tried("tpe"), why_tried(ZERO_LAYER)]
        assert far["trials"][0]["shape"].startswith(f"1 layers of {trained_tiny_dir.name}")
    assert below_reference(rows, None) is None
