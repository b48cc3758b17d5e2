import numpy as np

from slimtune.train.metrics import confusion_matrix, metrics_from_confusion


def test_accuracy_and_macro_f1_by_hand():
    labels = [0, 0, 0, 1, 1, 2]
    preds = [0, 0, 1, 1, 2, 2]
    matrix = confusion_matrix(labels, preds, 3)
    assert matrix.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    m = metrics_from_confusion(matrix)
    assert m["accuracy"] == 4 / 6
    f1 = [2 * 2 / (3 + 2), 2 * 1 / (2 + 2), 2 * 1 / (1 + 2)]
    assert np.isclose(m["f1_macro"], np.mean(f1))


def test_absent_class_is_ignored():
    m = metrics_from_confusion(confusion_matrix([0, 1], [0, 1], 3))
    assert m == {"accuracy": 1.0, "f1_macro": 1.0}


def test_finetune_scores_the_test_split_through_the_logits_cache(tiny_model_dir, texts_csv, tmp_path):
    """`slimtune finetune` leaves its test logits in the cache under the saved weights, so the first
    distillation from this teacher does not run it over the test texts again; its figures are a
    plain evaluation's."""
    import json

    from slimtune.data import DataSpec, load_data
    from slimtune.data.tokenize import encode_data
    from slimtune.distillation.cache import _read_shards, row_keys, teacher_key
    from slimtune.models import load_classifier, load_tokenizer
    from slimtune.models.builtin import cache_dir
    from slimtune.train.finetune import FinetuneSpec, run_finetune
    from slimtune.train.loop import TrainSpec, evaluate

    trained_tiny_dir = tmp_path / "trained"  # its own weights: no other test has cached them
    run_finetune(FinetuneSpec(str(tiny_model_dir), DataSpec(str(texts_csv)), str(trained_tiny_dir),
                              TrainSpec(epochs=1, batch_size=16, lr=3e-3), max_length=32, workers=0))
    model_dir = str(trained_tiny_dir / "model")
    data, tok = load_data(DataSpec(str(texts_csv))), load_tokenizer(model_dir)
    test = encode_data(data, tok, 32)["test"]
    assert set(row_keys(test).tolist()) <= _read_shards(cache_dir() / "teacher_logits" / teacher_key(model_dir)).keys()
    plain = evaluate(load_classifier(model_dir, data.label_names).eval(), test, data.num_labels, tok.pad_token_id)
    metrics = json.loads((trained_tiny_dir / "metrics.json").read_text())
    assert (metrics["accuracy"], metrics["f1_macro"], metrics["confusion"]) == (plain["accuracy"], plain["f1_macro"],
                                                                                 plain["confusion"])
