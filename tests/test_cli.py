"""The real `slimtune` command, end to end on a tiny model, and its one-line errors."""

import json
import os
import subprocess
import sys
import time


from tests.helpers import make_texts

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def slimtune(*args, timeout=300):
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "slimtune.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=ENV)
    return proc, time.perf_counter() - started


def test_finetune_end_to_end(tiny_model_dir, texts_csv, tmp_path):
    out = tmp_path / "run"
    proc, _ = slimtune("finetune", "--model", tiny_model_dir, "--data", texts_csv, "--out", out,
                       "--epochs", "3", "--batch-size", "16", "--lr", "3e-3", "--workers", "0")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "f1_macro", "num_parameters", "num_labels", "train_seconds"):
        assert key in metrics
    assert summary["accuracy"] == metrics["accuracy"] >= 0.9
    assert metrics["num_labels"] == 2 and metrics["label_names"] == ["neg", "pos"]
    assert "step" in proc.stderr and "samples/s" in proc.stderr and "eta" in proc.stderr
    split = json.loads((out / "split.json").read_text())
    assert split["test"]["seed"] == 42 and len(split["test"]["row_indices"]) == 48

    # the saved model loads in plain transformers, labels included
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(out / "model")
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    assert model.config.id2label == {0: "neg", 1: "pos"}
    logits = model(**tokenizer(["sunny warm bright day"], return_tensors="pt", return_token_type_ids=False)).logits
    assert model.config.id2label[int(logits.argmax())] == "pos"


def _bad(tmp_path, texts_csv, tiny_model_dir):
    frame = make_texts(60)
    (tmp_path / "latin1.csv").write_bytes("text,label\ncaf\xe9,a\nthe,b\n".encode("latin-1"))
    frame.rename(columns={"label": "y"}).to_csv(tmp_path / "nolabel.csv", index=False)
    (tmp_path / "empty.csv").write_text("text,label\n")
    frame.assign(label="x").to_csv(tmp_path / "oneclass.csv", index=False)
    frame.assign(text="").to_csv(tmp_path / "notext.csv", index=False)
    (tmp_path / "split").mkdir()
    frame.to_csv(tmp_path / "split" / "train.csv", index=False)
    frame.assign(label="new").to_csv(tmp_path / "split" / "test.csv", index=False)
    (tmp_path / "data.xml").write_text("<a/>")
    m = str(tiny_model_dir)
    return [
        (["--model", m, "--data", tmp_path / "missing.csv"], "does not exist"),
        (["--model", m, "--data", tmp_path / "data.xml"], "unknown file format"),
        (["--model", m, "--data", tmp_path / "nolabel.csv"], "columns: text, y"),
        (["--model", m, "--data", tmp_path / "empty.csv"], "has no rows"),
        (["--model", m, "--data", tmp_path / "oneclass.csv"], "single class"),
        (["--model", m, "--data", tmp_path / "notext.csv"], "every text"),
        (["--model", m, "--data", tmp_path / "split"], "never seen in training"),
        (["--model", m, "--data", tmp_path / "latin1.csv"], "not UTF-8"),
        (["--model", "builtin:gpt-17", "--data", texts_csv], "unknown built-in model"),
        (["--model", m, "--data", texts_csv, "--epochs", "0"], "--epochs"),
    ]


def test_bad_input_one_line_fast(tmp_path, texts_csv, tiny_model_dir):
    for args, words in _bad(tmp_path, texts_csv, tiny_model_dir):
        proc, seconds = slimtune("finetune", *args, "--out", tmp_path / "o", timeout=60)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert seconds < 20, (args, seconds)


def test_help_and_missing_flags():
    proc, _ = slimtune("finetune", "--help")
    assert proc.returncode == 0 and "--max-train-samples" in proc.stdout
    proc, _ = slimtune("finetune", "--data", "x.csv")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "--model" in proc.stderr


def test_prune_then_distill_end_to_end(tiny_model_dir, texts_csv, tmp_path):
    teacher = tmp_path / "teacher"
    proc, _ = slimtune("finetune", "--model", tiny_model_dir, "--data", texts_csv, "--out", teacher,
                       "--epochs", "3", "--batch-size", "16", "--lr", "3e-3", "--workers", "0")
    assert proc.returncode == 0, proc.stderr
    pruned = tmp_path / "pruned"
    proc, _ = slimtune("prune", "--model", teacher, "--data", texts_csv, "--out", pruned,
                       "--layers", "1", "--heads", "0.5", "--ffn", "0.5", "--hidden", "0.5", "--importance", "taylor")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((pruned / "metrics.json").read_text())
    assert metrics["pruned"]["hidden_size"] == 16
    for key in ("accuracy", "f1_macro", "num_parameters", "encoder_flops", "size_mb"):
        assert key in metrics
    assert metrics["flops_ratio"] < 0.3 and metrics["pruned"]["kept_layers"] == [1]
    student = tmp_path / "student"  # narrower than the teacher: hidden states through a projection, from the cache
    proc, _ = slimtune("distill", "--teacher", teacher, "--student", pruned, "--data", texts_csv, "--out", student,
                       "--epochs", "3", "--patience", "1", "--batch-size", "16", "--lr", "3e-3", "--hidden-weight", "0.5",
                       "--workers", "0")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((student / "metrics.json").read_text())
    assert metrics["layer_map"] == [1]  # the pruned student learns from the layer it came from
    assert "caching the teacher's hidden states of" in proc.stderr
    assert metrics["encoder_flops"] < metrics["teacher"]["encoder_flops"]
    assert metrics["accuracy"] >= 0.9


def test_distill_bad_student_fails_fast(tiny_model_dir, texts_csv, tmp_path):
    proc, seconds = slimtune("distill", "--teacher", tiny_model_dir, "--student", "random:layers=2,width=9",
                             "--data", texts_csv, "--out", tmp_path / "o", timeout=60)
    assert proc.returncode == 2 and "width=9" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_unwritable_out_and_unreachable_hub_fail_in_one_line(tmp_path, texts_csv, tiny_model_dir):
    (tmp_path / "file").write_text("")
    proc, seconds = slimtune("finetune", "--model", tiny_model_dir, "--data", texts_csv, "--out", tmp_path / "file" / "o",
                             timeout=60)
    assert proc.returncode == 2 and "--out: cannot write to" in proc.stderr and "Traceback" not in proc.stderr
    # a hub that does not answer (a closed local port stands in for no internet): one line, fast
    env = {**ENV, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "https://127.0.0.1:9"}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "slimtune.cli.main", "finetune", "--model", str(tiny_model_dir),
                           "--data", "hf:someone/some-data", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2 and "hub, which is not reachable" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and time.perf_counter() - started < 15


def test_bad_prune_and_distill_arguments_fail_before_any_work(tiny_model_dir, texts_csv, tmp_path):
    """Checked from flags and configs alone, before data or weights are read (one line, seconds)."""
    m = str(tiny_model_dir)
    cases = [
        (["prune", "--model", m, "--data", texts_csv, "--out", tmp_path / "p1", "--layers=-1,1"], "non-negative"),
        (["prune", "--model", m, "--data", texts_csv, "--out", tmp_path / "p2", "--layers", "0,0"], "distinct"),
        (["prune", "--model", m, "--data", texts_csv, "--out", tmp_path / "p3", "--layers", "9"], "has 2 layers"),
        (["prune", "--model", m, "--data", texts_csv, "--out", tmp_path / "p4", "--layers", "0,5"], "has 2 layers"),
        (["distill", "--teacher", m, "--student", "notamodel", "--data", texts_csv, "--out", tmp_path / "d"],
         "--student"),
        (["distill", "--teacher", m, "--student", m, "--data", texts_csv, "--out", tmp_path / "d2",
          "--unlabeled", tmp_path / "missing.txt"], "--unlabeled"),
        (["search", "--teacher", m, "--data", texts_csv, "--out", tmp_path / "s", "--space", "search_spaces/full.py",
          "--max-unlabeled-samples", "-1"], "max_unlabeled_samples"),
        (["finetune", "--model", m, "--data", texts_csv, "--out", tmp_path / "f", "--truncation", "tail"], "--truncation"),
    ]
    for args, words in cases:
        proc, seconds = slimtune(*args, timeout=60)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and words in lines[0], (args, proc.stderr)
        assert seconds < 10, (args, seconds)

