"""Every shipped space samples into a valid Candidate from an in-memory study, and replays."""

from pathlib import Path

import optuna
import pytest

from slimtune.errors import SlimtuneError
from slimtune.search.space import Candidate, candidate_from, load_space

SPACES = sorted(Path(__file__).resolve().parents[2].joinpath("search_spaces").glob("*.py"))


def test_the_three_spaces_ship():
    assert {p.name for p in SPACES} >= {"prune_ratios.py", "student_arch.py", "full.py"}
    for path in SPACES:
        assert path.read_text().startswith("# slimtune search ")  # each opens with its command


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.name)
def test_space_samples_and_replays(path):
    space = load_space(str(path))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        candidate = space.sample(trial)
        assert isinstance(candidate, Candidate)
        replayed = space.sample(optuna.trial.FixedTrial(trial.params))
        assert replayed == candidate


def test_bad_knobs_name_themselves(tmp_path):
    with pytest.raises(SlimtuneError, match="unknown knob 'head'"):
        candidate_from({"head": 0.5})
    with pytest.raises(SlimtuneError, match="knob ffn=1.5"):
        candidate_from({"ffn": 1.5})
    (tmp_path / "s.py").write_text("x = 1\n")
    with pytest.raises(SlimtuneError, match="must define space"):
        load_space(str(tmp_path / "s.py"))
