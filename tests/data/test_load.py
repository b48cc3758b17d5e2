"""Every source form, column mapping, label names, recorded splits, and each bad-input message."""

import json

import pandas as pd
import pytest

from tests.helpers import make_texts
from slimtune.data import DataSpec, load_data
from slimtune.errors import SlimtuneError


@pytest.fixture()
def frame():
    return make_texts(100)


@pytest.mark.parametrize("suffix", ["csv", "tsv", "json", "jsonl", "parquet"])
def test_file_formats(tmp_path, frame, suffix):
    path = tmp_path / f"data.{suffix}"
    if suffix == "csv":
        frame.to_csv(path, index=False)
    elif suffix == "tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif suffix == "json":
        frame.to_json(path, orient="records")
    elif suffix == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    data = load_data(DataSpec(str(path)))
    assert data.label_names == ("neg", "pos")
    assert len(data.train) + len(data.validation) + len(data.test) == 100
    assert len(data.test) == 20
    assert set(data.train.columns) == {"text", "label"}


def test_folder_of_splits_and_column_mapping(tmp_path, frame):
    renamed = frame.rename(columns={"text": "body", "label": "y"})
    renamed.iloc[:80].to_csv(tmp_path / "train.csv", index=False)
    renamed.iloc[80:].to_json(tmp_path / "test.jsonl", orient="records", lines=True)
    data = load_data(DataSpec(str(tmp_path), text_column="body", label_column="y"))
    assert len(data.test) == 20
    assert data.split_info["test"]["from"] == "the source's test split"
    assert len(data.train) + len(data.validation) == 80


def test_save_to_disk_folder_keeps_class_names(tmp_path):
    import datasets

    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["zebra", "apple"])})
    rows = {"text": [f"t {i}" for i in range(40)], "label": [i % 2 for i in range(40)]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows, features=features)}).save_to_disk(tmp_path / "ds")
    data = load_data(DataSpec(str(tmp_path / "ds")))
    assert data.label_names == ("zebra", "apple")  # declared order, not sorted
    assert len(data.test) == 8


def test_integer_labels_sort_numerically(tmp_path):
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(120)], "label": [i % 12 for i in range(120)]})
    frame.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    data = load_data(DataSpec(str(tmp_path / "d.jsonl")))
    assert data.label_names == tuple(str(i) for i in range(12))


def test_split_is_seeded_recorded_and_stratified(texts_csv):
    a = load_data(DataSpec(str(texts_csv), seed=3))
    b = load_data(DataSpec(str(texts_csv), seed=3))
    c = load_data(DataSpec(str(texts_csv), seed=4))
    assert a.split_info["test"]["row_indices"] == b.split_info["test"]["row_indices"]
    assert a.split_info["test"]["row_indices"] != c.split_info["test"]["row_indices"]
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert a.split_info["test"]["seed"] == 3
    assert a.test["label"].value_counts().tolist() == [24, 24]
    json.dumps(a.split_info)  # recorded as JSON with the outputs


def test_max_train_samples_subsamples_train_only(texts_csv):
    data = load_data(DataSpec(str(texts_csv), max_train_samples=50))
    assert len(data.train) == 50 and len(data.test) == 48
    assert data.train["label"].value_counts().tolist() == [25, 25]


def _error(spec: DataSpec) -> str:
    with pytest.raises(SlimtuneError) as info:
        load_data(spec)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_file():
    assert "does not exist" in _error(DataSpec("/nonexistent/data.csv"))


def test_unknown_format(tmp_path):
    (tmp_path / "data.xlsx").write_text("x")
    assert "unknown file format '.xlsx'" in _error(DataSpec(str(tmp_path / "data.xlsx")))


def test_missing_column_lists_columns(tmp_path, frame):
    frame.rename(columns={"label": "category"}).to_csv(tmp_path / "d.csv", index=False)
    message = _error(DataSpec(str(tmp_path / "d.csv")))
    assert "column 'label' not found" in message and "text, category" in message
    assert "--label-column" in message


def test_empty_dataset(tmp_path):
    (tmp_path / "d.csv").write_text("text,label\n")
    assert "has no rows" in _error(DataSpec(str(tmp_path / "d.csv")))
    (tmp_path / "e.csv").write_text("")
    assert "is empty" in _error(DataSpec(str(tmp_path / "e.csv")))


def test_single_class(tmp_path, frame):
    frame.assign(label="pos").to_csv(tmp_path / "d.csv", index=False)
    assert "single class" in _error(DataSpec(str(tmp_path / "d.csv")))


def test_all_texts_empty(tmp_path, frame):
    frame.assign(text="  ").to_csv(tmp_path / "d.csv", index=False)
    assert "every text in column 'text'" in _error(DataSpec(str(tmp_path / "d.csv")))


def test_unseen_test_labels(tmp_path, frame):
    frame.iloc[:80].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[80:].assign(label="mystery").to_csv(tmp_path / "test.csv", index=False)
    assert "never seen in training (mystery)" in _error(DataSpec(str(tmp_path)))


def test_not_utf8(tmp_path):
    (tmp_path / "d.csv").write_bytes("text,label\ncaf\xe9 au lait,a\n".encode("latin-1"))
    assert "not UTF-8" in _error(DataSpec(str(tmp_path / "d.csv")))


def test_missing_labels(tmp_path, frame):
    frame.loc[5, "label"] = ""
    frame.to_csv(tmp_path / "d.csv", index=False)
    assert "1 rows of the train split have no label (first at row 5)" in _error(DataSpec(str(tmp_path / "d.csv")))


def test_unknown_builtin():
    assert "choose one of builtin:tweets" in _error(DataSpec("builtin:imdb"))


def test_folder_without_train(tmp_path):
    assert "has no train file" in _error(DataSpec(str(tmp_path)))


def test_bad_spec_values():
    with pytest.raises(SlimtuneError, match="--max-train-samples"):
        DataSpec("x.csv", max_train_samples=1)
    with pytest.raises(SlimtuneError, match="test_fraction"):
        DataSpec("x.csv", test_fraction=1.5)
