"""SIGKILL the search driver mid-run, rerun with --resume: exactly the requested number of
finished trials, none run twice, the old trials' results unchanged."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.searching.test_search_ray import SPACE, teacher  # noqa: F401  (module fixture)

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _finished_trials(storage: Path) -> dict[str, dict]:
    """Trial folder -> its last reported result, read from Tune's own result files."""
    out = {}
    for result in storage.glob("search/*/result.json"):
        lines = [l for l in result.read_text().splitlines() if l.strip()]
        if lines and "accuracy" in json.loads(lines[-1]):
            out[result.parent.name] = json.loads(lines[-1])
    return out


def test_sigkill_then_resume(teacher, texts_csv, tmp_path):  # noqa: F811
    (tmp_path / "space.py").write_text(SPACE)
    out = tmp_path / "s"
    args = [sys.executable, "-m", "slimtune.cli.main", "search", "--teacher", str(teacher), "--data", str(texts_csv),
            "--space", str(tmp_path / "space.py"), "--trials", "4", "--concurrency", "1", "--out", str(out),
            "--max-train-samples", "200"]
    env = {**os.environ, "RAY_ADDRESS": ""}
    env.pop("RAY_ADDRESS")
    log = open(tmp_path / "driver.log", "w")
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=log, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and len(_finished_trials(out / "tune")) < 1:
        time.sleep(1)
    before = _finished_trials(out / "tune")
    assert before, "no trial finished before the kill: " + (tmp_path / "driver.log").read_text()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started
    proc.wait()
    assert not (out / "trials.csv").exists()

    rerun = subprocess.run(args + ["--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    trials = pd.read_csv(out / "trials.csv")
    assert (trials["status"] == "finished").sum() == 4 and len(trials) == 4
    after = _finished_trials(out / "tune")
    for name, result in before.items():  # the old trials were kept as they were, not rerun
        assert after[name]["accuracy"] == result["accuracy"] and after[name]["latency_ms"] == result["latency_ms"]
        assert after[name]["trial_id"] in set(trials["trial_id"].astype(str))
