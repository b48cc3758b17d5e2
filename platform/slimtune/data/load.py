"""Load labelled text from any source the CLI accepts, check it, and split it.

Sources: `builtin:NAME`; a CSV, TSV, JSON, JSONL or Parquet file; a folder with `train.*` and
optional `validation.*` / `test.*`; a `datasets.save_to_disk` folder; `hf:NAME[:CONFIG]`.
Everything becomes three pandas frames with a `text` column (str) and a `label` column (int id
into `label_names`), plus the transfer set: texts without labels (`unlabeled=` and the labelled
rows beyond `max_train_samples`) that distillation learns from through the teacher's logits.
Checks run here, before any model is loaded, so bad input fails in seconds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from slimtune import log
from slimtune.data.builtin import load_builtin
from slimtune.data.split import stratified_pick
from slimtune.data.truncation import TRUNCATIONS
from slimtune.errors import SlimtuneError

FILE_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".parquet")
_SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
}


@dataclass(frozen=True)
class DataSpec:
    """What to load and how to split it."""

    source: str
    """`builtin:NAME`, a file, a folder, or `hf:NAME[:CONFIG]`."""
    text_column: str | None = None
    """Column holding the text; None means the built-in dataset's own, else `text`."""
    label_column: str | None = None
    """Column holding the label; None means the built-in dataset's own, else `label`."""
    test_fraction: float = 0.2
    """Share of train held out as test when the source has no test split."""
    validation_fraction: float = 0.1
    """Share of train held out for per-epoch evaluation when there is no validation split."""
    max_validation_samples: int = 1000
    """Cap on a validation split carved from train: per-epoch evaluation stays cheap."""
    max_train_samples: int | None = None
    """Stratified subsample of the training split (after the held-out splits are taken)."""
    seed: int = 42
    """Seed of every split and subsample."""
    unlabeled: str | None = None
    """Unlabelled text from the same source, for distillation (the teacher labels it, students learn
    its logits): a .txt file (one text a line), a CSV/TSV/JSON/JSONL/Parquet file (its `text_column`,
    else `text`), or a folder of such files."""
    truncation: str | None = None
    """How a text longer than `max_length` tokens is cut: head (its first tokens) or head_tail (the
    first quarter and the last three quarters of the budget: better on long documents, whose end
    often says what they are about). None: as the model was trained (slimtune.json), else head.
    Recorded in every model and bundle; the runtime applies it."""
    max_unlabeled_samples: int | None = None
    """Cap on the transfer set (seeded sample). It holds the `unlabeled` texts and the training rows
    beyond `max_train_samples` with their labels hidden; 0 turns it off; None keeps every text."""

    def __post_init__(self):
        if not self.source:
            raise SlimtuneError("--data: give a dataset (e.g. builtin:tweets or a CSV file)")
        for name in ("test_fraction", "validation_fraction"):
            value = getattr(self, name)
            if not 0.0 < value < 0.9:
                raise SlimtuneError(f"{name}: must be between 0 and 0.9, got {value}")
        if self.max_train_samples is not None and self.max_train_samples < 2:
            raise SlimtuneError(
                f"--max-train-samples: must be at least 2, got {self.max_train_samples}"
            )
        if self.truncation is not None and self.truncation not in TRUNCATIONS:
            raise SlimtuneError(f"--truncation: {' or '.join(TRUNCATIONS)}, not {self.truncation!r}")
        if self.max_unlabeled_samples is not None and self.max_unlabeled_samples < 0:
            raise SlimtuneError(f"max_unlabeled_samples: 0 or more (0 turns the transfer set off), "
                                f"got {self.max_unlabeled_samples}")
        if self.unlabeled is not None and not Path(self.unlabeled).expanduser().exists():
            raise SlimtuneError(f"--unlabeled: {self.unlabeled} does not exist; give a text file (one text a "
                                "line), a CSV/Parquet file with a text column, or a folder of them")


def as_data_spec(value):
    """A stage spec's `data`: a source string is taken as DataSpec(source); None and specs pass."""
    return DataSpec(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class TextData:
    """Checked, split data: `text` (str) and `label` (int id) columns in every split."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    label_names: tuple[str, ...]
    split_info: dict = field(default_factory=dict)
    """How each split was obtained (source or seed, fraction, row indices): saved with outputs."""
    fingerprint: str = ""
    """sha256 over every split's texts and labels, to tell later which data a model saw."""
    unlabeled: tuple[str, ...] = ()
    """The transfer set: texts without labels, none equal to a validation, test or training text."""
    truncation: str | None = None
    """DataSpec.truncation: how every encoding of these texts cuts a long one (None: head, until a
    stage takes its model's own: data.length.inherit_truncation)."""

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def summary(self) -> str:
        transfer = f" + {len(self.unlabeled)} unlabelled" if self.unlabeled else ""
        return (
            f"{len(self.train)} train{transfer} / {len(self.validation)} validation / {len(self.test)} test, "
            f"{self.num_labels} labels"
        )


# ---------------------------------------------------------------- reading raw splits


def _read_file(path: Path, flag: str = "--data") -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            sep = "\t" if suffix == ".tsv" else ","
            return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8")
        if suffix == ".jsonl":
            return pd.read_json(path, lines=True, encoding="utf-8", dtype=False)
        if suffix == ".json":
            try:
                return pd.read_json(path, encoding="utf-8", dtype=False)
            except ValueError:  # JSON Lines saved with a .json suffix
                return pd.read_json(path, lines=True, encoding="utf-8", dtype=False)
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except UnicodeDecodeError as exc:
        raise SlimtuneError(
            f"{flag}: {path} is not UTF-8 text (byte {exc.start}); re-save it as UTF-8"
        ) from None
    except pd.errors.EmptyDataError:
        raise SlimtuneError(f"{flag}: {path} is empty; give a file with a header and rows") from None
    except (ValueError, pd.errors.ParserError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SlimtuneError(f"{flag}: cannot read {path} as {suffix[1:]}: {first}") from None
    raise SlimtuneError(
        f"{flag}: unknown file format '{suffix or path.name}'; use one of {', '.join(FILE_SUFFIXES)}"
    )


def _from_hf(dataset_dict) -> tuple[dict[str, pd.DataFrame], dict[str, list[str]]]:
    """Convert a `datasets` Dataset/DatasetDict; keep ClassLabel names so labels stay readable."""
    import datasets

    if isinstance(dataset_dict, datasets.Dataset):
        dataset_dict = datasets.DatasetDict({"train": dataset_dict})
    frames, class_names = {}, {}
    for split, ds in dataset_dict.items():
        frames[split] = ds.to_pandas()
        for column, feature in ds.features.items():
            if isinstance(feature, datasets.ClassLabel):
                class_names[column] = list(feature.names)
    return frames, class_names


def _read_folder(folder: Path) -> tuple[dict[str, pd.DataFrame], dict[str, list[str]]]:
    if (folder / "dataset_dict.json").exists() or (folder / "state.json").exists():
        import datasets

        return _from_hf(datasets.load_from_disk(str(folder)))
    frames = {}
    for path in sorted(folder.iterdir()):
        split = _SPLIT_ALIASES.get(path.stem.lower())
        if split and path.suffix.lower() in FILE_SUFFIXES:
            if split in frames:
                raise SlimtuneError(f"--data: {folder} holds two files for the {split} split")
            frames[split] = _read_file(path)
    if "train" not in frames:
        raise SlimtuneError(
            f"--data: folder {folder} has no train file; add train.csv (or .json/.jsonl/.parquet), "
            "optionally validation.* and test.*, or give a datasets.save_to_disk folder"
        )
    return frames, {}


def _read_hub(name: str) -> tuple[dict[str, pd.DataFrame], dict[str, list[str]]]:
    import datasets

    from slimtune.hub import hub_reachable

    repo, _, config = name.partition(":")
    if not hub_reachable():
        raise SlimtuneError(f"--data: hf:{name} needs the Hugging Face hub, which is not reachable from here; "
                            "give a local file or folder, or a builtin: data set")
    try:
        loaded = datasets.load_dataset(repo, config or None)
    except Exception as exc:  # network, unknown name, gated: all end the same way for the user
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise SlimtuneError(
            f"--data: cannot load hf:{name} from the Hugging Face hub ({first}); "
            "check the name and your network, or give a local file"
        ) from None
    return _from_hf(loaded)


def read_splits(source: str) -> tuple[dict[str, pd.DataFrame], str | None, str | None, dict]:
    """Return raw frames by split, default text/label columns (or None), and ClassLabel names."""
    if source.startswith("builtin:"):
        frames, info = load_builtin(source.removeprefix("builtin:"))
        return frames, info.text_column, info.label_column, {}
    if source.startswith("hf:"):
        frames, names = _read_hub(source.removeprefix("hf:"))
        return frames, None, None, names
    path = Path(source).expanduser()
    if not path.exists():
        raise SlimtuneError(
            f"--data: {source} does not exist; give a file, a folder, builtin:tweets or hf:NAME"
        )
    if path.is_dir():
        frames, names = _read_folder(path)
        return frames, None, None, names
    return {"train": _read_file(path)}, None, None, {}


# ---------------------------------------------------------------- checking and splitting


def _select(frame: pd.DataFrame, split: str, text_col: str, label_col: str, source: str):
    for column, flag in ((text_col, "--text-column"), (label_col, "--label-column")):
        if column not in frame.columns:
            there = ", ".join(map(str, frame.columns)) or "none"
            raise SlimtuneError(
                f"--data: column '{column}' not found in the {split} split of {source} "
                f"(columns: {there}); set {flag}"
            )
    out = pd.DataFrame({"text": frame[text_col], "label": frame[label_col]})
    missing = out["label"].isna() | (out["label"].astype(str).str.strip() == "")
    if missing.any():
        row = int(np.flatnonzero(missing.to_numpy())[0])
        raise SlimtuneError(
            f"--data: {int(missing.sum())} rows of the {split} split have no label "
            f"(first at row {row}); fill or drop them"
        )
    out["text"] = out["text"].fillna("").astype(str)
    return out.reset_index(drop=True)


def _label_names(train_labels: pd.Series, class_names: list[str] | None) -> list[str]:
    if class_names:  # datasets ClassLabel: ids already; keep the declared order
        return list(class_names)
    names = sorted(set(train_labels.astype(str)))
    if all(n.lstrip("-").isdigit() for n in names):
        names.sort(key=int)  # 2 before 10
    return names


def _to_ids(labels: pd.Series, names: list[str], class_names, split: str, source: str):
    if class_names and (labels.astype(int) < 0).any():  # the hub marks unlabelled rows with -1
        raise SlimtuneError(
            f"--data: the {split} split of {source} has unlabelled rows (label -1); "
            "use a split with labels, or drop it so that a test split is carved from train"
        )
    strings = labels.map(lambda v: class_names[int(v)] if class_names else str(v))
    index = {n: i for i, n in enumerate(names)}
    unseen = sorted(set(strings) - set(index))
    if unseen:
        shown = ", ".join(unseen[:5]) + (" ..." if len(unseen) > 5 else "")
        raise SlimtuneError(
            f"--data: the {split} split of {source} has labels never seen in training ({shown}); "
            "add examples of them to train or remove them"
        )
    return strings.map(index).astype(int)


def _fingerprint(frames: dict[str, pd.DataFrame]) -> str:
    digest = hashlib.sha256()
    for split in ("train", "validation", "test"):
        frame = frames[split]
        digest.update(split.encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _hold_out(frame: pd.DataFrame, n_pick: int, seed: int):
    rest, picked = stratified_pick(frame["label"].to_numpy(), n_pick, seed)
    return frame.iloc[rest].reset_index(drop=True), frame.iloc[picked].reset_index(drop=True), picked


def _sample(texts: tuple[str, ...], rows: int | None, seed: int) -> tuple[str, ...]:
    """A seeded sample of `rows` texts in their order (all when rows is None or not fewer)."""
    if rows is None or rows >= len(texts):
        return texts
    keep = np.sort(np.random.default_rng(seed).permutation(len(texts))[:rows])
    return tuple(texts[i] for i in keep)


def subsample_train(data: TextData, rows: int | None, seed: int, unlabeled_rows: int | None = None) -> TextData:
    """The same data with a stratified subsample of `rows` training rows and a sample of
    `unlabeled_rows` transfer texts (validation and test as they are): a search trains its trials
    on fewer rows than the data a job loaded once. The labelled rows left out are not added to the
    transfer set here: a trial's budget is the search's."""
    unlabeled = _sample(data.unlabeled, unlabeled_rows, seed)
    if not rows or rows >= len(data.train):
        return data if unlabeled is data.unlabeled else replace(data, unlabeled=unlabeled)
    if rows < data.num_labels:
        raise SlimtuneError(f"--max-train-samples: {rows} is fewer than the {data.num_labels} classes; raise it")
    _, train, _ = _hold_out(data.train, rows, seed)
    frames = {"train": train, "validation": data.validation, "test": data.test}
    info = {**data.split_info, "train_subsample": {"rows": rows, "seed": seed}, "train": {"rows": rows}}
    return replace(data, train=train, split_info=info, fingerprint=_fingerprint(frames), unlabeled=unlabeled)


UNLABELED_SUFFIXES = (".txt",) + FILE_SUFFIXES


def read_unlabeled(source: str, text_column: str | None) -> list[str]:
    """Texts of `--unlabeled`: a .txt file (one text a line), a table's text column, or a folder of those."""
    path = Path(source).expanduser()
    files = sorted(f for f in path.iterdir() if f.suffix.lower() in UNLABELED_SUFFIXES) if path.is_dir() else [path]
    if not files:
        raise SlimtuneError(f"--unlabeled: folder {source} holds no {', '.join(UNLABELED_SUFFIXES)} file")
    texts: list[str] = []
    for file in files:
        if file.suffix.lower() == ".txt":
            try:
                texts += [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
            except UnicodeDecodeError as exc:
                raise SlimtuneError(f"--unlabeled: {file} is not UTF-8 text (byte {exc.start}); re-save it as UTF-8") from None
            continue
        frame = _read_file(file, "--unlabeled")
        column = text_column or "text"
        if column not in frame.columns:
            there = ", ".join(map(str, frame.columns)) or "none"
            raise SlimtuneError(f"--unlabeled: column '{column}' not found in {file} (columns: {there}); "
                                "name the text column with --text-column (the labelled data's too)")
        texts += [t for t in frame[column].fillna("").astype(str) if t.strip()]
    return texts


def _transfer_set(spec: DataSpec, beyond_cap: list[str], text_column: str | None,
                  labelled: TextData) -> tuple[tuple[str, ...], dict]:
    """The transfer set: the training rows beyond the cap (labels hidden) and the `unlabeled` texts,
    minus any text equal to a validation or test text (they would leak into the students' scores)
    or to a labelled training text, once each, capped by a seeded sample."""
    if spec.max_unlabeled_samples == 0:
        return (), {}
    given = read_unlabeled(spec.unlabeled, text_column) if spec.unlabeled else []
    held_out = set(labelled.validation["text"]) | set(labelled.test["text"])
    candidates = dict.fromkeys(beyond_cap + given)  # in order, once each
    leaking = [t for t in candidates if t in held_out]
    if leaking:
        log.info(f"transfer set: dropped {len(leaking):,} text(s) equal to a validation or test text")
    known = set(labelled.train["text"])
    texts = tuple(t for t in candidates if t not in held_out and t not in known)
    capped = _sample(texts, spec.max_unlabeled_samples, spec.seed)
    info = {"rows": len(capped), "beyond_max_train_samples": len(beyond_cap), "from_unlabeled": len(given),
            "dropped_equal_to_validation_or_test": len(leaking), "source": spec.unlabeled,
            "capped_from": len(texts) if len(capped) < len(texts) else None}
    return capped, info


def load_data(spec: DataSpec) -> TextData:
    """Read, check and split `spec.source`. Raises SlimtuneError with a one-line fix on bad input."""
    raw, default_text, default_label, class_names = read_splits(spec.source)
    raw = {_SPLIT_ALIASES.get(k.lower(), k.lower()): v for k, v in raw.items()}
    if "train" not in raw:
        raise SlimtuneError(f"--data: {spec.source} has no train split (splits: {', '.join(raw)})")
    text_col = spec.text_column or default_text or "text"
    label_col = spec.label_column or default_label or "label"
    frames = {
        split: _select(raw[split], split, text_col, label_col, spec.source)
        for split in ("train", "validation", "test")
        if split in raw
    }
    train = frames["train"]
    if len(train) == 0:
        raise SlimtuneError(f"--data: the train split of {spec.source} has no rows")
    if (train["text"].str.strip() == "").all():
        raise SlimtuneError(
            f"--data: every text in column '{text_col}' of {spec.source} is empty; "
            "set --text-column to the column that holds the text"
        )
    names = _label_names(train["label"], class_names.get(label_col))
    if len(set(train["label"].astype(str))) < 2:
        raise SlimtuneError(
            f"--data: the train split of {spec.source} has a single class ({names[0]}); "
            "a classifier needs at least two"
        )
    for split, frame in frames.items():
        frame["label"] = _to_ids(frame["label"], names, class_names.get(label_col), split, spec.source)

    split_info: dict = {"source": spec.source, "text_column": text_col, "label_column": label_col}
    train = frames.pop("train")
    for split, fraction, cap in (
        ("test", spec.test_fraction, None),
        ("validation", spec.validation_fraction, spec.max_validation_samples),
    ):
        if split in frames:
            split_info[split] = {"from": f"the source's {split} split", "rows": len(frames[split])}
            continue
        n_pick = max(1, round(len(train) * fraction))
        n_pick = min(n_pick, cap) if cap else n_pick
        if len(train) - n_pick < 2:
            raise SlimtuneError(
                f"--data: {spec.source} has only {len(train)} training rows, too few to hold out "
                f"a {split} split; add rows or give a {split} file"
            )
        train, frames[split], picked = _hold_out(train, n_pick, spec.seed)
        split_info[split] = {
            "from": "seeded stratified split of the remaining train rows",
            "seed": spec.seed,
            "fraction": fraction,
            "rows": n_pick,
            "row_indices": picked.tolist(),
        }
    split_info["train"] = {"rows": len(train)}
    frames["train"] = train
    data = TextData(
        train=train,
        validation=frames["validation"],
        test=frames["test"],
        label_names=tuple(names),
        split_info=split_info,
        fingerprint=_fingerprint(frames),
        truncation=spec.truncation,
    )
    beyond_cap: list[str] = []
    if spec.max_train_samples and spec.max_train_samples < len(train):
        rest = stratified_pick(train["label"].to_numpy(), spec.max_train_samples, spec.seed)[0]
        beyond_cap = list(train["text"].iloc[rest])
    data = subsample_train(data, spec.max_train_samples, spec.seed)
    unlabeled, info = _transfer_set(spec, beyond_cap, spec.text_column or default_text, data)
    if unlabeled:
        data = replace(data, unlabeled=unlabeled, split_info={**data.split_info, "unlabeled": info})
    log.info(f"data {spec.source}: {data.summary()}")
    return data
