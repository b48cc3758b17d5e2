"""The search tries first the deepest student its FLOPs put within the job's speed-up."""

import pytest

from slimtune.searching.anchor import FLOPS_MARGIN, budget_point, predicted_speedup
from slimtune.searching.space import Candidate, TeacherInfo, load_space
from tests.searching.test_space import SPACES

MINILM = TeacherInfo(family="bert", num_layers=6, num_heads=12, ffn=1536, hidden_size=384, vocab_size=30522,
                     latency_ms=20.0, accuracy=0.9, path="builtin:minilm-l6")


@pytest.mark.parametrize("knobs", [{"layers": 4, "heads": 0.75, "ffn": 0.75},
                                   {"layers": 2, "heads": (0.5, 0.25), "ffn": (0.0, 0.75), "hidden": 0.25}])
def test_the_estimate_is_the_ratio_of_the_cut_models_own_flops(knobs):
    """Against the real MiniLM cut by the same surgery the trials use (models.surgery.encoder_flops)."""
    from slimtune.models import resolve_model
    from slimtune.models.load import load_classifier
    from slimtune.models.surgery import encoder_flops
    from slimtune.pruning.run import apply_pruning

    model = load_classifier(resolve_model("builtin:minilm-l6", "--teacher"), ("a", "b"))
    whole = encoder_flops(model, 128)
    apply_pruning(model, **knobs)
    assert predicted_speedup(Candidate(**knobs), MINILM, 128) == pytest.approx(whole / encoder_flops(model, 128))


def test_the_deepest_student_within_the_budget_and_none_beyond():
    full = load_space(str(SPACES[0].parent / "full.py"))
    params, candidate, predicted = budget_point(full, MINILM, 5.0, 128)
    assert (candidate.layers, candidate.heads, candidate.ffn) == (4, 0.75, 0.75)  # 5 layers cannot reach 5x
    assert predicted >= 5.0 * FLOPS_MARGIN and params["layers"] == 4
    deeper = Candidate(layers=5, heads=0.75, ffn=0.75)
    assert predicted_speedup(deeper, MINILM, 128) < 5.0 * FLOPS_MARGIN
    assert budget_point(full, MINILM, 1000.0, 128) is None  # no student of the space is that fast
    assert predicted_speedup(Candidate(layers=0), MINILM, 128) is None  # the zero-layer student has its own point


def test_the_search_enqueues_it_after_the_zero_layer_student_only_with_a_speedup(tmp_path):
    from slimtune.searching.driver import SearchSpec, make_searcher

    full = load_space(str(SPACES[0].parent / "full.py"))
    firsts = {}
    for steer in (None, 5.0):
        spec = SearchSpec(teacher="unused", data="unused.csv", space=str(SPACES[0].parent / "full.py"),
                          out=str(tmp_path), trials=8, steer_speedup=steer)
        searcher = make_searcher(spec, full, MINILM)
        searcher.set_search_properties(None, None, {})
        firsts[steer] = [searcher.suggest(f"t{i}") for i in range(2)]
    assert [f["layers"] for f in firsts[5.0]] == [0, 4] and firsts[5.0][1]["heads"] == firsts[5.0][1]["ffn"] == 0.75
    assert firsts[None][0]["layers"] == 0 and firsts[None][1] != firsts[5.0][1]
