"""A zero-layer student (models.bag) goes through `slimtune export` like any model: the parity
gate, int8, the graph optimiser's choice, and a bundle that the torch-free runtime runs."""

import json

import pytest

from tests.exporting.test_runtime_alone import _run


@pytest.fixture(scope="module")
def bag_dir(trained_tiny_dir, tmp_path_factory):
    """The tiny teacher's embeddings under a new head, trained on the two-class task, saved."""
    from slimtune.models import load_classifier, load_tokenizer, resolve_model, save_model
    from slimtune.models.bag import BAG_LR, bag_from
    from slimtune.train.loop import TrainSpec, train
    from tests.helpers import tiny_splits

    resolved = resolve_model(str(trained_tiny_dir))
    bag = bag_from(load_classifier(resolved, ("neg", "pos")), seed=0)
    tok, train_split, val_split = tiny_splits(240, 200)
    train(bag, train_split, val_split, TrainSpec(epochs=2, batch_size=16, lr=BAG_LR, log_every=1000),
          num_labels=2, pad_token_id=tok.pad_token_id)
    folder = tmp_path_factory.mktemp("bag") / "model"
    return save_model(bag.eval(), load_tokenizer(resolved), folder, {"label_names": ["neg", "pos"], "max_length": 32})


def test_bag_bundle_passes_the_gate_and_runs_without_torch(bag_dir, texts_csv, tmp_path):
    from slimtune.exporting.bundle import ExportSpec, run_export

    manifest = run_export(ExportSpec(str(bag_dir), str(tmp_path / "b"), data=str(texts_csv), seq=32))
    assert manifest["parity_max_abs_diff"] <= 1e-4 and manifest["accuracy_fp32"] >= 0.9
    assert manifest["accuracy_int8"] >= 0.9 and manifest["source_info"]["shape"] is None
    proc = _run("predict", "--bundle", tmp_path / "b", "sunny warm bright day", "cold dark storm")
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["label"] for line in proc.stdout.strip().splitlines()] == ["pos", "neg"]
    assert proc.stderr.strip().endswith("LOADED")  # nor torch, nor transformers were imported
