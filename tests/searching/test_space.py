"""Spaces: every shipped space samples a valid Candidate for teachers of different depths and
replays; callables (lambdas, closures) work, pickle by value and fingerprint by behaviour;
constraints relative to the teacher decide what a trial may be."""

import pickle
from pathlib import Path

import optuna
import pytest

import slimtune
from slimtune.errors import SlimtuneError
from slimtune.searching.space import Candidate, Constraints, TeacherInfo, candidate_from, load_space

SPACES = sorted(Path(__file__).resolve().parents[2].joinpath("search_spaces").glob("*.py"))


def _teacher(layers: int, **figures) -> TeacherInfo:
    return TeacherInfo(family="bert", num_layers=layers, num_heads=12, ffn=1536, hidden_size=384, vocab_size=30522,
                       **figures)


def test_the_spaces_ship_and_the_root_exports_their_names():
    assert {p.name for p in SPACES} >= {"prune_ratios.py", "student_arch.py", "full.py", "per_layer.py"}
    for path in SPACES:
        assert path.read_text().startswith("# slimtune search ")  # each opens with its command
    assert slimtune.Constraints is Constraints and slimtune.TeacherInfo is TeacherInfo


@pytest.mark.parametrize("layers", [2, 6, 12])
@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.name)
def test_space_samples_within_the_teacher_and_replays(path, layers):
    space = load_space(str(path))
    teacher = _teacher(layers, latency_ms=30.0, accuracy=0.9)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        candidate = space.sample(trial, teacher)
        assert isinstance(candidate, Candidate)
        assert candidate.layers is None or 0 <= candidate.layers <= layers  # 0: the zero-layer student
        seen.add(candidate.layers)
        assert space.sample(optuna.trial.FixedTrial(trial.params), teacher) == candidate
    if layers == 12 and path.name in ("full.py", "prune_ratios.py"):
        assert max(seen) > 6  # the range follows the teacher, not a fixed 1-5


def test_one_argument_spaces_and_lambdas_work():
    old = load_space(lambda trial: {"layers": trial.suggest_int("layers", 1, 2)})
    trial = optuna.create_study().ask()
    assert old.sample(trial, _teacher(6)).layers in (1, 2)
    new = load_space(lambda trial, teacher: {"layers": teacher.num_layers - 1})
    assert new.sample(optuna.create_study().ask(), _teacher(6)).layers == 5


def test_a_range_the_teacher_cannot_take_names_the_knob():
    space = load_space(lambda trial: {"layers": 5})
    with pytest.raises(SlimtuneError, match="layers=5 but the teacher has 4 layers"):
        space.sample(optuna.create_study().ask(), _teacher(4))


def test_per_layer_ratios():
    c = candidate_from({"layers": 2, "heads": [0.5, 0.25], "ffn": 0.5})
    assert c.heads == (0.5, 0.25) and c.as_dict()["heads"] == [0.5, 0.25]
    with pytest.raises(SlimtuneError, match="lists 3 ratios for 2 kept layers"):
        candidate_from({"layers": 2, "heads": [0.5, 0.25, 0.0]})
    with pytest.raises(SlimtuneError, match="knob ffn"):
        candidate_from({"ffn": [0.5, 1.5]})
    with pytest.raises(SlimtuneError, match="lists 2 ratios for 6 kept layers"):
        candidate_from({"heads": [0.5, 0.5]}).check_against(_teacher(6))


def test_relative_constraints_follow_the_teacher():
    teacher = {"accuracy": 0.70, "latency_ms": 30.0}
    c = Constraints(min_accuracy_ratio=0.95, min_speedup=3.0, max_size_mb=20)
    assert c.failures({"accuracy": 0.67, "latency_ms": 9.0, "size_mb": 10}, teacher) == []
    assert c.failures({"accuracy": 0.66, "latency_ms": 11.0, "size_mb": 25}, teacher) == [
        "min_accuracy_ratio", "min_speedup", "max_size_mb"]
    strong = {"accuracy": 0.95, "latency_ms": 30.0}
    assert c.failures({"accuracy": 0.67, "latency_ms": 9.0, "size_mb": 10}, strong) == ["min_accuracy_ratio"]


def test_an_absolute_floor_the_teacher_misses_is_refused():
    Constraints(min_accuracy=0.8).check_teacher({"accuracy": 0.9})
    with pytest.raises(SlimtuneError, match="min_accuracy=0.8 but the teacher itself reaches 0.7100"):
        Constraints(min_accuracy=0.8).check_teacher({"accuracy": 0.71})
    with pytest.raises(SlimtuneError, match="min_speedup"):
        Constraints(min_speedup=-1)


def test_spaces_pickle_by_value_and_fingerprint_by_behaviour():
    from ray import cloudpickle

    from slimtune.searching.driver import SpaceAdapter

    low = 2
    closure = lambda trial, teacher: {"layers": trial.suggest_int("layers", 1, min(low, teacher.num_layers))}  # noqa: E731
    adapter = SpaceAdapter(load_space(closure, Constraints(min_accuracy_ratio=0.9)), _teacher(6))
    again = pickle.loads(pickle.dumps(adapter))  # Tune saves its searcher with plain pickle
    assert again.space.constraints.min_accuracy_ratio == 0.9
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3)).ask()
    assert again(trial)["layers"] in (1, 2)
    assert b"suggest_int" in cloudpickle.dumps(closure)  # by value: the code travels

    teacher = _teacher(6)
    same = load_space(lambda trial, teacher: {"layers": trial.suggest_int("layers", 1, 2)})
    wider = load_space(lambda trial, teacher: {"layers": trial.suggest_int("layers", 1, 3)})
    assert load_space(closure).fingerprint(teacher) == same.fingerprint(teacher)
    assert same.fingerprint(teacher) != wider.fingerprint(teacher)


def test_bad_knobs_name_themselves(tmp_path):
    with pytest.raises(SlimtuneError, match="unknown knob 'head'"):
        candidate_from({"head": 0.5})
    with pytest.raises(SlimtuneError, match="knob ffn=1.5"):
        candidate_from({"ffn": 1.5})
    (tmp_path / "s.py").write_text("x = 1\n")
    with pytest.raises(SlimtuneError, match="must define space"):
        load_space(str(tmp_path / "s.py"))
    with pytest.raises(SlimtuneError, match="must return a dict"):
        load_space(lambda trial: [1]).sample(optuna.create_study().ask(), None)


def test_a_space_that_raises_is_one_line_and_may_wait_for_the_teacher_figures():
    from slimtune.searching.driver import check_space

    with pytest.raises(SlimtuneError, match="raised ZeroDivisionError"):
        load_space(lambda trial: {"layers": 1 // 0}).sample(optuna.create_study().ask(), None)
    needs = lambda trial, teacher: {"layers": 1 if teacher.accuracy > 0.5 else 2}  # noqa: E731
    check_space(needs, None, _teacher(6))  # figures not measured yet (a job's early check): deferred
    assert check_space(needs, None, _teacher(6, accuracy=0.9, latency_ms=20.0)).name.startswith("space function")
    broken = lambda trial, teacher: {"layers": teacher.accuracy + "x"}  # noqa: E731
    with pytest.raises(SlimtuneError, match="raised TypeError"):
        check_space(broken, None, _teacher(6, accuracy=0.9, latency_ms=20.0))


def test_full_space_offers_the_reference_then_minilm_as_a_second_base(tiny_model_dir):
    from slimtune.searching.driver import teacher_info

    space = load_space(str(SPACES[0].parent / "full.py"))
    wide = TeacherInfo(family="mpnet", num_layers=12, num_heads=12, ffn=3072, hidden_size=768, vocab_size=30527,
                       latency_ms=160.0, accuracy=0.95)
    reference = teacher_info(str(tiny_model_dir), reference=str(tiny_model_dir)).reference  # shape and path
    n = reference.num_layers

    def bases(teacher) -> dict[str, set]:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        seen: dict[str, set] = {}
        for _ in range(40):
            c = space.sample(study.ask(), teacher)
            seen.setdefault(c.base, set()).add((c.layers, c.heads, c.ffn, c.hidden))
        return seen

    narrow = bases(_teacher(6, latency_ms=30.0, accuracy=0.9))
    assert set(narrow) == {"teacher"}  # MiniLM itself: nothing smaller to start from
    assert set(bases(wide)) == {"teacher", "builtin:minilm-l6"}
    with_reference = bases(TeacherInfo(**{**wide.__dict__, "reference": reference}))
    assert set(with_reference) == {"teacher", reference.path}
    # the reference keeps at least half its layers, and heads and FFN lose at most half
    assert all(n // 2 <= layers <= n and heads <= 0.5 and ffn <= 0.5 and hidden == 0.0
               for layers, heads, ffn, hidden in with_reference[reference.path])
    # a wide teacher's own students keep its width: a width cut does not recover in a trial (full.py says why)
    assert all(hidden == 0.0 for *_, hidden in bases(wide)["teacher"] | with_reference["teacher"])


def test_a_zero_layer_student_refuses_the_knobs_that_need_layers():
    assert Candidate(layers=0, lr=5e-3, alpha=0.7, vocab="data").layers == 0
    for knobs in ({"heads": 0.5}, {"ffn": 0.25}, {"hidden": 0.5}, {"hidden_weight": 0.5}, {"attention_weight": 1.0},
                  {"heads": (0.5,)}, {"method": "learned", "target_speedup": 4.0}):
        name = next(iter(knobs))
        with pytest.raises(SlimtuneError, match=rf"^space: knob {name}=.* needs layers, but layers=0") as caught:
            candidate_from({"layers": 0, **knobs})
        assert "\n" not in str(caught.value)
    with pytest.raises(SlimtuneError, match="knob layers=-1"):
        Candidate(layers=-1)


def test_the_search_enqueues_one_zero_layer_student_where_the_space_allows_it(tmp_path):
    from slimtune.searching.driver import SearchSpec, make_searcher, zero_layer_point

    full = load_space(str(SPACES[0].parent / "full.py"))
    narrow = _teacher(6, latency_ms=30.0, accuracy=0.9)
    wide = TeacherInfo(family="mpnet", num_layers=12, num_heads=12, ffn=3072, hidden_size=768, vocab_size=30527,
                       latency_ms=160.0, accuracy=0.95)
    assert zero_layer_point(full, narrow) == {"layers": 0}
    assert zero_layer_point(full, wide) == {"base": "teacher", "layers": 0}  # full.py also offers MiniLM as a base
    for name in ("student_arch.py", "per_layer.py", "prune_ratios.py", "learned.py"):  # layers from 1
        assert zero_layer_point(load_space(str(SPACES[0].parent / name)), narrow) is None
    # what Tune asks first, through the searcher the search builds (the quickstart's 8 trials start with it)
    spec = SearchSpec(teacher="unused", data="unused.csv", space=str(SPACES[0].parent / "full.py"),
                      out=str(tmp_path), trials=8)
    searcher = make_searcher(spec, full, wide)
    searcher.set_search_properties(None, None, {})
    first = candidate_from({k: v for k, v in searcher.suggest("t1").items() if k in Candidate.__dataclass_fields__})
    assert first.layers == 0 and first.base == "teacher" and 3e-3 <= first.lr <= 1e-2
    assert first.heads == first.ffn == first.hidden == first.hidden_weight == 0.0
