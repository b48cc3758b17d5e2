"""Which winner a job hands over, and whether something a user could have without slimtune is
better: plain functions over measured rows, so every rule is tested on hand-made numbers.

A row is a dict with `name`, `kind`, `validation_accuracy`, `test_accuracy` and `latency_ms`
(from a raw text in to a label out, batch 1, tokenizer included, timed in turns in one process).

The choice looks at validation only; the verdict against the alternatives (`dominated_by`)
looks at test, as a user comparing finished models would.
"""

from __future__ import annotations

ACCURACY_TOLERANCE = 0.002
"""Test accuracies this close (0.2 points) count as equal when judging dominance."""
LATENCY_TOLERANCE = 0.05
"""Latencies within 5% count as equal: a margin for timing noise on a shared machine."""


def dominates(a: dict, b: dict) -> bool:
    """`a` is at least as accurate on test as `b` (within 0.2 points) and no slower (within 5%)."""
    if a["test_accuracy"] is None or b["test_accuracy"] is None:
        return False
    return (a["test_accuracy"] >= b["test_accuracy"] - ACCURACY_TOLERANCE
            and a["latency_ms"] <= b["latency_ms"] * (1 + LATENCY_TOLERANCE))


def dominance(winner_rows: list[dict], alternatives: list[dict]) -> list[dict]:
    """Every (alternative, winner bundle) pair where the alternative dominates: the winner's fp32
    and int8 bundles are each compared with each alternative bundle, fp32 and int8 alike."""
    return [{"alternative": a["name"], "winner": w["name"]}
            for w in winner_rows for a in alternatives if dominates(a, w)]


def faster_and_better(row: dict, alternatives: list[dict]) -> list[dict]:
    """Alternatives faster than `row` and more accurate on validation: the choice must avoid them."""
    acc = row["validation_accuracy"]
    return [a for a in alternatives if a["latency_ms"] < row["latency_ms"] and a["validation_accuracy"] is not None
            and a["validation_accuracy"] > acc]


def latency_budget(max_latency_ms: float | None, min_speedup: float | None,
                   teacher_model_ms: float | None) -> tuple[float | None, str, str]:
    """(budget, the row key it bounds, how to say it). `max_latency_ms` bounds the latency from text
    to label (`latency_ms`): what a device pays. `min_speedup` ("at least N x faster than my
    teacher") bounds the model's latency at the fixed shape (`latency_ms_model`, batch 1 x
    export.seq): the teacher's divided by N, the measure the search picks and steers by (from
    text, the tokenizer's share lowers every ratio on short texts). Neither: no budget, the
    accuracy ratio decides."""
    if max_latency_ms is not None:
        return max_latency_ms, "latency_ms", f"within {max_latency_ms:g} ms from text to label"
    if min_speedup is not None:
        if teacher_model_ms is None:
            raise ValueError("min_speedup: the teacher's fixed-shape latency is needed to turn it into a budget")
        budget = teacher_model_ms / min_speedup
        return budget, "latency_ms_model", f"at least {min_speedup:g}x faster than the teacher ({budget:.2f} ms at the fixed shape)"
    return None, "latency_ms", ""


def teacher_latency(alternatives: list[dict]) -> float | None:
    """The teacher's fp32 model latency at the fixed shape, from its row among the alternatives."""
    return next((a.get("latency_ms_model") for a in alternatives if a["kind"] == "teacher"), None)


def latency_of(row: dict, key: str) -> float:
    """`row[key]`; a row without a fixed-shape figure (the linear model has no ONNX graph) counts
    with its latency from text."""
    value = row.get(key)
    return row["latency_ms"] if value is None else value


def choose(rows: list[dict], teacher_accuracy: float, min_accuracy_ratio: float,
           max_latency_ms: float | None = None, alternatives: list[dict] = (),
           min_speedup: float | None = None) -> tuple[dict, str, bool]:
    """The winner row to hand over, why, and whether it holds against the alternatives.

    First, only winners at least as accurate on validation as every faster alternative may be
    chosen (when none is, all may, and the third value is False). Then, with a latency budget
    (`max_latency_ms`, else `min_speedup` over the teacher row among `alternatives`), the most
    accurate within it (the fastest when none fits) and the accuracy ratio is not used; without
    one, the fastest whose validation accuracy is at least `min_accuracy_ratio` of the teacher's,
    else the most accurate."""
    if not rows:
        raise ValueError("choose: no winner to choose from")
    fair = [r for r in rows if not faster_and_better(r, list(alternatives))]
    pool = fair or rows
    budget, key, within_budget = latency_budget(max_latency_ms, min_speedup, teacher_latency(list(alternatives)))
    if budget is not None:
        within = [r for r in pool if latency_of(r, key) <= budget]
        if within:
            chosen = max(within, key=lambda r: (r["validation_accuracy"], -latency_of(r, key)))
            why = f"the most accurate on validation {within_budget}"
        else:
            chosen = min(pool, key=lambda r: latency_of(r, key))
            why = f"the fastest: none runs {within_budget}"
    else:
        floor = min_accuracy_ratio * teacher_accuracy
        good = [r for r in pool if r["validation_accuracy"] >= floor]
        if good:
            chosen = min(good, key=lambda r: r["latency_ms"])
            why = f"the fastest with validation accuracy at least {min_accuracy_ratio:.0%} of the teacher's"
        else:
            chosen = max(pool, key=lambda r: r["validation_accuracy"])
            why = (f"the most accurate: none reached {min_accuracy_ratio:.0%} of the teacher's validation accuracy "
                   f"({floor:.4f})")
    if fair and len(fair) < len(rows):
        why += "; winners less accurate than a faster alternative were passed over"
    return chosen, why, bool(fair)


def meets_rule(row: dict, teacher_accuracy: float, min_accuracy_ratio: float,
               max_latency_ms: float | None = None, min_speedup: float | None = None,
               teacher_model_ms: float | None = None) -> bool:
    """Whether `row` meets the rule it was chosen by: within the budget when there is one, else at
    least the ratio of the teacher's validation accuracy."""
    budget, key, _ = latency_budget(max_latency_ms, min_speedup, teacher_model_ms)
    if budget is not None:
        return latency_of(row, key) <= budget
    return row["validation_accuracy"] >= min_accuracy_ratio * teacher_accuracy


def verdict(chosen: dict, alternatives: list[dict]) -> str | None:
    """One line for the job's last lines when an alternative is faster and more accurate on
    validation than the chosen winner (the fastest such alternative is named), else None."""
    beaten = faster_and_better(chosen, alternatives)
    if not beaten:
        return None
    a = min(beaten, key=lambda r: r["latency_ms"])
    return (f"{describe(a)} is more accurate on this data (validation {a['validation_accuracy']:.4f} against "
            f"{chosen['validation_accuracy']:.4f}) and {chosen['latency_ms'] / a['latency_ms']:.1f}x faster "
            f"({a['latency_ms']:.2f} against {chosen['latency_ms']:.2f} ms from text): see the report")


def describe(row: dict) -> str:
    """An alternative's name as a user reads it."""
    return {"linear": "a linear TF-IDF model", "teacher": "the teacher (fp32)", "teacher_int8": "the teacher in int8",
            "direct": "the small model fine-tuned directly", "direct_int8": "the small model fine-tuned directly, in int8",
            }.get(row["kind"], row["name"])
