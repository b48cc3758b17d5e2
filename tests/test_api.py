"""The Python API on the tiny model: an inline space that reads the teacher, a relative floor,
resume that reruns nothing, a different space refused, constraints that empty the front and
looser ones that bring it back from the same trials, and an export of a front member."""

import json

import pandas as pd
import pytest

import slimtune
from slimtune.errors import SlimtuneError

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_search_api_resume_and_constraints(ray_cluster, trained_tiny_dir, texts_csv, tmp_path):
    seen = []

    def space(trial, teacher):  # a closure over `seen`: pickled by value for Tune's searcher
        seen.append(teacher)
        return {"layers": trial.suggest_int("layers", 1, teacher.num_layers - 1),
                "heads": trial.suggest_categorical("heads", [0.0, 0.5]), "lr": 3e-3, "epochs": 1}

    # one trial at a time: each resume then keeps the trials' own timings (with two, a resume with a latency
    # constraint times the trials near it again, alone, and may move onto the front one whose model is gone)
    common = dict(teacher=str(trained_tiny_dir), data=str(texts_csv), space=space, out=str(tmp_path / "s"),
                  trials=3, concurrency=1, max_train_samples=None, max_length=32, seq=32)
    result = slimtune.search(**common, constraints=slimtune.Constraints(min_accuracy_ratio=0.5))
    assert isinstance(result, slimtune.SearchResult) and result.path == str(tmp_path / "s")
    assert seen[-1].num_layers == 2 and seen[-1].family == "bert" and seen[-1].latency_ms > 0
    assert result.teacher["latency_ms"] == seen[-1].latency_ms and 0 < result.teacher["accuracy"] <= 1
    assert result.front and all((tmp_path / "s" / "trials" / str(r["trial_id"]) / "model" / "config.json").exists()
                                for r in result.front)
    assert result.metrics["limits"]["min_accuracy_ratio"]["bound"] == pytest.approx(0.5 * result.teacher["accuracy"])
    trials = pd.read_csv(tmp_path / "s" / "trials.csv")
    teacher_json = (tmp_path / "s" / "teacher.json").read_text()

    again = slimtune.search(**common, resume=True, constraints=slimtune.Constraints(min_accuracy_ratio=0.5))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "s" / "trials.csv"), trials)  # nothing rerun
    assert again.front == result.front and (tmp_path / "s" / "teacher.json").read_text() == teacher_json

    other = dict(common, space=lambda trial, teacher: {"layers": trial.suggest_int("layers", 1, 1)})
    with pytest.raises(SlimtuneError, match="samples differently"):
        slimtune.search(**other, resume=True)

    impossible = slimtune.search(**common, resume=True, constraints=slimtune.Constraints(min_speedup=1000))
    assert impossible.front == [] and impossible.metrics["emptied_by"] == {"min_speedup": 3}
    looser = slimtune.search(**common, resume=True, constraints=slimtune.Constraints(min_speedup=1.01))
    assert looser.front and {r["trial_id"] for r in looser.front} <= set(trials["trial_id"].astype(str))
    assert all(r["latency_ms"] * 1.01 <= looser.teacher["latency_ms"] for r in looser.front)
    for row in looser.front:  # their models are still there: constraints never delete them
        assert row["model_path"] and (tmp_path / "s" / "trials" / str(row["trial_id"]) / "model" / "config.json").exists()

    bundle = slimtune.export(model=looser.front[0]["model_path"], data=str(texts_csv), out=str(tmp_path / "b"), seq=32)
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert bundle.path == str(tmp_path / "b") and bundle.metrics["accuracy_fp32"] == manifest["accuracy_fp32"]


def test_stage_functions_take_the_cli_names(tiny_model_dir, texts_csv, tmp_path):
    teacher = slimtune.finetune(model=str(tiny_model_dir), data=str(texts_csv), out=str(tmp_path / "t"), epochs=1,
                                batch_size=16, lr=3e-3, max_length=32, workers=0, seed=3)
    assert teacher.metrics["train"]["seed"] == 3 and teacher.metrics["train"]["lr"] == 3e-3
    assert json.loads((tmp_path / "t" / "metrics.json").read_text())["accuracy"] == teacher.metrics["accuracy"]
    pruned = slimtune.prune(model=teacher.path, data=str(texts_csv), out=str(tmp_path / "p"), heads=0.5, layers=[1],
                            importance="magnitude", max_length=32)
    assert pruned.metrics["pruned"]["kept_layers"] == [1] and pruned.metrics["pruned"]["heads"] == [2]
    student = slimtune.distill(teacher=teacher.path, student=pruned.path, data=str(texts_csv), out=str(tmp_path / "d"),
                               epochs=1, batch_size=16, max_length=32, workers=0, temperature=3.0)
    assert student.metrics["loss"]["temperature"] == 3.0 and student.metrics["train"]["lr"] == 2e-4  # auto, recorded
    with pytest.raises(SlimtuneError, match="unknown setting temprature"):
        slimtune.distill(teacher=teacher.path, student=pruned.path, data=str(texts_csv), out=str(tmp_path / "x"),
                         temprature=3.0)


def test_bad_out_is_one_line(tiny_model_dir, texts_csv, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SlimtuneError, match="--out: cannot write to"):
        slimtune.finetune(model=str(tiny_model_dir), data=str(texts_csv), out=str(blocker / "sub"))
