"""The winner rule and the verdict against the alternatives, on hand-made rows."""

import pytest

from slimtune.choosing import choose, dominance, dominates, faster_and_better, verdict


def row(name, val, test, ms, kind="winner"):
    return {"name": name, "kind": kind, "validation_accuracy": val, "test_accuracy": test, "latency_ms": ms}


WINNERS = [row("w1/fp32", 0.90, 0.91, 4.0), row("w2/fp32", 0.93, 0.93, 9.0)]


def test_dominance_within_the_tolerances():
    w = row("w1/fp32", 0.90, 0.910, 4.0)
    assert dominates(row("linear", 0.9, 0.909, 4.19, "linear"), w)  # 0.1 points worse, 4.75% slower: a tie
    assert not dominates(row("linear", 0.9, 0.907, 1.0, "linear"), w)  # 0.3 points worse
    assert not dominates(row("linear", 0.9, 0.95, 4.3, "linear"), w)  # 7.5% slower
    alternatives = [row("linear", 0.9, 0.92, 0.5, "linear"), row("teacher/int8", 0.95, 0.95, 6.0, "teacher_int8")]
    mine = [row("w1/fp32", 0.90, 0.91, 4.0), row("w1/int8", 0.89, 0.90, 2.0)]
    assert dominance(mine, alternatives) == [{"alternative": "linear", "winner": "w1/fp32"},
                                             {"alternative": "linear", "winner": "w1/int8"}]


def test_the_ratio_rule_without_alternatives():
    chosen, why, fair = choose(WINNERS, teacher_accuracy=0.92, min_accuracy_ratio=0.97)
    assert chosen["name"] == "w1/fp32" and "fastest" in why and fair  # floor 0.8924
    chosen, why, _ = choose(WINNERS, teacher_accuracy=0.99, min_accuracy_ratio=0.97)
    assert chosen["name"] == "w2/fp32" and "none reached" in why


def test_a_budget_comes_before_the_ratio():
    # within 10 ms both fit: the most accurate, although the ratio rule would take the faster one
    assert choose(WINNERS, 0.92, 0.97, max_latency_ms=10)[0]["name"] == "w2/fp32"
    assert choose(WINNERS, 0.92, 0.97, max_latency_ms=5)[0]["name"] == "w1/fp32"
    chosen, why, _ = choose(WINNERS, 0.92, 0.97, max_latency_ms=1)
    assert chosen["name"] == "w1/fp32" and "none runs within" in why


def test_a_speedup_budget_is_the_teachers_fixed_shape_latency_over_it():
    """min_speedup: the most accurate winner at least N x faster than the teacher, both timed at the
    fixed shape (`latency_ms_model`, the search's measure), not from text; like max_latency_ms it
    comes before the ratio, which would take the faster w1."""
    winners = [dict(WINNERS[0], latency_ms_model=8.0), dict(WINNERS[1], latency_ms_model=18.0)]
    teacher = dict(row("teacher/fp32", 0.95, 0.95, 30.0, "teacher"), latency_ms_model=90.0)
    chosen, why, _ = choose(winners, 0.92, 0.97, alternatives=[teacher], min_speedup=5)  # 18 ms at the fixed shape
    assert chosen["name"] == "w2/fp32" and "at least 5x faster than the teacher" in why
    # from text w2 is 30 / 9 = 3.3x: a budget from text would have taken w1 at 5x
    assert choose(winners, 0.92, 0.97, alternatives=[teacher], min_speedup=6)[0]["name"] == "w1/fp32"  # 15 ms
    chosen, why, _ = choose(winners, 0.92, 0.97, alternatives=[teacher], min_speedup=20)  # 4.5 ms: none fits
    assert chosen["name"] == "w1/fp32" and "none runs at least 20x faster" in why
    with pytest.raises(ValueError, match="teacher's fixed-shape latency"):
        choose(winners, 0.92, 0.97, min_speedup=5)


def test_a_winner_beaten_by_a_faster_alternative_is_passed_over():
    linear = row("linear", 0.91, 0.92, 0.5, "linear")
    assert faster_and_better(WINNERS[0], [linear]) == [linear]
    chosen, why, fair = choose(WINNERS, 0.92, 0.97, alternatives=[linear])
    assert chosen["name"] == "w2/fp32" and fair and "passed over" in why
    assert verdict(chosen, [linear]) is None
    strong = row("linear", 0.95, 0.95, 0.5, "linear")
    chosen, _, fair = choose(WINNERS, 0.92, 0.97, alternatives=[strong])
    assert not fair and chosen["name"] == "w1/fp32"  # every winner loses: the rule still picks, and says so
    said = verdict(chosen, [strong])
    assert said.startswith("a linear TF-IDF model is more accurate on this data") and "8.0x faster" in said


def test_a_slower_alternative_does_not_block():
    teacher = row("teacher/fp32", 0.95, 0.95, 20.0, "teacher")
    assert choose(WINNERS, 0.92, 0.97, alternatives=[teacher])[2]
    with pytest.raises(ValueError):
        choose([], 0.9, 0.97)


def test_whether_the_chosen_winner_meets_its_rule():
    from slimtune.choosing import meets_rule

    assert meets_rule(WINNERS[0], 0.92, 0.97) and not meets_rule(WINNERS[0], 0.99, 0.97)
    assert meets_rule(WINNERS[1], 0.99, 0.97, max_latency_ms=9.0) and not meets_rule(WINNERS[1], 0.5, 0.97, 8.0)
    w2 = dict(WINNERS[1], latency_ms_model=18.0)
    assert meets_rule(w2, 0.99, 0.97, min_speedup=5, teacher_model_ms=90.0)
    assert not meets_rule(w2, 0.5, 0.97, min_speedup=6, teacher_model_ms=90.0)
    assert meets_rule(row("linear", 0.9, 0.9, 1.0, "linear"), 0.9, 0.97, min_speedup=6, teacher_model_ms=90.0)  # from text
