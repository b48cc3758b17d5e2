"""Teacher + linear model as distillation targets: the weight comes from validation, the linear
model's columns follow the data's label order, and a teacher that needs no help is left alone."""

import numpy as np
import pytest
import torch

from slimtune.distillation.blend import blend, check_linear_teacher, linear_log_probs
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
