"""The first thing a practitioner fits: TF-IDF word and character n-grams + logistic regression.

Fitted with scikit-learn in seconds on the job's training rows, its regularisation picked on the
validation split, then written as a bundle of arrays that `exporting.linear_runtime` runs with
numpy alone (skl2onnx cannot convert `char_wb`). The shipped coefficients are float32; the
scikit-learn model is scored with those same rounded coefficients, so the bundle and scikit-learn
predict the same labels (a test checks it on a real test split).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slimtune import log
from slimtune.errors import SlimtuneError


@dataclass(frozen=True)
class LinearSpec:
    """The linear alternative's features and regularisation grid."""

    word_ngrams: tuple[int, ...] = (1, 2)
    """Word n-gram range (scikit-learn's default token pattern, lowercased)."""
    char_ngrams: tuple[int, ...] = (2, 5)
    """`char_wb` n-gram range: inside words, each padded with a space (robust to spelling and morphology)."""
    min_df: int = 2
    """A term must occur in at least this many training texts: one-off terms only add size."""
    max_features: int = 200_000
    """Most frequent terms kept per vectorizer: bounds the bundle's size on large corpora."""
    c_grid: tuple[float, ...] = (1.0, 4.0, 16.0, 64.0)
    """Inverse regularisation strengths tried; the one best on validation accuracy is kept."""

    def __post_init__(self):
        for name in ("word_ngrams", "char_ngrams"):
            r = getattr(self, name)
            if len(r) != 2 or not 1 <= r[0] <= r[1] <= 8:
                raise SlimtuneError(f"LinearSpec.{name}: give (low, high) with 1 <= low <= high <= 8, got {list(r)}")
        if self.min_df < 1 or self.max_features < 1 or not self.c_grid or min(self.c_grid) <= 0:
            raise SlimtuneError("LinearSpec: min_df and max_features must be >= 1 and c_grid positive numbers")


def _vectorizers(spec: LinearSpec):
    from sklearn.feature_extraction.text import TfidfVectorizer

    common = dict(lowercase=True, sublinear_tf=True, min_df=spec.min_df, max_features=spec.max_features,
                  dtype=np.float64)
    return (TfidfVectorizer(analyzer="word", ngram_range=tuple(spec.word_ngrams), **common),
            TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(spec.char_ngrams), **common))


def _features(vectorizers, texts: list[str], fit: bool = False):
    """Both vectorizers' columns side by side, as the coefficients expect them."""
    from scipy.sparse import hstack

    return hstack([v.fit_transform(texts) if fit else v.transform(texts) for v in vectorizers]).tocsr()


def fit_linear(texts: list[str], labels: np.ndarray, val_texts: list[str], val_labels: np.ndarray,
               num_labels: int, spec: LinearSpec = LinearSpec(), seed: int = 42):
    """Fit both vectorizers and one logistic regression per C of the grid, from the strongest
    regularisation up, each fit starting from the last one's weights (far cheaper than a cold fit
    per C on long texts); keep the best on validation. Returns (vectorizers, model,
    chosen C, validation accuracy per C)."""
    import copy

    from sklearn.linear_model import LogisticRegression

    vectorizers = _vectorizers(spec)
    try:
        train = _features(vectorizers, texts, fit=True)
    except ValueError:  # min_df left no term (a handful of texts): keep every term
        vectorizers = _vectorizers(dataclasses.replace(spec, min_df=1))
        train = _features(vectorizers, texts, fit=True)
    val = _features(vectorizers, val_texts)
    scores, best = {}, None
    # tol 1e-3: validation accuracy stops moving well before the default 1e-4 is reached
    model = LogisticRegression(max_iter=1000, tol=1e-3, warm_start=True, random_state=seed)
    for c in sorted(spec.c_grid):
        model.set_params(C=c).fit(train, labels)
        scored = copy.deepcopy(model)
        _round_to_float32(scored)
        scores[c] = float((scored.predict(val) == val_labels).mean())
        if best is None or scores[c] > scores[best[0]]:
            best = (c, scored)
    return vectorizers, best[1], best[0], scores


def _round_to_float32(model) -> None:
    """The bundle ships float32 coefficients: score scikit-learn's model with the same ones."""
    model.coef_ = model.coef_.astype(np.float32).astype(np.float64)
    model.intercept_ = model.intercept_.astype(np.float32).astype(np.float64)


def _coef_by_label(model, num_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """(features x labels, labels) in label-id order. A binary model's one row becomes logits
    [0, d] (softmax of which is scikit-learn's sigmoid); a label absent from training never wins."""
    classes = [int(c) for c in model.classes_]
    features = model.coef_.shape[1]
    coef = np.zeros((features, num_labels), dtype=np.float32)
    intercept = np.full(num_labels, -1e9 if len(classes) < num_labels else 0.0, dtype=np.float32)
    if len(classes) == 2 and model.coef_.shape[0] == 1:
        coef[:, classes[1]] = model.coef_[0]
        intercept[classes[0]], intercept[classes[1]] = 0.0, model.intercept_[0]
    else:
        for row, c in enumerate(classes):
            coef[:, c], intercept[c] = model.coef_[row], model.intercept_[row]
    return coef, intercept


def _settings(vectorizer) -> dict:
    return {"analyzer": vectorizer.analyzer, "ngram_range": list(vectorizer.ngram_range),
            "lowercase": vectorizer.lowercase, "sublinear_tf": vectorizer.sublinear_tf,
            "token_pattern": vectorizer.token_pattern, "norm": vectorizer.norm, "smooth_idf": vectorizer.smooth_idf}


def write_linear_bundle(out: Path, vectorizers, model, label_names: list[str], extra: dict,
                        test: tuple[list[str], list[str]] | None = None) -> dict:
    """The bundle folder (atomically: a temporary folder renamed at the end), SHA256SUMS last;
    `test` (texts, label names): scored by the bundle itself, into its manifest."""
    from slimtune.version import __version__
    from slimtune.exporting.linear_runtime import FORMAT, LinearBundle
    from slimtune.exporting.runtime import write_checksums

    out.parent.mkdir(parents=True, exist_ok=True)
    coef, intercept = _coef_by_label(model, len(label_names))
    vocab = {}
    for key, v in zip(("word", "char"), vectorizers):
        terms = [""] * len(v.vocabulary_)
        for term, column in v.vocabulary_.items():
            terms[column] = term
        vocab[key] = terms
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        tmp = Path(tmp)
        (tmp / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        np.savez(tmp / "weights.npz", idf_word=vectorizers[0].idf_, idf_char=vectorizers[1].idf_,
                 coef=coef, intercept=intercept)
        (tmp / "labels.json").write_text(json.dumps(label_names) + "\n")
        manifest = {"format": FORMAT, "kind": "linear", "labels": label_names,
                    "vectorizers": [_settings(v) for v in vectorizers],
                    "num_features": int(coef.shape[0]), "vocab_word": len(vocab["word"]),
                    "vocab_char": len(vocab["char"]), "slimtune_version": __version__, **extra}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        manifest["size_mb"] = sum(p.stat().st_size for p in tmp.iterdir()) / 1e6  # vocabulary included
        if test is not None:
            scores = LinearBundle(tmp, check=False).evaluate(*test)
            manifest.update({"accuracy": scores["accuracy"], "f1_macro": scores["f1_macro"],
                             "confusion": scores["confusion"]})
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        (tmp / "README.md").write_text(
            f"# Linear TF-IDF classifier (slimtune bundle)\n\nLabels: {', '.join(label_names)}. Word "
            f"{tuple(vectorizers[0].ngram_range)} and char_wb {tuple(vectorizers[1].ngram_range)} n-grams, "
            f"{coef.shape[0]:,} features, logistic regression (C={extra.get('C')}).\n"
            "Runs with numpy alone: `slimtune predict --bundle . \"some text\"`.\n")
        write_checksums(tmp)
        if out.exists():
            import shutil

            shutil.rmtree(out)
        tmp.rename(out)
        tmp.mkdir()  # TemporaryDirectory's cleanup expects its folder
    return manifest


def run_linear(data, out: Path, spec: LinearSpec = LinearSpec(), seed: int = 42) -> dict | None:
    """Fit on `data.train`, pick C on validation, write the bundle to `out`, score the bundle
    itself on test. Returns the bundle's manifest (with validation and test figures), or None
    when scikit-learn cannot fit on these texts (said in one line)."""
    started = time.perf_counter()
    train_labels, val_labels = data.train["label"].to_numpy(), data.validation["label"].to_numpy()
    try:
        vectorizers, model, c, scores = fit_linear(list(data.train["text"]), train_labels,
                                                   list(data.validation["text"]), val_labels, data.num_labels, spec,
                                                   seed)
    except ValueError as exc:  # no word of two characters in any text, say: nothing to fit, the job goes on
        log.info(f"no linear TF-IDF model: scikit-learn cannot fit one on these texts ({str(exc)[:160]})")
        return None
    fit_seconds = time.perf_counter() - started
    names = list(data.label_names)
    manifest = write_linear_bundle(out, vectorizers, model, names, {
        "C": c, "validation_by_C": {str(k): v for k, v in scores.items()}, "accuracy_validation": scores[c],
        "train_rows": len(data.train), "fit_seconds": fit_seconds, "data_fingerprint": data.fingerprint},
        test=(list(data.test["text"]), [names[i] for i in data.test["label"]]))
    log.info(f"linear TF-IDF model: {manifest['num_features']:,} features, C={c}, validation {scores[c]:.4f}, "
             f"test {manifest['accuracy']:.4f}, {manifest['size_mb']:.1f} MB, fitted in {fit_seconds:.1f} s")
    return manifest
