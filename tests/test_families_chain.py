"""Each family from a plain Hugging Face folder (config, safetensors, a fast tokenizer of its own
kind, written with save_pretrained) through the whole chain: finetune -> prune (heads, FFN,
layers) -> distill -> export --int8 -> predict and eval with torch made unimportable. The CLI runs
it for two families beyond BERT; the Python API for four others (BERT and MPNet run it in
tests/test_cli.py and tests/distillation). Across families, logits distil by example through the
cache, and hidden-state losses between tokenizers that do not line up are refused in one line."""

import json
import subprocess
import sys

import pytest

from tests.exporting.test_runtime_alone import BLOCKER
from tests.helpers import build_family_model, build_family_tokenizer
from tests.test_cli import slimtune

pytestmark = pytest.mark.slow
TRAIN = ("--epochs", "3", "--lr", "3e-3", "--batch-size", "16", "--max-length", "32")


def _folder(family: str, root) -> str:
    folder = root / family
    tok = build_family_tokenizer(family)
    build_family_model(family, vocab_size=len(tok), pad_token_id=tok.pad_token_id).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("family", ["deberta-v2", "modernbert"])
def test_cli_chain_and_a_torch_free_device(family, texts_csv, tmp_path):
    model = _folder(family, tmp_path)
    steps = [
        ("finetune", "--model", model, "--out", tmp_path / "t", *TRAIN),
        ("prune", "--model", tmp_path / "t", "--out", tmp_path / "p", "--heads", "0.5", "--ffn", "0.5", "--layers", "2",
         "--max-length", "32"),
        ("distill", "--teacher", tmp_path / "t", "--student", tmp_path / "p", "--out", tmp_path / "s", *TRAIN),
        ("export", "--model", tmp_path / "s", "--out", tmp_path / "b", "--int8", "--seq", "32"),
    ]
    for command, *args in steps:
        proc, _ = slimtune(command, *args, "--data", texts_csv)
        assert proc.returncode == 0, f"{command}: {proc.stderr[-2000:]}"
    pruned = json.loads((tmp_path / "p" / "metrics.json").read_text())
    assert pruned["pruned"]["kept_layers"] == [0, 2] and pruned["pruned"]["heads"] == [2, 2]
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["parity_max_abs_diff"] < 1e-4 and manifest["accuracy_int8"] >= 0.75
    for args in (("predict", "--bundle", tmp_path / "b", "sunny warm golden day"),
                 ("eval", "--bundle", tmp_path / "b", "--data", texts_csv, "--int8")):
        proc = subprocess.run([sys.executable, "-c", BLOCKER, *map(str, args)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and proc.stderr.strip().endswith("LOADED"), proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["accuracy"] >= 0.75  # every row of the file, int8


@pytest.mark.parametrize("family", ["distilbert", "roberta", "xlm-roberta", "electra"])
def test_python_chain(family, texts_csv, tmp_path):
    import slimtune
    from slimtune.exporting.runtime import Bundle

    data = dict(data=str(texts_csv), max_length=32)
    slimtune.finetune(model=_folder(family, tmp_path), out=str(tmp_path / "t"), epochs=3, lr=3e-3, batch_size=16, **data)
    slimtune.prune(model=str(tmp_path / "t"), out=str(tmp_path / "p"), heads=0.5, ffn=0.5, layers=2, **data)
    student = slimtune.distill(teacher=str(tmp_path / "t"), student=str(tmp_path / "p"), out=str(tmp_path / "s"),
                               epochs=3, lr=3e-3, batch_size=16, **data)
    bundle = slimtune.export(model=str(tmp_path / "s"), out=str(tmp_path / "b"), seq=32, data=str(texts_csv))
    assert bundle.metrics["parity_max_abs_diff"] < 1e-4
    assert bundle.metrics["accuracy_fp32"] == pytest.approx(student.metrics["accuracy"], abs=0.02)
    assert Bundle(tmp_path / "b", int8=True).logits(["sunny warm golden day"]).shape == (1, 2)


def test_across_families_logits_distil_and_misaligned_hidden_states_are_refused(texts_csv, tmp_path):
    """A DeBERTa teacher (Unigram pieces) into a BERT student (WordPiece): by example through the
    cache; asking for hidden states as well fails in one line before any training step."""
    teacher = tmp_path / "t"
    proc, _ = slimtune("finetune", "--model", _folder("deberta-v2", tmp_path), "--out", teacher, "--data", texts_csv, *TRAIN)
    assert proc.returncode == 0, proc.stderr[-2000:]
    student = _folder("bert", tmp_path)
    proc, _ = slimtune("distill", "--teacher", teacher, "--student", student, "--out", tmp_path / "s", "--data", texts_csv,
                       *TRAIN)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "s" / "metrics.json").read_text())["accuracy"] >= 0.6  # a fresh student learnt
    proc, _ = slimtune("distill", "--teacher", teacher, "--student", student, "--out", tmp_path / "h", "--data", texts_csv,
                       "--hidden-weight", "1", *TRAIN)
    last = proc.stderr.strip().splitlines()[-1]  # progress lines, then one error line, no traceback
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert last.startswith("slimtune distill: error: --hidden-weight") and "line up" in last
