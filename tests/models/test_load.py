"""Model names resolve cheaply and fail in one line; saved models reload with their labels."""

import time

import pytest

from tests.helpers import build_tokenizer
from slimtune.errors import SlimtuneError
from slimtune.models import load_classifier, load_config, load_tokenizer, read_model_info, resolve_model, save_model


def test_local_folder_and_output_folder(tiny_model_dir, tmp_path):
    assert resolve_model(str(tiny_model_dir)) == str(tiny_model_dir)
    model = load_classifier(str(tiny_model_dir), ("b", "a", "c"))
    assert model.config.id2label == {0: "b", 1: "a", 2: "c"}
    save_model(model, load_tokenizer(str(tiny_model_dir)), tmp_path / "run" / "model", {"label_names": ["b", "a", "c"]})
    assert resolve_model(str(tmp_path / "run")) == str(tmp_path / "run" / "model")
    assert read_model_info(tmp_path / "run" / "model")["label_names"] == ["b", "a", "c"]
    assert (tmp_path / "run" / "model" / "model.safetensors").exists()
    again = load_classifier(str(tmp_path / "run" / "model"), ("b", "a", "c"))
    assert all((p == q).all() for p, q in zip(model.parameters(), again.parameters()))


@pytest.mark.parametrize("name, words", [
    ("builtin:bert-huge", "unknown built-in model"),
    ("/no/such/folder", "does not exist"),
    ("./relative/missing", "does not exist"),
])
def test_bad_names(name, words):
    with pytest.raises(SlimtuneError, match=words):
        resolve_model(name)


def test_folder_without_config(tmp_path):
    with pytest.raises(SlimtuneError, match="has no config.json"):
        resolve_model(str(tmp_path))
    (tmp_path / "weights.bin").write_text("x")
    with pytest.raises(SlimtuneError, match="is a file"):
        resolve_model(str(tmp_path / "weights.bin"))


def test_unreachable_hub_id_fails_fast(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1:9")  # closed port: refused at once
    started = time.perf_counter()
    with pytest.raises(SlimtuneError, match="hub is not reachable"):
        load_config(resolve_model("some-org/some-model"))
    assert time.perf_counter() - started < 10


def test_tokenizer_must_be_fast(tiny_model_dir):
    assert load_tokenizer(str(tiny_model_dir)).is_fast
    assert build_tokenizer().is_fast
