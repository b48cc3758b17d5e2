"""Run a bundle with numpy, onnxruntime and tokenizers only: what a device needs, nothing more.

This module must never import torch, transformers, pandas or the rest of slimtune's training
stack (a test runs it with those imports blocked). `slimtune predict` and `slimtune eval` use it.
onnxruntime and tokenizers are imported when an ONNX bundle is loaded: a linear bundle
(`linear_runtime`) needs numpy alone. `load_bundle` opens either kind.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np


CHECKSUMS = "SHA256SUMS"
# Texts for parity checks and timing when no data is given: short and long, news and chat.
SAMPLE_TEXTS = [
    "The quarterly results beat expectations and the shares rose 4% in early trading.",
    "I can't believe the game went to overtime again!",
    "Rain is expected across the north tomorrow, with heavy showers by the evening.",
    "Thanks for coming out tonight, we couldn't have done it without you.",
    "ok",
    "Grain exports fell sharply after the new tariff took effect in March, officials said on Tuesday.",
    "Is this the right way to the station?",
    "A short story about a fox, a crow and a piece of cheese that nobody wanted to share.",
]


def pad_batch(ids: list[list[int]], pad_id: int) -> dict[str, np.ndarray]:
    """Token ids padded to the batch's longest, and their attention mask (the model's two inputs)."""
    longest = max(len(x) for x in ids)
    input_ids = np.full((len(ids), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), longest), dtype=np.int64)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)], mask[row, : len(seq)] = seq, 1
    return {"input_ids": input_ids, "attention_mask": mask}


class BundleError(ValueError):
    """A bundle that is not whole: a file changed, truncated, missing or not listed."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(folder: Path) -> Path:
    """SHA256SUMS over every file of the bundle, the manifest included (`sha256sum -c` reads it)."""
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != CHECKSUMS)
    path = folder / CHECKSUMS
    path.write_text("".join(f"{file_sha256(folder / name)}  {name}\n" for name in files))
    return path


def verify(folder: str | Path) -> int:
    """Check every file of a bundle against SHA256SUMS; the number of files checked, else
    BundleError naming the first file that differs. This catches corruption and truncation,
    not a deliberate forgery (whoever can change a file can change the list too)."""
    folder = Path(folder)
    listing = folder / CHECKSUMS
    if not listing.is_file():
        raise BundleError(f"{folder} has no {CHECKSUMS}: give a bundle written by `slimtune export`, whole")
    expected = {}
    for n, line in enumerate(listing.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or not name:
            raise BundleError(f"{CHECKSUMS} line {n} is damaged; export the bundle again")
        expected[name] = digest
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != CHECKSUMS}
    for name in sorted(set(expected) - present):
        raise BundleError(f"{name} is missing from {folder} (listed in {CHECKSUMS}); copy the whole bundle again")
    for name in sorted(present - set(expected)):
        raise BundleError(f"{name} in {folder} is not listed in {CHECKSUMS}: it was added or renamed; remove it or "
                          "export the bundle again")
    for name, digest in sorted(expected.items()):
        if file_sha256(folder / name) != digest:
            raise BundleError(f"{name} does not match {CHECKSUMS} in {folder} (changed or truncated); "
                              "copy or export the bundle again")
    return len(expected)


def load_bundle(folder: str | Path, int8: bool = False, threads: int | None = None, check: bool = True):
    """The bundle in `folder`, whichever kind its manifest names: an ONNX `Bundle` or a `LinearBundle`
    (which has no int8 model and no threads to set: it runs in numpy)."""
    manifest_path = Path(folder) / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{folder} has no manifest.json: give a folder written by `slimtune export`")
    from slimtune.exporting.linear_runtime import FORMAT, LinearBundle

    if json.loads(manifest_path.read_text()).get("format") == FORMAT:
        return LinearBundle(folder, check=check)
    return Bundle(folder, int8=int8, threads=threads, check=check)


def predictions(logits: np.ndarray, labels: list[str]) -> list[dict]:
    """One dict per row of logits: the label and every label's probability (softmax)."""
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    probs = exp / exp.sum(-1, keepdims=True)
    return [{"label": labels[int(p.argmax())], "probabilities": {l: round(float(x), 6) for l, x in zip(labels, p)}}
            for p in probs]


def score(logits: np.ndarray, names: list[str], labels: list[str]) -> dict:
    """accuracy, macro-F1 and the confusion matrix of string `labels` against the logits' argmax."""
    index = {l: i for i, l in enumerate(names)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise ValueError(f"labels not in this bundle: {', '.join(unknown[:5])}")
    truth = np.array([index[l] for l in labels])
    pred = logits.argmax(-1)
    k = len(names)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (truth, pred), 1)
    tp = np.diag(confusion).astype(float)
    denom = confusion.sum(0) + confusion.sum(1)
    present = denom > 0
    f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=present)
    return {"accuracy": float(tp.sum() / len(truth)), "f1_macro": float(f1[present].mean()),
            "n": int(len(truth)), "confusion": confusion.tolist()}


class Bundle:
    """A loaded bundle: tokenizer, labels, and an ONNX Runtime session (fp32, int8, or the int8
    model in ORT format). Every file is checked against SHA256SUMS before anything is loaded."""

    kind = "onnx"

    def __init__(self, folder: str | Path, int8: bool = False, threads: int | None = None, ort_format: bool = False,
                 check: bool = True):
        self.folder = Path(folder)
        manifest_path = self.folder / "manifest.json"
        if not manifest_path.exists():
            raise FileNotFoundError(f"{folder} has no manifest.json: give a folder written by `slimtune export`")
        if check:
            verify(self.folder)
        self.manifest = json.loads(manifest_path.read_text())
        self.labels = json.loads((self.folder / "labels.json").read_text())
        from tokenizers import Tokenizer

        self.max_length = int(self.manifest.get("max_length", 128))
        self.truncation = self.manifest.get("truncation", "head")  # how training cut long texts
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.no_padding()  # we pad per batch ourselves, to the batch's longest text
        self.pad_id = int(self.manifest.get("pad_token_id", 0))
        name = "model.int8.onnx" if int8 and (self.folder / "model.int8.onnx").exists() else "model.onnx"
        if ort_format:
            name = "model.int8.ort"
            if not (self.folder / name).exists():
                raise FileNotFoundError(f"{folder} has no {name}: export it again with int8 on")
        self.model_file = self.folder / name
        self.session = make_session(self.model_file, threads)

    def encode(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Token ids padded to the longest text of the batch (as in training)."""
        return pad_batch(self._ids(list(texts)), self.pad_id)

    def _ids(self, texts: list[str]) -> list[list[int]]:
        if self.truncation == "head":
            if len(texts) == 1:  # one request: no batch machinery
                return [self.tokenizer.encode(texts[0]).ids]
            return [e.ids for e in self.tokenizer.encode_batch(texts)]
        from slimtune.data.truncation import encode_ids  # the function training used

        return encode_ids(self.tokenizer, texts, self.max_length, self.truncation)

    def logits(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        out = []
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding per batch
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            out.append((idx, self.session.run(["logits"], self.encode([texts[i] for i in idx]))[0]))
        result = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for idx, logits in out:
            result[idx] = logits
        return result

    def classify(self, text: str) -> int:
        """One raw text in, one label index out (tokenizer included): what a device runs per request."""
        ids = np.asarray(self._ids([text]), dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        return int(self.session.run(["logits"], feed)[0][0].argmax())

    def predict(self, texts: list[str]) -> list[dict]:
        return predictions(self.logits(texts), self.labels)

    def evaluate(self, texts: list[str], labels: list[str], batch_size: int = 32) -> dict:
        """accuracy and macro-F1 of string labels."""
        return score(self.logits(texts, batch_size), self.labels, labels)


def make_session(path: str | Path, threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def read_labelled_file(path: str, text_column: str = "text", label_column: str = "label") -> tuple[list[str], list[str]]:
    """A CSV, TSV, JSON (records) or JSONL file with the standard library: no pandas on a device."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with p.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ","))
    elif suffix == ".jsonl":
        rows = [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    elif suffix == ".json":
        rows = json.loads(p.read_text(encoding="utf-8"))
    else:
        raise ValueError(f"{path}: without pandas, eval reads .csv, .tsv, .json or .jsonl files")
    if not rows or text_column not in rows[0] or label_column not in rows[0]:
        raise ValueError(f"{path}: needs columns '{text_column}' and '{label_column}'")
    return [str(r[text_column]) for r in rows], [str(r[label_column]) for r in rows]
