"""The latency model's least squares: relative errors, no negative term (no timing needed)."""

import itertools

import numpy as np
import pytest

from slimtune.exporting.latency_model import _fit_nonnegative

GRID = np.array([[1.0, h, n] for h, n in itertools.product((1, 6, 12), (192, 768, 1536))])


def test_a_linear_cost_is_recovered_exactly():
    truth = np.array([0.05, 0.15, 0.0016])
    assert _fit_nonnegative(GRID, GRID @ truth) == pytest.approx(truth, rel=1e-9)


def test_thin_layers_are_fitted_on_relative_error_and_no_term_goes_negative():
    # the widest layers cost a little more than the line through the rest (cache misses): on
    # absolute errors they tilt the line, its constant goes negative and thin layers fall below it
    timed = GRID @ np.array([0.03, 0.15, 0.0016]) + 0.2 * ((GRID[:, 1] >= 6) & (GRID[:, 2] == 1536))
    plain = np.linalg.lstsq(GRID, timed, rcond=None)[0]
    fitted = _fit_nonnegative(GRID, timed)
    assert plain[0] < 0 and (fitted >= 0).all()
    thin = 0  # 1 head, 192 neurons: the shape the gates leave at high speed-ups
    assert abs(GRID[thin] @ fitted - timed[thin]) / timed[thin] < abs(GRID[thin] @ plain - timed[thin]) / timed[thin]
    relative = np.abs(GRID @ fitted - timed) / timed
    assert np.median(relative) < 0.1


def test_a_latency_model_knows_what_it_measured(tmp_path):
    """A file without a term is one line, not a KeyError; a run at other settings names the one that differs."""
    import json

    import pytest

    from slimtune.errors import SlimtuneError
    from slimtune.exporting.latency_model import LatencyModel

    terms = {"fixed": 1.0, "c0": 0.1, "per_head": 0.2, "per_neuron": 0.001}
    model = LatencyModel("bert", 32, 4, 64, seq=128, batch=1, threads=1, terms={"fp32": terms})
    path = model.save(tmp_path / "lm.json")
    loaded = LatencyModel.load(path)
    assert loaded.predict([(4, 64)]) == pytest.approx(1.0 + 0.1 + 0.8 + 0.064)
    loaded.check(family="bert", hidden_size=32, num_heads=4, seq=128, threads=1, batch=1, precision="fp32")
    for wanted, word in (({"family": "mpnet"}, "family"), ({"num_heads": 12}, "num_heads"), ({"seq": 256}, "seq"),
                         ({"threads": 2}, "threads"), ({"batch": 8}, "batch"), ({"precision": "int8"}, "no int8")):
        with pytest.raises(SlimtuneError, match=word):
            loaded.check(**wanted)
    with pytest.raises(SlimtuneError, match="no int8 terms"):
        loaded.predict([(4, 64)], "int8")
    raw = json.loads(path.read_text())
    del raw["terms"]["fp32"]["per_head"]
    path.write_text(json.dumps(raw))
    with pytest.raises(SlimtuneError, match="no fp32 term 'per_head'"):
        LatencyModel.load(path)
