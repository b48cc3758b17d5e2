"""`slimtune run` end to end on the tiny model: every stage, the report's structure, and a
`--resume` that redoes nothing."""

import json
import time
from html.parser import HTMLParser

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# students start from the job's reference (fine-tuned before the search; the early check of the
# space, before any training, sees none)
SPACE = '''def space(trial, teacher):
    return {"base": teacher.reference.path if teacher.reference is not None else "teacher",
            "layers": trial.suggest_int("layers", 1, 2),
            "heads": trial.suggest_categorical("heads", [0.0, 0.5]),
            "ffn": 0.5, "lr": 3e-3, "epochs": 1}
'''


class _Page(HTMLParser):
    """Collects what a self-contained report must and must not have."""

    def __init__(self):
        super().__init__()
        self.ids, self.images, self.external, self.scripts, self.tables = set(), [], [], 0, 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "script":
            self.scripts += 1
        if tag == "table":
            self.tables += 1
        for key in ("src", "href"):
            if attrs.get(key, "").startswith(("http:", "https:", "//", "file:")):
                self.external.append(attrs[key])


def test_run_job_end_to_end_and_resume(ray_cluster, tiny_model_dir, texts_csv, tmp_path, capfd, monkeypatch):
    from slimtune.pipeline import load_job, run_job
    from slimtune.searching.steer import why_tried

    monkeypatch.chdir(tmp_path)  # a relative out: trials run in Ray's own working folders
    (tmp_path / "space.py").write_text(SPACE)
    (tmp_path / "job.yaml").write_text(f"""
model: {tiny_model_dir}
reference: {tiny_model_dir}
out: out
storage: {tmp_path / 'shared'}
data: {{source: {texts_csv}, max_train_samples: 130}}
finetune: {{epochs: 3, patience: 1, batch_size: 16, lr: 0.003, max_length: 32, workers: 0}}
search: {{space: space.py, trials: 2, concurrency: 2, vocab: data}}
winners: {{count: 2, epochs: 1}}
export: {{seq: 32, rounds: 2}}
""")
    job = load_job(str(tmp_path / "job.yaml"))
    result = run_job(job)
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["stages"]) == {"teacher", "reference", "alternatives", "search", "winners", "export", "compare",
                                      "report"}
    curve = summary["stages"]["teacher"]["history"]  # trained to a plateau: the best epoch is kept
    best = max(range(len(curve)), key=lambda i: curve[i]["val_accuracy"])
    assert summary["stages"]["teacher"]["best_epoch"] == curve[best]["epoch"]
    assert len(curve) == 3 or (summary["stages"]["teacher"]["stopped_early"] and len(curve) == curve[best]["epoch"] + 1)
    winners = summary["stages"]["winners"]["winners"]
    # the training rows beyond the cap, labels hidden: the winners distil on all of them
    assert summary["data"]["train_rows"] == 130 and summary["data"]["unlabeled_rows"] > 20
    assert all(w["final"]["transfer_rows"] == summary["data"]["unlabeled_rows"] for w in winners)
    reference_model = str((out / "reference" / "model").resolve())
    assert {w["search"]["base"] for w in winners} == {reference_model}
    compare = json.loads((out / "compare.json").read_text())["rows"]
    pareto = json.loads((out / "search" / "pareto.json").read_text())  # why each trial was tried
    zero = "trial 1 is the zero-layer student" in capfd.readouterr().err  # enqueued first where the space takes it
    assert {r["origin"] for r in pareto["finished"]} == {"tpe"} | ({"zero-layer"} if zero else set())
    far, reference_val = pareto["below_reference"], json.loads((out / "reference" / "metrics.json").read_text())
    reference_val = reference_val["validation"]["accuracy"]
    assert far["validation_accuracy"] == reference_val and {t["trial_id"] for t in far["trials"]} == {
        r["trial_id"] for r in pareto["finished"] if r["accuracy"] < reference_val - 0.10}
    assert all(t["why"] == why_tried(t["origin"]) for t in far["trials"])
    alternatives = summary["alternatives"]  # the linear model, the teacher and the reference, fp32 and int8
    assert {a["kind"] for a in alternatives} == {"linear", "teacher", "teacher_int8", "direct", "direct_int8"}
    assert all(a["latency_ms"] > 0 and 0 <= a["test_accuracy"] <= 1 and a["size_mb"] > 0 for a in alternatives)
    linear = json.loads((out / "alternatives" / "linear" / "manifest.json").read_text())
    assert compare["linear"]["test_accuracy"] == linear["accuracy"] and linear["train_rows"] == len(job_rows(job))

    def val(w):
        return compare[f"{w['name']}/fp32"]["validation_accuracy"]

    def ms(w):
        return compare[f"{w['name']}/fp32"]["latency_ms_text"]

    # the rule, worked out here: winners beaten by a faster, more accurate alternative are passed over
    fair = [w for w in winners if not any(a["latency_ms"] < ms(w) and a["validation_accuracy"] > val(w)
                                          for a in alternatives)] or winners
    teacher_val = compare["teacher/fp32"]["validation_accuracy"]  # the teacher's bundle, as the winners'
    good = [w for w in fair if val(w) >= 0.97 * teacher_val]
    expected = (min(good, key=ms) if good else max(fair, key=val))["name"]
    chosen = summary["winner"]["name"]
    assert summary["winner"]["holds_against_alternatives"] == (fair != winners or all(
        not any(a["latency_ms"] < ms(w) and a["validation_accuracy"] > val(w) for a in alternatives) for w in winners))
    mine = [compare[f"{chosen}/{p}"] for p in ("fp32", "int8")]
    beaten = {a["name"] for a in alternatives for r in mine  # the dominance rule, worked out here
              if a["test_accuracy"] >= r["test_accuracy"] - 0.002 and a["latency_ms"] <= 1.05 * r["latency_ms_text"]}
    assert summary["winner"]["dominated_by"] == sorted(beaten)
    assert chosen == expected and [w["name"] for w in winners if w["chosen"]] == [chosen]
    assert result.metrics["winner"]["bundle"] == str(out / "winners" / chosen)
    assert (out / "winner").resolve() == (out / "winners" / chosen).resolve()
    teacher_test = json.loads((out / "teacher" / "metrics.json").read_text())
    for bundle in [out / "teacher_bundle"] + [out / "winners" / w["name"] for w in winners]:
        manifest = json.loads((bundle / "manifest.json").read_text())
        assert (bundle / "model.onnx").exists() and (bundle / "model.int8.onnx").exists()
        assert manifest["accuracy_fp32"] is not None and len(manifest["confusion_fp32"]) == 2
        # the teacher's fp32 graph is not scored on test again: its fine-tuning's test pass is reused
        assert manifest["test_fp32_from"] == (f"stage-{teacher_test['test_precision']}"
                                              if bundle.name == "teacher_bundle" else "bundle")
    assert json.loads((out / "teacher_bundle" / "manifest.json").read_text())["accuracy_fp32"] == teacher_test["accuracy"]
    shared = tmp_path / "shared" / "out"  # checkpoints, trials and a copy of the results
    assert (shared / "results" / "report.html").exists() and (shared / "results" / "winners" / "winner-1" / "model.onnx").exists()
    assert list((shared / "search" / "search").glob("*/checkpoint_*"))
    assert set(compare) == {f"{n}/{p}" for n in ["teacher", "reference"] + [w["name"] for w in winners]
                            for p in ("fp32", "int8")} | {"linear"}
    reference_bundle = json.loads((out / "reference_bundle" / "manifest.json").read_text())
    assert summary["reference"]["test_accuracy"] == reference_bundle["accuracy_fp32"] and reference_bundle["test_fp32_from"].startswith("stage-")
    row = compare[f"{chosen}/fp32"]  # the speed-up is the measured ratio, and the winner is smaller
    assert row["speedup_vs_teacher_fp32"] == pytest.approx(compare["teacher/fp32"]["latency_ms_p50"] / row["latency_ms_p50"])
    assert row["size_mb"] < compare["teacher/fp32"]["size_mb"]

    page = _Page()
    page.feed((out / "report.html").read_text())
    assert {"headline", "comparison", "alternatives", "training", "pareto", "confusion", "trials", "job"} <= page.ids
    assert "fine-tuned directly" in (out / "report.html").read_text() and ">origin</th>" in (out / "report.html").read_text()
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert not page.external and page.scripts == 0 and page.tables >= 4

    stamp = (out / "winners" / chosen / "manifest.json").stat().st_mtime
    first = json.loads((out / "summary.json").read_text())
    assert first["seconds_all_runs"] == first["seconds"] and first["total_seconds_all_runs"] == first["total_seconds"]
    capfd.readouterr()
    again = run_job(job, resume=True).metrics
    log = capfd.readouterr().err
    # the resumed stages take seconds; what they cost is kept from the first run, and added to
    for stage, seconds in first["seconds"].items():
        assert again["seconds_all_runs"][stage] == pytest.approx(seconds + again["seconds"][stage])
    assert again["total_seconds_all_runs"] == pytest.approx(first["total_seconds"] + again["total_seconds"])
    assert "with the runs before" in log and "seconds, all runs" in (out / "report.html").read_text()
    for stage in ("teacher", "search", "compare"):
        assert f"{stage}: already" in log
    assert "linear TF-IDF model already fitted" in log
    assert f"({len(winners)} already done)" in log and "exporting" not in log and "fine-tuning" not in log
    assert (out / "winners" / chosen / "manifest.json").stat().st_mtime == stamp

    # resumed under a latency budget no winner meets: the fastest front member becomes winner-1; a
    # winner whose trial changed is distilled, exported and compared afresh, and only then
    import dataclasses

    before = {w["name"]: w["trial_id"] for w in winners}
    compared = (out / "compare.json").stat().st_mtime
    run_job(dataclasses.replace(job, winners=dataclasses.replace(job.winners, max_latency_ms=1e-6)), resume=True)
    again = json.loads((out / "summary.json").read_text())
    after = {w["name"]: w["trial_id"] for w in again["stages"]["winners"]["winners"]}
    front = json.loads((out / "search" / "pareto.json").read_text())["front"]
    assert after["winner-1"] == str(min(front, key=lambda r: r["latency_ms"])["trial_id"])
    assert "none runs within" in next(w["why"] for w in again["stages"]["winners"]["winners"] if w["chosen"])
    assert again["winner"]["rule_met"] is False and any(n.startswith("no winner runs within") for n in again["winner"]["notes"])
    changed = [n for n in after if after[n] != before.get(n)]
    for name in changed:
        assert (out / "winners" / name / "manifest.json").stat().st_mtime > compared
    assert ((out / "compare.json").stat().st_mtime > compared) == bool(changed)

    # the same budget said relative to the teacher: no winner is a million times faster (same picks,
    # nothing trained again); the job says so in the rule's own words
    run_job(dataclasses.replace(job, winners=dataclasses.replace(job.winners, min_speedup=1e6)), resume=True)
    again = json.loads((out / "summary.json").read_text())
    assert {w["name"]: w["trial_id"] for w in again["stages"]["winners"]["winners"]} == after
    assert again["winner"]["rule_met"] is False
    assert any(n.startswith("no winner runs at least 1e+06x faster than the teacher") for n in again["winner"]["notes"])

    # a resumed run that stops in a stage: that stage's time so far still counts over all runs
    import slimtune.pipeline

    def stopped(*args):
        time.sleep(0.5)
        raise KeyboardInterrupt

    monkeypatch.setattr(slimtune.pipeline, "_compare_stage", stopped)
    with pytest.raises(KeyboardInterrupt):  # the last run's budget: the same picks, nothing trained again
        run_job(dataclasses.replace(job, winners=dataclasses.replace(job.winners, min_speedup=1e6)), resume=True)
    last = json.loads((out / "summary.json").read_text())
    assert last["seconds_all_runs"]["compare"] >= again["seconds_all_runs"]["compare"] + 0.5
    assert "compare" not in last["seconds"] and last["seconds_all_runs"]["teacher"] > again["seconds_all_runs"]["teacher"]
    assert last["total_seconds_all_runs"] >= again["total_seconds_all_runs"] + 0.5
    assert "total_seconds" not in last  # not a finished job's summary


def job_rows(job):
    from slimtune.data import load_data

    return load_data(job.data).train


def test_rerun_without_resume_refuses(tmp_path):
    from slimtune.errors import SlimtuneError
    from slimtune.pipeline import load_job, run_job

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "summary.json").write_text("{}")
    (tmp_path / "job.yaml").write_text(f"out: {tmp_path / 'out'}\n")
    with pytest.raises(SlimtuneError, match="--resume"):
        run_job(load_job(str(tmp_path / "job.yaml")))
