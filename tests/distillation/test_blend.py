"""Teacher + linear model as distillation targets: the weight comes from validation, the linear
model's columns follow the data's label order, and a teacher that needs no help is left alone."""

import numpy as np
import pytest
import torch

from slimtune.distillation.blend import WEIGHTS, blend, check_linear_teacher, linear_log_probs, teaches
from slimtune.errors import SlimtuneError
from tests.alternatives.test_linear import _tiny_bundle
from tests.helpers import make_texts


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blend") / "linear"
    _tiny_bundle(folder)
    return str(folder)


def test_a_blind_teacher_takes_the_linear_model_in(bundle):
    frame = make_texts(60, seed=3)
    texts, labels = list(frame["text"]), (frame["label"] == "pos").astype(int).tolist()
    linear = linear_log_probs(bundle, texts, ["neg", "pos"])
    assert (linear.argmax(1) == np.asarray(labels)).mean() > 0.9  # the linear model reads this task
    flat = torch.zeros(len(texts), 2)  # a teacher that knows nothing: ties, argmax says "neg" everywhere
    targets, report = blend(flat, bundle, texts, ["neg", "pos"], flat, texts, labels)
    assert report["weight"] > 0 and report["validation_accuracy"][0.0] < report["validation_accuracy"][report["weight"]]
    assert (targets.argmax(1).numpy() == linear.argmax(1)).all()
    # the data's label order, not the bundle's: columns swap with the names
    swapped = linear_log_probs(bundle, texts, ["pos", "neg"])
    np.testing.assert_allclose(swapped, linear[:, ::-1])


def test_a_teacher_right_on_validation_is_kept(bundle):
    frame = make_texts(40, seed=4)
    texts, labels = list(frame["text"]), (frame["label"] == "pos").astype(int).tolist()
    sure = torch.nn.functional.one_hot(torch.tensor(labels), 2).float() * 20
    targets, report = blend(sure, bundle, texts, ["neg", "pos"], sure, texts, labels)
    assert report["weight"] == 0 and targets is sure  # ties go to the smaller weight: the teacher alone


def test_not_a_linear_bundle_is_refused(tmp_path):
    with pytest.raises(SlimtuneError, match="--linear-teacher: .* is not a linear TF-IDF bundle"):
        check_linear_teacher(str(tmp_path))
    check_linear_teacher(None)


def test_the_linear_model_teaches_only_beyond_the_margin():
    assert not teaches({0.0: 0.9516, 0.5: 0.9535, 1.0: 0.9554, 4.0: 0.9516})  # the tweets, seed 1: 2 of 516 rows
    assert teaches({0.0: 0.8744, 0.25: 0.8846, 1.0: 0.8949})  # five newsgroups, seed 2: 8 of 390
    assert teaches({0.0: 0.80, 1.0: 0.81}) and not teaches({0.0: 0.80, 1.0: 0.80})


def test_a_job_decides_on_validation_with_teach_auto(tiny_model_dir, trained_tiny_dir, texts_csv, bundle, tmp_path):
    """The job's default end to end: the teacher's and the bundle's validation scores at every
    weight, and the search handed the linear model exactly when they clear the bar; a teacher that
    never trained (the random tiny BERT) is far below the linear model and gets it."""
    import json
    import shutil
    from pathlib import Path

    from slimtune.data import DataSpec, load_data
    from slimtune.pipeline import _teach, load_job
    from slimtune.results import Result

    (tmp_path / "job.yaml").write_text(f"data: {{source: {texts_csv}}}\nout: {tmp_path / 'job'}\n")
    job = load_job(tmp_path / "job.yaml")
    folder = Path(job.out) / "alternatives" / "linear"
    shutil.copytree(bundle, folder)
    teacher = Result(str(trained_tiny_dir), json.loads((Path(trained_tiny_dir) / "metrics.json").read_text()))
    taught, decided = _teach(job, load_data(DataSpec(str(texts_csv))), {"accuracy_validation": 0.5}, teacher)
    assert decided["mode"] == "auto" and set(decided["validation_accuracy"]) == set(WEIGHTS)
    assert decided["on"] == teaches(decided["validation_accuracy"])
    assert taught.search.linear_teacher == (str(folder) if decided["on"] else None)
    blind = Result(str(tiny_model_dir), {})
    taught, decided = _teach(job, load_data(DataSpec(str(texts_csv))), {"accuracy_validation": 0.5}, blind)
    assert decided["on"] and taught.search.linear_teacher == str(folder)


def test_the_blend_reads_the_teachers_validation_logits_from_the_cache(tiny_model_dir, texts_csv, bundle, tmp_path):
    """The job's auto decision, its trials and its winners all score the teacher on the same
    validation texts: after the first pass, a distillation with the linear teacher reads them from
    the logits cache. Cached logits that put every validation row right (a teacher the blend then
    leaves alone, weight 0) prove it: the untrained tiny BERT itself is near chance there."""
    import shutil

    from slimtune.data import DataSpec, load_data
    from slimtune.data.tokenize import encode_data
    from slimtune.distillation.blend import validation_scores
    from slimtune.distillation.cache import _write_shard, row_keys, teacher_key
    from slimtune.distillation.run import DistillSpec, run_distill
    from slimtune.models import load_tokenizer
    from slimtune.models.builtin import cache_dir
    from slimtune.train.loop import TrainSpec

    teacher_dir = str(shutil.copytree(tiny_model_dir, tmp_path / "teacher"))  # its own cache key
    spec = DataSpec(str(texts_csv), max_train_samples=12, max_unlabeled_samples=0)
    data = load_data(spec)
    first = validation_scores(teacher_dir, bundle, data, 32)
    assert first[0.0] < 0.8  # the untrained teacher alone
    val = encode_data(data, load_tokenizer(teacher_dir), 32)["validation"]
    right = torch.nn.functional.one_hot(torch.tensor(val.labels), 2).float() * 20
    folder = cache_dir() / "teacher_logits" / teacher_key(teacher_dir)
    for shard in folder.glob("shard-*"):  # the first pass's: which of two shards of one key wins is their names' order
        shard.unlink()
    _write_shard(folder, row_keys(val), right)
    metrics = run_distill(DistillSpec(teacher=teacher_dir, student=str(tiny_model_dir), data=spec, max_length=32,
                                      out=str(tmp_path / "student"), linear_teacher=bundle, workers=0,
                                      train=TrainSpec(epochs=1, batch_size=16, lr=3e-3)))
    assert metrics["linear_teacher"]["validation_accuracy"][0.0] == 1.0 and metrics["linear_teacher"]["weight"] == 0
