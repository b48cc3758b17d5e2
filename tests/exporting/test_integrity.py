"""Bundles are checked whole: SHA256SUMS covers every file (manifest included); one changed byte
in any file makes predict, eval, bench and verify refuse in one line; the ORT-format model
predicts as the int8 ONNX model; a vocabulary-pruned model bundles with its own tokenizer."""

import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from slimtune.cli.main import main
from slimtune.exporting.bundle import ExportSpec, run_export
from slimtune.exporting.runtime import CHECKSUMS, Bundle, BundleError, verify
from tests.helpers import make_texts


@pytest.fixture(scope="module")
def bundle(trained_tiny_dir, texts_csv, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundle") / "b"
    run_export(ExportSpec(str(trained_tiny_dir), str(folder), data=str(texts_csv), seq=32))
    return folder


def test_checksums_cover_every_file(bundle):
    listed = {line.split("  ", 1)[1] for line in (bundle / CHECKSUMS).read_text().splitlines()}
    files = {p.name for p in bundle.iterdir() if p.name != CHECKSUMS}
    assert listed == files and {"manifest.json", "model.int8.ort", "required_operators.config"} <= files
    assert verify(bundle) == len(files)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["ort_file"] == "model.int8.ort" and manifest["vocab_size"] > 0 and manifest["ort_version"]


def test_ort_format_predicts_as_the_int8_model(bundle):
    texts = list(make_texts(64, seed=9)["text"])
    int8 = Bundle(bundle, int8=True).logits(texts)
    ort = Bundle(bundle, ort_format=True).logits(texts)
    assert (int8.argmax(-1) == ort.argmax(-1)).all() and np.allclose(int8, ort, atol=1e-5)


def _damaged(bundle, tmp_path, name: str):
    copy = tmp_path / f"damaged-{name}"
    shutil.copytree(bundle, copy)
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one byte
    (copy / name).write_bytes(bytes(data))
    return copy


def test_one_changed_byte_in_any_file_is_refused(bundle, texts_csv, tmp_path, capsys):
    for path in sorted(bundle.iterdir()):
        copy = _damaged(bundle, tmp_path, path.name)
        with pytest.raises(BundleError):
            verify(copy)
        for argv in (["verify", "--bundle", str(copy)], ["predict", "--bundle", str(copy), "a calm day"],
                     ["eval", "--bundle", str(copy), "--data", str(texts_csv)]):
            assert main(argv) == 2, (path.name, argv[0])
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and "Traceback" not in err[0], (path.name, err)
            assert path.name in err[0] or CHECKSUMS in err[0], err


def test_refusal_is_fast_from_the_shell(bundle, tmp_path):
    copy = _damaged(bundle, tmp_path, "model.onnx")
    for argv in (["verify", "--bundle", str(copy)], ["predict", "--bundle", str(copy), "x"]):
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "slimtune.cli.main", *argv], capture_output=True, text=True,
                              timeout=60)
        seconds = time.perf_counter() - started
        assert proc.returncode == 2 and "model.onnx does not match" in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and seconds < 5, seconds  # 2 s here; slack for CI load
    truncated = tmp_path / "truncated"
    shutil.copytree(bundle, truncated)
    (truncated / "model.int8.onnx").write_bytes((truncated / "model.int8.onnx").read_bytes()[:1000])
    with pytest.raises(BundleError, match="model.int8.onnx does not match"):
        Bundle(truncated, int8=True)


def test_vocab_pruned_student_bundles_with_its_tokenizer(trained_tiny_dir, texts_csv, tmp_path):
    from slimtune.pruning.run import PruneSpec, run_prune

    frame = make_texts(240)
    frame[~frame["text"].str.contains("golden|storm")].to_csv(tmp_path / "t.csv", index=False)  # 2 words unused
    data = str(tmp_path / "t.csv")
    metrics = run_prune(PruneSpec(str(trained_tiny_dir), data, str(tmp_path / "p"), heads=0.5,
                                  importance="magnitude", vocab="data", max_length=32))
    assert metrics["vocab_size"] == metrics["vocab_size_before"] - 2 and metrics["test_unknown_share"] == 0
    manifest = run_export(ExportSpec(str(tmp_path / "p"), str(tmp_path / "b"), data=data, seq=32))
    assert manifest["vocab_size"] == metrics["vocab_size"] and manifest["source_info"]["vocab"]["vocab_size"] == metrics["vocab_size"]
    assert manifest["accuracy_fp32"] >= 0.9
