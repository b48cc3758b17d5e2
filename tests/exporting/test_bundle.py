"""Bundles: parity gate, int8, manifest keys, pruned models, and no bundle on failure."""

import json

import pytest

from slimtune.errors import SlimtuneError
from slimtune.exporting.bundle import ExportSpec, run_export

MANIFEST_KEYS = {"parity_max_abs_diff", "accuracy_fp32", "accuracy_int8", "latency_ms_p50_fp32",
                 "latency_ms_p50_int8", "size_mb_fp32", "size_mb_int8", "opset", "source_model",
                 "slimtune_version", "git_commit", "eval_data_fingerprint", "fusions", "graph"}


@pytest.fixture(scope="module")
def trained_dir(trained_tiny_dir):
    return trained_tiny_dir


def test_bundle_files_manifest_and_accuracy(trained_dir, texts_csv, tmp_path):
    manifest = run_export(ExportSpec(str(trained_dir), str(tmp_path / "b"), data=str(texts_csv), seq=32))
    names = {p.name for p in (tmp_path / "b").iterdir()}
    assert {"model.onnx", "model.int8.onnx", "tokenizer.json", "labels.json", "manifest.json", "README.md"} <= names
    assert not [n for n in names if n in ("plain.onnx", "optimized.onnx")]
    saved = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert MANIFEST_KEYS <= set(saved) and saved == json.loads(json.dumps(manifest))
    assert saved["parity_max_abs_diff"] <= 1e-4 and saved["opset"] == 17
    assert saved["accuracy_fp32"] >= 0.9 and saved["test_fp32_from"] == "bundle"
    assert saved["size_mb_int8"] > 0  # smaller only for real sizes: tiny matrices carry scale overhead
    assert json.loads((tmp_path / "b" / "labels.json").read_text()) == ["neg", "pos"]


def test_a_fine_tunings_test_pass_stands_for_the_fp32_graph_not_for_int8(trained_dir, texts_csv, tmp_path):
    """A job hands the export its teacher's test figures: the fp32 graph is not scored again, the
    int8 one is; figures of other data, length or cut, or of a stage without a test pass, are not
    taken."""
    from slimtune.data import DataSpec, load_data
    from slimtune.models import read_model_info, resolve_model
    from slimtune.results import stage_test_metrics

    data = load_data(DataSpec(str(texts_csv)))
    info = read_model_info(resolve_model(str(trained_dir)))
    cut = (info["max_length"], info["truncation"])
    tested = stage_test_metrics(str(trained_dir), data.fingerprint, *cut)
    assert tested is not None and tested["test_precision"] in ("bf16", "fp32")
    assert stage_test_metrics(str(trained_dir), "other data", *cut) is None
    assert stage_test_metrics(str(trained_dir), data.fingerprint, cut[0] * 2, cut[1]) is None
    assert stage_test_metrics(str(trained_dir), data.fingerprint, cut[0], "tail") is None
    other = tmp_path / "distilled"  # a student's metrics: its accuracy is validation, no test pass
    other.mkdir()
    (other / "metrics.json").write_text(json.dumps({k: v for k, v in json.loads(
        (trained_dir / "metrics.json").read_text()).items() if k != "data"} | {"data": {"fingerprint": data.fingerprint}}))
    assert stage_test_metrics(str(other), data.fingerprint, *cut) is None

    marked = {**tested, "accuracy": 0.5}  # a figure the graph would not score: the one kept
    manifest = run_export(ExportSpec(str(trained_dir), str(tmp_path / "b"), seq=32, optimize=False), data, marked)
    assert manifest["accuracy_fp32"] == 0.5 and manifest["test_fp32_from"] == f"stage-{tested['test_precision']}"
    assert manifest["accuracy_int8"] >= 0.9  # scored by the int8 graph itself
    assert "fine-tuning's test pass" in (tmp_path / "b" / "README.md").read_text()


def test_pruned_model_passes_the_same_gate(trained_dir, texts_csv, tmp_path):
    from slimtune.data import DataSpec
    from slimtune.pruning import PruneSpec, run_prune

    run_prune(PruneSpec(str(trained_dir), DataSpec(str(texts_csv)), str(tmp_path / "p"), heads=0.5, ffn=0.5,
                        importance="magnitude"))
    manifest = run_export(ExportSpec(str(tmp_path / "p"), str(tmp_path / "b"), data=str(texts_csv), seq=32))
    assert manifest["parity_max_abs_diff"] <= 1e-4
    assert manifest["source_info"]["shape"] is not None  # per-layer shapes went through export


def test_failed_parity_writes_no_bundle(trained_dir, tmp_path, monkeypatch):
    import slimtune.exporting.onnx_export as onnx_export

    monkeypatch.setattr(onnx_export, "parity", lambda *a, **k: {"max_abs_diff": 0.5, "same_predictions": False, "samples": 8})
    with pytest.raises(SlimtuneError, match="parity failed on 8 texts .* 5.00e-01"):
        run_export(ExportSpec(str(trained_dir), str(tmp_path / "b")))
    assert not (tmp_path / "b").exists()
    assert list(tmp_path.iterdir()) == []  # no temporary folder left either


def test_refuses_a_non_empty_out(trained_dir, tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("keep me")
    with pytest.raises(SlimtuneError, match="not empty"):
        run_export(ExportSpec(str(trained_dir), str(tmp_path / "b")))
