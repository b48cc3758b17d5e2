"""The linear alternative: its numpy bundle predicts exactly what scikit-learn predicts, on real
test texts and on texts that stress the analyzers; and it runs with numpy alone."""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from slimtune.alternatives.linear import LinearSpec, _features, fit_linear, write_linear_bundle
from slimtune.exporting.linear_runtime import LinearBundle
from slimtune.exporting.runtime import load_bundle

ODD = ["", "   ", "a", "I", "ab", "Ünïcödé café naïve", "tabs\tand\nnewlines  and   spaces", "emoji 🙂🙂 #tag @user",
       "x" * 40, "don't stop-believing, 2016!!", "ΑΒΓ δεζ", "http://t.co/abc123 RT", "a b c d e f g"]


def _fit_and_bundle(data, tmp_path, rows: int):
    from slimtune.data import subsample_train

    data = subsample_train(data, rows, 0)
    data = dataclasses.replace(data, test=data.test[:300])  # pure-Python n-grams of long texts take a while
    names = list(data.label_names)
    vectorizers, model, c, _ = fit_linear(list(data.train["text"]), data.train["label"].to_numpy(),
                                          list(data.validation["text"]), data.validation["label"].to_numpy(),
                                          data.num_labels, LinearSpec(c_grid=(4.0,)))
    manifest = write_linear_bundle(tmp_path / "linear", vectorizers, model, names, {"C": c},
                                   test=(list(data.test["text"]), [names[i] for i in data.test["label"]]))
    return data, vectorizers, model, manifest


@pytest.mark.assets
@pytest.mark.parametrize("source, rows", [("builtin:reuters-r8", 400)])  # 8 classes; the tiny test is binary
def test_bundle_predicts_what_scikit_learn_predicts(source, rows, tmp_path):
    from slimtune.data import DataSpec, load_data

    data, vectorizers, model, manifest = _fit_and_bundle(load_data(DataSpec(source)), tmp_path, rows)
    texts = list(data.test["text"]) + ODD
    expected = model.predict(_features(vectorizers, texts))
    bundle = LinearBundle(tmp_path / "linear")
    logits = bundle.logits(texts)
    assert (logits.argmax(-1) == expected).all()
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(probs / probs.sum(-1, keepdims=True), model.predict_proba(_features(vectorizers, texts)),
                               atol=1e-9)  # binary models too: softmax of [0, d] is the sigmoid of d
    assert [bundle.classify(t) for t in ODD] == list(expected[-len(ODD):])
    test_acc = float((expected[: len(data.test)] == data.test["label"].to_numpy()).mean())
    assert manifest["accuracy"] == pytest.approx(test_acc) and manifest["accuracy"] > 0.7
    assert manifest["size_mb"] > manifest["num_features"] * data.num_labels * 4 / 1e6  # the vocabulary counts too
    assert load_bundle(tmp_path / "linear").kind == "linear"


def _tiny_bundle(folder):
    """A linear bundle fitted on the tiny two-class task, and what it was fitted with."""
    from tests.helpers import make_texts

    frame = make_texts(120)
    labels = (frame["label"] == "pos").astype(int).to_numpy()
    vectorizers, model, c, _ = fit_linear(list(frame["text"]), labels, list(frame["text"][:20]), labels[:20], 2,
                                          LinearSpec(c_grid=(1.0,)))
    write_linear_bundle(folder, vectorizers, model, ["neg", "pos"], {"C": c})
    return vectorizers, model


def test_tiny_bundle_agrees_with_scikit_learn(tmp_path):
    """Without the packaged data: labels and probabilities as scikit-learn's, odd texts included."""
    from tests.helpers import make_texts

    vectorizers, model = _tiny_bundle(tmp_path / "b")
    texts = list(make_texts(200, seed=1)["text"]) + ODD + ["sunny", "storm storm storm", "Sunny WARM golden!"]
    logits = LinearBundle(tmp_path / "b").logits(texts)
    assert (logits.argmax(-1) == model.predict(_features(vectorizers, texts))).all()
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(probs / probs.sum(-1, keepdims=True), model.predict_proba(_features(vectorizers, texts)),
                               atol=1e-9)


def test_runs_with_numpy_alone(tmp_path):
    """A device with numpy only: no scikit-learn, torch, onnxruntime or tokenizers is imported."""
    _tiny_bundle(tmp_path / "b")
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('sklearn', 'scipy', 'torch', 'onnxruntime', 'tokenizers', 'pandas', 'transformers'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
from slimtune.exporting.runtime import load_bundle
b = load_bundle({str(tmp_path / 'b')!r})
print(b.predict(['sunny warm golden day'])[0]['label'])
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() in ("neg", "pos")


def test_the_cli_runs_a_linear_bundle(tmp_path, texts_csv, capsys):
    import json

    from slimtune.cli.main import main

    _tiny_bundle(tmp_path / "b")
    assert main(["predict", "--bundle", str(tmp_path / "b"), "sunny warm golden day", "storm dark cold"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["label"] for line in lines] == ["pos", "neg"]
    assert main(["bench", "--bundle", str(tmp_path / "b"), "--iters", "5"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "linear" and report["latency_ms_text_p50"] == report["latency_ms_p50"] > 0
    assert report["throughput_per_s"] > 0
    assert main(["eval", "--bundle", str(tmp_path / "b"), "--data", str(texts_csv)]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] > 0.9
    assert main(["predict", "--bundle", str(tmp_path / "b"), "--int8", "x"]) == 2
    assert "--int8" in capsys.readouterr().err
