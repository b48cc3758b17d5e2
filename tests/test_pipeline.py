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
