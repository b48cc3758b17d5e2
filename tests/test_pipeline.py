"""Job files are checked whole before any work: unknown keys and wrong types name their path."""

import time
from pathlib import Path

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


def test_learning_rates_in_exponent_notation(tmp_path):
    # PyYAML reads 1e-4 (no dot) as a string; users write learning rates that way
    assert load_job(_job(tmp_path, "finetune:\n  lr: 1e-4\n")).finetune.train.lr == 1e-4
    assert load_job(_job(tmp_path, ""), ["finetune.lr=5E-5"]).finetune.train.lr == 5e-5
    with pytest.raises(SlimtuneError, match="finetune.lr must be float"):
        load_job(_job(tmp_path, "finetune:\n  lr: fast\n"))


def test_overrides(tmp_path):
    job = load_job(_job(tmp_path, "finetune:\n  epochs: 2\n"), ["finetune.epochs=5", "data.source=x.csv"], out="o")
    assert job.finetune.train.epochs == 5 and job.data.source == "x.csv" and job.out == str(Path("o").resolve())
    assert job.finetune.data == job.data and job.search.data is job.data  # one DataSpec, handed down
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
    assert [w.trial_id for w in winners] == ["b", "a", "d"]
    assert [w.name for w in winners] == ["winner-1", "winner-2", "winner-3"]
    assert [w.trial_id for w in pick_winners(pareto, 1, 0.97)] == ["b"]
    none_good = pick_winners({"teacher": {"accuracy": 0.99}, "front": pareto["front"]}, 1, 0.97)
    assert [w.trial_id for w in none_good] == ["d"] and "none met" in none_good[0].picked_because
    with pytest.raises(SlimtuneError, match="min_accuracy_ratio rules out 4.*--resume"):
        pick_winners({"teacher": {"accuracy": 0.9}, "front": [], "trials_finished": 4,
                      "emptied_by": {"min_accuracy_ratio": 4}}, 1, 0.97)


def test_choose_winner_after_final_distillation():
    from slimtune.pipeline import Winner, choose_winner

    def w(name, acc, ms):
        return Winner(name, name, "", {}, final={"accuracy": acc, "latency_ms": ms})

    winners = [w("winner-1", 0.89, 5.0), w("winner-2", 0.88, 3.0), w("winner-3", 0.92, 9.0)]
    assert choose_winner(winners, 0.90, 0.97).name == "winner-2"  # floor 0.873: the fastest above it
    assert [x.chosen for x in winners] == [False, True, False]
    assert choose_winner(winners, 0.99, 0.97).name == "winner-3"  # none above 0.96: the most accurate


def test_sections_are_the_stage_settings(tmp_path):
    """A job section builds the same spec the CLI and the Python API build; the job links stages."""
    from slimtune.exporting.bundle import ExportSpec
    from slimtune.searching.driver import SearchSpec
    from slimtune.train.finetune import FinetuneSpec

    job = load_job(_job(tmp_path, "data: {source: builtin:tweets, seed: 7}\nfinetune: {epochs: 2, max_length: 64}\n"
                                  "search: {trials: 3, constraints: {min_accuracy_ratio: 0.95}}\nexport: {seq: 64}\n"))
    assert isinstance(job.finetune, FinetuneSpec) and isinstance(job.search, SearchSpec) and isinstance(job.export, ExportSpec)
    assert job.finetune.train.seed == 7 and job.finetune.train.epochs == 2
    assert job.search.max_length == 64 and job.search.seq == 64 and job.search.teacher == job.finetune.out
    assert job.search.constraints.min_accuracy_ratio == 0.95
    with pytest.raises(SlimtuneError, match=r"unknown key 'search.teacher'"):
        load_job(_job(tmp_path, "search: {teacher: x}\n"))
    with pytest.raises(SlimtuneError, match=r"constraints: min_speedup"):
        load_job(_job(tmp_path, "search: {constraints: {min_speedup: -2}}\n"))
    assert job.search.linear_teacher is None
    taught = load_job(_job(tmp_path, "alternatives: {teach: true}\n"))
    assert taught.search.linear_teacher == str(Path(taught.out) / "alternatives" / "linear")
    with pytest.raises(SlimtuneError, match="alternatives.teach needs the linear model"):
        load_job(_job(tmp_path, "alternatives: {teach: true, linear: false}\n"))
    with pytest.raises(SlimtuneError, match="alternatives.teach must be true, false or auto"):
        load_job(_job(tmp_path, "alternatives: {teach: always}\n"))


def test_the_linear_model_teaches_as_set(tmp_path):
    """alternatives.teach true and false are kept as set; auto is the default (its decision on
    validation: tests/distillation/test_blend.py); no linear model, no second teacher."""
    from slimtune.pipeline import _teach
    from slimtune.results import Result

    job = load_job(_job(tmp_path, "data: {source: builtin:tweets}\n"))
    assert job.alternatives.teach == "auto" and job.search.linear_teacher is None
    teacher, linear = Result(str(tmp_path / "t"), {}), {"accuracy_validation": 0.9}
    assert _teach(job, None, None, teacher) == (job, {"mode": "auto", "on": False})
    off = load_job(_job(tmp_path, "data: {source: builtin:tweets}\nalternatives: {teach: false}\n"))
    assert _teach(off, None, linear, teacher) == (off, {"mode": False, "on": False})
    forced = load_job(_job(tmp_path, "data: {source: builtin:tweets}\nalternatives: {teach: true}\n"))
    assert _teach(forced, None, linear, teacher) == (forced, {"mode": True, "on": True})
    assert forced.search.linear_teacher == str(Path(forced.out) / "alternatives" / "linear")


def test_the_same_defaults_everywhere(tmp_path):
    """Flags the user leaves out take the settings object's default: CLI, job and API agree."""
    from slimtune.cli.main import build_parser
    from slimtune.searching.driver import SearchSpec
    from slimtune.settings import build_spec

    args = build_parser().parse_args(["search", "--teacher", "t", "--data", "d.csv", "--space", "s.py", "--out", "o"])
    from_cli = build_spec(SearchSpec, {k: v for k, v in vars(args).items() if k not in ("func", "command")})
    job = load_job(_job(tmp_path, ""))
    assert from_cli.max_train_samples == job.search.max_train_samples == SearchSpec("t", "d", "s", "o").max_train_samples
    assert from_cli.trials == job.search.trials and from_cli.data.seed == job.data.seed
    with pytest.raises(SlimtuneError, match="unknown setting epochz"):
        build_spec(SearchSpec, {"teacher": "t", "data": "d", "space": "s", "out": "o", "epochz": 1})


def test_pick_winners_within_a_latency_budget():
    """A budget decides before the accuracy ratio: the most accurate front members within it."""
    from slimtune.pipeline import pick_winners

    pareto = {"teacher": {"accuracy": 0.90},
              "front": [_row("a", 0.80, 1.0), _row("b", 0.88, 2.0), _row("c", 0.89, 4.0), _row("d", 0.91, 8.0)]}
    # no row says its depth: the next most accurate comes second
    assert [w.trial_id for w in pick_winners(pareto, 2, 0.97, max_latency_ms=5.0)] == ["c", "b"]
    assert [w.trial_id for w in pick_winners(pareto, 3, 0.97, max_latency_ms=1.5)] == ["a", "d", "c"]
    none = pick_winners(pareto, 1, 0.97, max_latency_ms=0.5)
    assert [w.trial_id for w in none] == ["a"] and "none within" in none[0].picked_because
    # a speed-up budget is the teacher's search latency over it: 20 ms / 5 = 4 ms, as max_latency_ms=4
    pareto["teacher"]["latency_ms"] = 20.0
    fast = pick_winners(pareto, 2, 0.97, min_speedup=5)
    assert [w.trial_id for w in fast] == ["c", "b"] and "5x faster than the teacher" in fast[0].picked_because
    assert [w.trial_id for w in pick_winners(pareto, 1, 0.97)] == ["b"]  # the ratio rule: fastest >= 0.873
    # the deepest trial within the budget comes second, front member or not: e (3.5 ms; no layer
    # counts here, so the most FLOPs) is dominated by c in the search but is distilled again before b
    e = {**_row("e", 0.85, 3.5), "encoder_flops": 9e9}
    pareto["eligible"] = [*({**r, "encoder_flops": 1e9} for r in pareto["front"]), e, {**_row("f", 0.70, 6.0), "encoder_flops": 2e10}]
    largest = pick_winners(pareto, 3, 0.97, min_speedup=5)
    assert [w.trial_id for w in largest] == ["c", "e", "b"] and "deepest within 4 ms" in largest[1].picked_because
    assert [w.trial_id for w in pick_winners(pareto, 1, 0.97, min_speedup=5)] == ["c"]
    # c itself is the largest: it is distilled alone, whatever the count (the next most accurate is
    # another student as costly to distil again, the fastest one that validation may flatter)
    pareto["eligible"][2]["encoder_flops"] = 3e10
    alone = pick_winners(pareto, 3, 0.97, min_speedup=5)
    assert [w.trial_id for w in alone] == ["c"] and alone[0].picked_because.endswith("and the deepest")
    # rows whose depth columns are empty (older Tune rows) say nothing: the next most accurate comes second
    blank = {"teacher": pareto["teacher"],
             "front": [{**r, "num_layers": None, "layers": None, "encoder_flops": None} for r in pareto["front"]]}
    assert [w.trial_id for w in pick_winners(blank, 2, 0.97, min_speedup=5)] == ["c", "b"]
    # depth before FLOPs: e's 4 layers over c's 1 layer of more FLOPs
    for row, layers in zip(pareto["eligible"], (0, 1, 1, 6, 4, 6)):
        row["layers"] = layers
    assert [w.trial_id for w in pick_winners(pareto, 2, 0.97, min_speedup=5)] == ["c", "e"]
    for row in pareto["eligible"]:  # trials run before num_layers was reported: the knob decides
        row["num_layers"] = None
    assert [w.trial_id for w in pick_winners(pareto, 2, 0.97, min_speedup=5)] == ["c", "e"]
    # no trial within the budget met the search's constraints (its accuracy floor): the most accurate
    # and the deepest finished trials within it go to the final run, not the front member outside it
    s = _row("s", 0.85, 10.0)
    slow = {"teacher": {"accuracy": 0.90, "latency_ms": 20.0}, "front": [s], "eligible": [s],
            "finished": [s, {**_row("z", 0.70, 0.1), "num_layers": 0}, {**_row("w", 0.74, 3.0), "num_layers": 1},
                         {**_row("v", 0.73, 3.9), "num_layers": 4}, {**_row("u", 0.80, 6.0), "num_layers": 5}]}
    picks = pick_winners(slow, 2, 0.97, min_speedup=5)
    assert [w.trial_id for w in picks] == ["w", "v"] and "below the search's constraints" in picks[0].picked_because
    del slow["finished"]  # a search before the list was written: the fastest front member, as before
    assert [w.trial_id for w in pick_winners(slow, 2, 0.97, min_speedup=5)] == ["s"]


@pytest.mark.assets  # resolves builtin:minilm-l6
def test_reference_on_by_default_unless_the_teacher_is_that_model(tmp_path):
    assert load_job(_job(tmp_path, "model: builtin:mpnet-base\n")).reference.model == "builtin:minilm-l6"
    assert load_job(_job(tmp_path, "model: builtin:minilm-l6\n")).reference is None
    assert load_job(_job(tmp_path, "model: builtin:mpnet-base\nreference: null\n")).reference is None
    with pytest.raises(SlimtuneError, match="winners.max_latency_ms"):
        load_job(_job(tmp_path, "winners: {max_latency_ms: -1}\n"))
    with pytest.raises(SlimtuneError, match="winners.min_speedup must be at least 1"):
        load_job(_job(tmp_path, "winners: {min_speedup: 0.5}\n"))
    with pytest.raises(SlimtuneError, match="not both"):
        load_job(_job(tmp_path, "winners: {min_speedup: 5, max_latency_ms: 3}\n"))
    assert load_job(_job(tmp_path, "winners: {min_speedup: 5}\n")).winners.min_speedup == 5


def test_the_reference_learns_at_its_own_widths_rate(tmp_path, tiny_model_dir):
    """finetune.lr is the teacher's: a reference of another width (MiniLM-L6, 384, against the
    tiny teacher's 32) trains at its own default, one as wide keeps the rate."""
    from slimtune.pipeline import _own_lr

    job = load_job(_job(tmp_path, f"model: {tiny_model_dir}\nreference: builtin:minilm-l6\nfinetune: {{lr: 1e-3}}\n"))
    assert job.reference.train.lr == 1e-3 and _own_lr(job.reference, str(tiny_model_dir)).train.lr is None
    same = load_job(_job(tmp_path, f"model: {tiny_model_dir}\nreference: {tiny_model_dir}\nfinetune: {{lr: 1e-3}}\n"))
    assert _own_lr(same.reference, str(tiny_model_dir)).train.lr == 1e-3


def test_stage_times_over_runs(tmp_path):
    """A summary from before `seconds_all_runs` existed counts as one run; a stage that stops counts its
    time over all runs but not as this run's figure; a job that stopped before any stage leaves no summary."""
    import json

    from slimtune.pipeline import _StageTimes

    (tmp_path / "summary.json").write_text(json.dumps({"seconds": {"teacher": 5.0, "search": 3.0}, "total_seconds": 9.0}))
    summary = {"stages": {}, "seconds": {}}
    times = _StageTimes(tmp_path, summary, resume=True)
    assert summary["seconds_all_runs"] == {"teacher": 5.0, "search": 3.0} and times.earlier_total == 9.0
    times.begin("teacher")
    times.end(accuracy=0.9)
    times.begin("search")
    time.sleep(0.2)
    times.failed()
    written = json.loads((tmp_path / "summary.json").read_text())
    assert 5.0 < written["seconds_all_runs"]["teacher"] < 5.2 and written["seconds_all_runs"]["search"] >= 3.2
    assert set(written["seconds"]) == {"teacher"} and written["total_seconds_all_runs"] >= 9.2
    again = _StageTimes(tmp_path, {"stages": {}, "seconds": {}}, resume=True)  # the next resume starts from those
    assert again.earlier == written["seconds_all_runs"] and again.earlier_total == written["total_seconds_all_runs"]
    assert _StageTimes(tmp_path, {"stages": {}, "seconds": {}}, resume=False).earlier == {}

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    times = _StageTimes(fresh, {"stages": {}, "seconds": {}}, resume=False)
    times.begin("teacher")
    times.failed()
    assert not (fresh / "summary.json").exists()
