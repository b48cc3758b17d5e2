"""The latency model on a tiny model: profiled from timed shapes, saved and reloaded, predicting
in the right order and near measured latency; a search records its prediction beside the
measured figure."""

import pytest

pytestmark = pytest.mark.slow


def test_profile_predicts_and_round_trips(trained_tiny_dir, tmp_path):
    import copy

    from slimtune.errors import SlimtuneError
    from slimtune.exporting.benchmark import interleaved_latency
    from slimtune.exporting.latency_model import LatencyModel, export_both, profile
    from slimtune.models import load_classifier
    from slimtune.models.surgery import keep_layers, model_layer_shape, prune_ffn, prune_heads

    from tests.helpers import build_family_model

    one = load_classifier(str(trained_tiny_dir / "model"), ("neg", "pos")).eval()
    keep_layers(one, [1])
    with pytest.raises(SlimtuneError, match="at least 2 layers"):
        profile(one, seq=32)
    wide = build_family_model("bert", vocab_size=64, layers=4)
    fitted = profile(wide, seq=32, rounds=3)
    assert set(fitted.terms) == {"fp32", "int8"} and len(fitted.points) == 9
    again = LatencyModel.load(fitted.save(tmp_path / "lat.json"))
    assert again == fitted
    small = copy.deepcopy(wide)
    keep_layers(small, [3])
    prune_heads(small, 0, [0])
    prune_ffn(small, 0, list(range(8)))
    assert fitted.predict(model_layer_shape(small)) < fitted.predict(model_layer_shape(wide))
    measured = interleaved_latency(export_both(wide, tmp_path, "wide"), seq=32, threads=1, rounds=3)
    assert fitted.predict_model(wide) == pytest.approx(measured["fp32"], rel=0.5)  # the scale is right
    narrow = build_family_model("bert", vocab_size=64, layers=4)
    narrow.config.hidden_size = 16
    with pytest.raises(SlimtuneError, match="hidden size 32"):
        fitted.predict_model(narrow)
