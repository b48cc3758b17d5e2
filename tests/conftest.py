"""Shared fixtures: a tiny word-level tokenizer and BERT (2 layers, hidden 32) built from config,
a learnable two-class text task, and one session-scoped 2-CPU Ray cluster for `ray` tests."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

from tests.helpers import build_tiny_bert, build_tokenizer, make_texts

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # unit tests never download
# fp32 on every CPU, AMX or not (Ray workers inherit it): the tests' references are fp32 at tight
# tolerances; tests/train/test_loop.py checks the bf16 path itself
os.environ["SLIMTUNE_CPU_BF16"] = "0"
# caches (teacher logits, the unpacked MPNet) go to a throwaway folder, not the user's cache
os.environ["SLIMTUNE_CACHE"] = tempfile.mkdtemp(prefix="slimtune-test-cache-")
atexit.register(shutil.rmtree, os.environ["SLIMTUNE_CACHE"], ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A local Hugging Face folder (config, safetensors, tokenizer) of a random tiny BERT."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = build_tokenizer()
    build_tiny_bert(vocab_size=len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def texts_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "texts.csv"
    make_texts(240).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """One 2-CPU Ray for every `ray` test, dashboard on (without it a finished TorchTrainer can leave
    its placement group behind); shut down by its own means."""
    ray = pytest.importorskip("ray")
    from slimtune.ray_session import ensure_ray

    os.environ.pop("RAY_ADDRESS", None)
    ensure_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def trained_tiny_dir(tiny_model_dir, texts_csv, tmp_path_factory):
    """`slimtune finetune` output of the tiny BERT on the two-class task: a small real teacher."""
    from slimtune.data import DataSpec
    from slimtune.train.finetune import FinetuneSpec, run_finetune
    from slimtune.train.loop import TrainSpec

    out = tmp_path_factory.mktemp("trained")
    run_finetune(FinetuneSpec(str(tiny_model_dir), DataSpec(str(texts_csv)), str(out),
                              TrainSpec(epochs=3, batch_size=16, lr=3e-3), max_length=32, workers=0))
    return out
