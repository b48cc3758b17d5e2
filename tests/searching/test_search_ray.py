"""A real (tiny) search: Ray Tune trials sampled by Optuna TPE, two objectives, outputs, resume."""

import json

import pandas as pd
import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SPACE = '''# slimtune search (test space)
def space(trial):
    return {"layers": trial.suggest_int("layers", 1, 2),
            "heads": trial.suggest_categorical("heads", [0.0, 0.5]),
            "ffn": trial.suggest_categorical("ffn", [0.0, 0.5]),
            "lr": 3e-3, "epochs": 1}
'''


@pytest.fixture(scope="module")
def teacher(trained_tiny_dir):
    return trained_tiny_dir


def test_search_front_outputs_and_resume(ray_cluster, teacher, texts_csv, tmp_path):
    from slimtune.searching.driver import SearchSpec, run_search

    from slimtune.exporting.latency_model import profile
    from slimtune.models import load_classifier

    (tmp_path / "space.py").write_text(SPACE)
    profile(load_classifier(str(teacher / "model"), ("neg", "pos")), seq=32, rounds=2).save(tmp_path / "lat.json")
    spec = SearchSpec(teacher=str(teacher), data=str(texts_csv), space=str(tmp_path / "space.py"),
                      out=str(tmp_path / "s"), trials=3, concurrency=2, max_train_samples=None, max_length=32, seq=32,
                      storage=str(tmp_path / "shared"),  # Tune state and trial models apart from --out
                      latency_model=str(tmp_path / "lat.json"))  # a prediction beside every measured latency
    summary = run_search(spec).metrics
    trials = pd.read_csv(tmp_path / "s" / "trials.csv")
    assert len(trials) == 3 and (trials["status"] == "finished").all()
    assert {"trial_id", "status", "layers", "heads", "ffn", "accuracy", "latency_ms", "size_mb", "num_parameters"} <= set(trials)
    pareto = json.loads((tmp_path / "s" / "pareto.json").read_text())
    assert pareto["teacher"]["latency_ms"] > 0 and 1 <= len(pareto["front"]) <= 3
    assert pareto["teacher"]["latency_ms_predicted"] > 0 and (trials["latency_ms_predicted"] > 0).all()
    # fewer layers, heads or neurons never predict slower: the model is monotone in what is kept
    assert (trials["latency_ms_predicted"] <= pareto["teacher"]["latency_ms_predicted"] + 1e-9).all()
    done = trials.to_dict("records")  # the front is exactly a brute-force Pareto set of the same trials
    brute = {str(r["trial_id"]) for r in done
             if not any(o["accuracy"] >= r["accuracy"] and o["latency_ms"] <= r["latency_ms"]
                        and (o["accuracy"] > r["accuracy"] or o["latency_ms"] < r["latency_ms"]) for o in done)}
    assert {str(r["trial_id"]) for r in pareto["front"]} == brute
    # every finished trial within the constraints is listed for the winners stage, the front's too
    assert {str(r["trial_id"]) for r in pareto["eligible"]} >= brute and all(r["num_layers"] >= 0 for r in pareto["eligible"])
    assert {str(r["trial_id"]) for r in pareto["finished"]} == set(trials["trial_id"].astype(str))  # and every trial
    kept = {p.name for p in (tmp_path / "s" / "trials").iterdir()}
    assert kept == {str(r["trial_id"]) for r in pareto["front"]}  # fetched from storage: the front only
    for row in pareto["front"]:
        assert row["model_path"] == str(tmp_path / "s" / "trials" / str(row["trial_id"]) / "model")
        assert (tmp_path / "s" / "trials" / str(row["trial_id"]) / "model" / "model.safetensors").exists()
    stored = list((tmp_path / "shared" / "search").glob("*/checkpoint_*"))
    assert len(stored) == len(pareto["front"])  # the other trials' models were removed from storage
    assert (tmp_path / "s" / "pareto.png").stat().st_size > 10_000
    assert summary["trials_finished"] == 3

    again = run_search(SearchSpec(**{**spec.__dict__, "resume": True})).metrics
    after = pd.read_csv(tmp_path / "s" / "trials.csv")
    assert again["trials_finished"] == 3
    assert sorted(after["trial_id"]) == sorted(trials["trial_id"])  # none run twice
    pd.testing.assert_frame_equal(after.sort_values("trial_id").reset_index(drop=True)[["trial_id", "accuracy", "latency_ms"]],
                                  trials.sort_values("trial_id").reset_index(drop=True)[["trial_id", "accuracy", "latency_ms"]])


def test_trial_as_ray_train_job(ray_cluster, teacher, texts_csv, tmp_path):
    """--trial-workers 2: each trial is a small driver whose distillation runs on 2 Ray Train workers."""
    from slimtune.searching.driver import SearchSpec, run_search

    (tmp_path / "space.py").write_text(SPACE)
    summary = run_search(SearchSpec(teacher=str(teacher), data=str(texts_csv), space=str(tmp_path / "space.py"),
                                    out=str(tmp_path / "s"), trials=1, concurrency=1, max_train_samples=None,
                                    max_length=32, seq=32, trial_workers=2)).metrics
    assert summary["trials_finished"] == 1 and summary["front"]
    runs = list((tmp_path / "s" / "tune" / "train").glob("trial-*/checkpoint_*/state.json"))
    assert runs and len(json.loads(runs[0].read_text())["worker_nodes"]) == 2  # a real 2-worker Train run
