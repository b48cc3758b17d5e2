"""`slimtune predict` and `slimtune eval` on a bundle with torch, transformers, pandas, ray and
datasets made unimportable: what a device with numpy, onnxruntime and tokenizers has."""

import json
import subprocess
import sys

import pytest

from tests.exporting.test_bundle import trained_dir  # noqa: F401  (module fixture)

BLOCKER = r"""
import importlib.abc, sys
BLOCKED = {"torch", "transformers", "pandas", "ray", "datasets", "safetensors", "optuna", "sklearn", "matplotlib"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)")
sys.meta_path.insert(0, Block())
from slimtune.cli.main import main
code = main(sys.argv[1:])
loaded = sorted({m.split(".")[0] for m in sys.modules} & BLOCKED)
print("LOADED " + ",".join(loaded), file=sys.stderr)  # the blocked modules that got imported: none
sys.exit(code)
"""


@pytest.fixture(scope="module")
def bundle(trained_dir, tmp_path_factory):  # noqa: F811
    from slimtune.exporting.bundle import ExportSpec, run_export

    out = tmp_path_factory.mktemp("bundle") / "b"
    run_export(ExportSpec(str(trained_dir), str(out), seq=32, optimize=False))
    return out


def _run(*args):
    proc = subprocess.run([sys.executable, "-c", BLOCKER, *map(str, args)],
                          capture_output=True, text=True, timeout=120)
    return proc


def test_predict_without_torch(bundle):
    proc = _run("predict", "--bundle", bundle, "sunny warm bright day", "cold dark storm")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    assert [r["label"] for r in rows] == ["pos", "neg"]
    assert abs(sum(rows[0]["probabilities"].values()) - 1) < 1e-4
    assert proc.stderr.strip().endswith("LOADED")


def test_eval_without_torch_or_pandas(bundle, tmp_path):
    from tests.helpers import make_texts

    make_texts(60, seed=9).to_csv(tmp_path / "test.csv", index=False)
    proc = _run("eval", "--bundle", bundle, "--data", tmp_path / "test.csv", "--int8")
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout.strip().splitlines()[-1])
    assert scores["n"] == 60 and scores["accuracy"] >= 0.9 and scores["model"] == "model.int8.onnx"
    assert proc.stderr.strip().endswith("LOADED")


def test_bench_beyond_the_positions_is_one_line(bundle):
    """A length the model's position table cannot take is named, not an onnxruntime traceback."""
    proc = _run("bench", "--bundle", bundle, "--seq", "100000", "--iters", "2")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "--seq: this model takes at most" in lines[-2], proc.stderr
    ok = _run("bench", "--bundle", bundle, "--seq", "16", "--iters", "3")
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["latency_ms_p50"] > 0 and report["latency_ms_text_p50"] > 0
