"""Job files are checked whole before any work: unknown keys and wrong types name their path."""

import time

import pytest

from slimtune.errors import SlimtuneError
from slimtune.pipeline import load_job


def _job(tmp_path, text):
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path


def test_quickstart_job_parses():
    job = load_job("jobs/quickstart.yaml")
    assert job.model == "builtin:minilm-l6" and job.data.source == "builtin:tweets"


def test_typo_names_the_key_path(tmp_path):
    started = time.perf_counter()
    with pytest.raises(SlimtuneError, match=r"unknown key 'finetune.epohcs'"):
        load_job(_job(tmp_path, "finetune:\n  epohcs: 2\n"))
    assert time.perf_counter() - started < 10


def test_wrong_type_names_the_key_path(tmp_path):
    with pytest.raises(SlimtuneError, match=r"finetune.epochs must be int, got 'two'"):
        load_job(_job(tmp_path, "finetune:\n  epochs: two\n"))


def test_overrides(tmp_path):
    job = load_job(_job(tmp_path, "finetune:\n  epochs: 2\n"), ["finetune.epochs=5", "data.source=x.csv"], out="o")
    assert job.finetune.epochs == 5 and job.data.source == "x.csv" and job.out == "o"
    with pytest.raises(SlimtuneError, match="key=value"):
        load_job(_job(tmp_path, ""), ["finetune.epochs"])


def test_bad_values_fail_at_load(tmp_path):
    with pytest.raises(SlimtuneError, match=r"search.sampler"):
        load_job(_job(tmp_path, "search:\n  sampler: grid\n"))
    with pytest.raises(SlimtuneError, match=r"search.objectives"):
        load_job(_job(tmp_path, "search:\n  objectives: [accuracy, speed]\n"))
    with pytest.raises(SlimtuneError, match=r"search.objectives must be a list"):
        load_job(_job(tmp_path, "search:\n  objectives: accuracy\n"))
    with pytest.raises(SlimtuneError, match=r"search.space 'nope.py' is not a file"):
        load_job(_job(tmp_path, "search:\n  space: nope.py\n"))
    with pytest.raises(SlimtuneError, match=r"winners.min_accuracy_ratio"):
        load_job(_job(tmp_path, "winners:\n  min_accuracy_ratio: 97\n"))


def test_space_found_beside_the_job_folder(tmp_path, monkeypatch):
    (tmp_path / "search_spaces").mkdir()
    (tmp_path / "search_spaces" / "s.py").write_text("def space(trial):\n    return {}\n")
    (tmp_path / "jobs").mkdir()
    monkeypatch.chdir("/")
    job = load_job(_job(tmp_path / "jobs", "search:\n  space: search_spaces/s.py\n"))
    assert job.search.space == str(tmp_path / "search_spaces" / "s.py")


def _row(trial, acc, ms):
    return {"trial_id": trial, "accuracy": acc, "latency_ms": ms}


def test_pick_winners():
    from slimtune.pipeline import pick_winners

    pareto = {"teacher": {"accuracy": 0.90},
              "front": [_row("a", 0.80, 1.0), _row("b", 0.88, 2.0), _row("c", 0.89, 4.0), _row("d", 0.91, 8.0)]}
    winners = pick_winners(pareto, 3, 0.97)  # floor 0.873: b is the fastest above it, a the next faster
    assert [w["trial_id"] for w in winners] == ["b", "a", "d"]
    assert [w["name"] for w in winners] == ["winner-1", "winner-2", "winner-3"]
    assert [w["trial_id"] for w in pick_winners(pareto, 1, 0.97)] == ["b"]
    none_good = pick_winners({"teacher": {"accuracy": 0.99}, "front": pareto["front"]}, 1, 0.97)
    assert [w["trial_id"] for w in none_good] == ["d"] and "none met" in none_good[0]["picked_because"]
    with pytest.raises(SlimtuneError, match="CONSTRAINTS"):
        pick_winners({"teacher": {"accuracy": 0.9}, "front": []}, 1, 0.97)


def test_choose_winner_after_final_distillation():
    from slimtune.pipeline import choose_winner

    def w(name, acc, ms):
        return {"name": name, "final": {"accuracy": acc, "latency_ms": ms}}

    winners = [w("winner-1", 0.89, 5.0), w("winner-2", 0.88, 3.0), w("winner-3", 0.92, 9.0)]
    assert choose_winner(winners, 0.90, 0.97)["name"] == "winner-2"  # floor 0.873: the fastest above it
    assert [x["chosen"] for x in winners] == [False, True, False]
    assert choose_winner(winners, 0.99, 0.97)["name"] == "winner-3"  # none above 0.96: the most accurate
