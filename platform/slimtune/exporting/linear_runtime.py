"""Run a linear TF-IDF bundle with numpy and `re` only: no scikit-learn, torch or onnxruntime.

skl2onnx cannot convert scikit-learn's `char_wb` analyzer, so the linear alternative ships as
arrays (vocabularies, idf weights, coefficients) and this module computes its features exactly as
scikit-learn's TfidfVectorizer does (lowercase, `token_pattern` word n-grams, `char_wb` n-grams
padded with one space per word, sublinear tf, smooth idf, l2 norm per vectorizer), then the
logistic regression's decision function. `slimtune.alternatives.linear` fits and writes it; a
test checks that its test predictions equal scikit-learn's.

    BUNDLE/manifest.json   format "slimtune-linear/1", each vectorizer's settings, accuracy, size
    BUNDLE/vocab.json      {"word": [term, ...], "char": [...]}, in column order
    BUNDLE/weights.npz     idf_word, idf_char (float64), coef (features x labels, float32), intercept
    BUNDLE/labels.json     label names in output order
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

FORMAT = "slimtune-linear/1"
_WHITE_SPACES = re.compile(r"\s\s+")


def word_ngrams(text: str, pattern: re.Pattern, low: int, high: int) -> list[str]:
    """scikit-learn's `_word_ngrams` over `pattern.findall(text)` (no stop words)."""
    tokens = pattern.findall(text)
    if high == 1:
        return tokens
    out = list(tokens) if low == 1 else []
    for n in range(max(low, 2), min(high, len(tokens)) + 1):
        out.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return out


def char_wb_ngrams(text: str, low: int, high: int) -> list[str]:
    """scikit-learn's `_char_wb_ngrams`: n-grams inside words, each word padded with a space."""
    out = []
    for word in _WHITE_SPACES.sub(" ", text).split():
        word = f" {word} "
        length = len(word)
        for n in range(low, high + 1):
            offset = 0
            out.append(word[offset : offset + n])
            while offset + n < length:
                offset += 1
                out.append(word[offset : offset + n])
            if offset == 0:  # a word shorter than n is counted once
                break
    return out


class _Vectorizer:
    """One TfidfVectorizer's transform: terms -> column, tf (sublinear or raw) x idf, l2 norm."""

    def __init__(self, settings: dict, vocab: list[str], idf: np.ndarray, offset: int):
        if settings.get("norm") != "l2" or settings.get("smooth_idf") is False or settings["analyzer"] not in (
                "word", "char_wb"):
            raise ValueError(f"linear bundle: only word and char_wb analyzers with l2 norm and smooth idf run here, "
                             f"not {settings}")  # the idf array is as fitted; the rest is computed below
        self.analyzer = settings["analyzer"]
        self.low, self.high = settings["ngram_range"]
        self.lowercase = settings["lowercase"]
        self.sublinear = settings["sublinear_tf"]
        self.pattern = re.compile(settings["token_pattern"]) if self.analyzer == "word" else None
        self.index = {term: offset + i for i, term in enumerate(vocab)}
        self.idf = dict(zip(range(offset, offset + len(vocab)), idf.tolist()))

    def features(self, text: str) -> dict[int, float]:
        if self.lowercase:
            text = text.lower()
        terms = (word_ngrams(text, self.pattern, self.low, self.high) if self.analyzer == "word"
                 else char_wb_ngrams(text, self.low, self.high))
        counts: dict[int, int] = {}
        for term in terms:
            column = self.index.get(term)
            if column is not None:
                counts[column] = counts.get(column, 0) + 1
        values = {c: (1.0 + math.log(n) if self.sublinear else float(n)) * self.idf[c] for c, n in counts.items()}
        norm = math.sqrt(sum(v * v for v in values.values()))
        return {c: v / norm for c, v in values.items()} if norm > 0 else values


class LinearBundle:
    """A loaded linear bundle with the interface of `runtime.Bundle`: labels, logits, predict,
    classify, evaluate. Every file is checked against SHA256SUMS before anything is loaded."""

    kind = "linear"

    def __init__(self, folder: str | Path, check: bool = True):
        from slimtune.exporting.runtime import verify

        self.folder = Path(folder)
        if check:
            verify(self.folder)
        self.manifest = json.loads((self.folder / "manifest.json").read_text())
        if self.manifest.get("format") != FORMAT:
            raise ValueError(f"{folder} is not a linear bundle (format {self.manifest.get('format')!r})")
        self.labels = json.loads((self.folder / "labels.json").read_text())
        vocab = json.loads((self.folder / "vocab.json").read_text(encoding="utf-8"))
        weights = np.load(self.folder / "weights.npz")
        self.coef = weights["coef"].astype(np.float64)  # features x labels; float64 as scikit-learn sums
        self.intercept = weights["intercept"].astype(np.float64)
        word, char = self.manifest["vectorizers"]
        self.vectorizers = [_Vectorizer(word, vocab["word"], weights["idf_word"], 0),
                            _Vectorizer(char, vocab["char"], weights["idf_char"], len(vocab["word"]))]
        self.model_file = self.folder / "weights.npz"

    def _logits_one(self, text: str) -> np.ndarray:
        columns, values = [], []
        for vectorizer in self.vectorizers:
            for c, v in vectorizer.features(text).items():
                columns.append(c)
                values.append(v)
        return np.asarray(values, dtype=np.float64) @ self.coef[columns] + self.intercept

    def logits(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        return np.stack([self._logits_one(t) for t in texts]) if texts else np.zeros((0, len(self.labels)))

    def classify(self, text: str) -> int:
        """One raw text in, one label index out: what a device runs per request."""
        return int(self._logits_one(text).argmax())

    def predict(self, texts: list[str]) -> list[dict]:
        from slimtune.exporting.runtime import predictions

        return predictions(self.logits(texts), self.labels)

    def evaluate(self, texts: list[str], labels: list[str], batch_size: int = 32) -> dict:
        from slimtune.exporting.runtime import score

        return score(self.logits(texts), self.labels, labels)
