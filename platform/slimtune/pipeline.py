"""`slimtune run JOB.yaml`: the whole job, stage by stage, each stage's outputs kept on disk.

    1 teacher       fine-tune (or take `teacher:` as given)       OUT/teacher/
                    and the `reference:` small model fine-tuned directly OUT/reference/
    2 alternatives  a linear TF-IDF model on the same rows        OUT/alternatives/linear/ (a bundle)
    3 search        Ray Tune + Optuna over the space              OUT/search/ (trials.csv, pareto.*)
    4 winners       a few trials distilled again, full budget     OUT/final/<name>/
    5 export        ONNX fp32 + int8 bundles, teacher, reference and winners
                                                                  OUT/teacher_bundle/, OUT/winners/<name>/
    6 compare       every bundle scored on validation and timed in turns in one process, fixed
                    shape and from text to label; the winner chosen against the alternatives
                                                                  OUT/compare.json
    7 report        OUT/report.html (self-contained) and OUT/summary.json

The winner is chosen after the comparison, on validation accuracy and latency from text (see
slimtune.choosing): a winner less accurate than a faster alternative is passed over, and when
every winner is, the job says so in its last lines.

The job file is checked whole before any work (slimtune.job); the data is loaded once and handed
to every stage. Under `--resume` a stage whose outputs exist is not run again; a half-finished
search continues where it stopped, and a search whose constraints changed recomputes its front
from the trials it has (so does one whose pareto.json predates its list of finished trials, when
no front member is within the winners' latency budget). summary.json keeps this run's stage
times (`seconds`) and, beside them, what each stage took over every run (`seconds_all_runs`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

from slimtune import log
from slimtune.errors import SlimtuneError
from slimtune.job import JobSpec, load_job
from slimtune.results import Result

__all__ = ["JobSpec", "Winner", "load_job", "run_job", "pick_winners", "choose_winner"]
LINEAR = "linear"
"""The linear alternative's name in compare.json and summary.json."""

STAGES = ("teacher", "alternatives", "search", "winners", "export", "compare", "report")


@dataclass
class Winner:
    """A trial distilled again with the full budget."""

    name: str
    trial_id: str
    picked_because: str
    search: dict
    """Its row in the search (knobs and search metrics)."""
    final: dict | None = None
    """Its metrics after the final distillation (validation `accuracy`, `test_accuracy`, `latency_ms`, ...)."""
    chosen: bool = False
    why: str = ""


def _bundle_dir(out: Path, name: str) -> Path:
    """Where a model's bundle goes: the teacher's and the reference's beside the winners', each
    winner's by name."""
    if name == LINEAR:
        return out / "alternatives" / name
    return out / f"{name}_bundle" if name in ("teacher", "reference") else out / "winners" / name


def _stage(n: int, text: str) -> None:
    log.info(f"stage {n}/{len(STAGES)} {STAGES[n - 1]}: {text}")


def _teacher_stage(job: JobSpec, data, resume: bool) -> Result:
    from slimtune.train.finetune import run_finetune

    if job.teacher:
        _stage(1, f"using the fine-tuned teacher {job.teacher}")
        metrics = Path(job.teacher) / "metrics.json"
        return Result(job.teacher, json.loads(metrics.read_text()) if metrics.exists() else {})
    folder = Path(job.finetune.out)
    if resume and (folder / "metrics.json").exists() and (folder / "model" / "config.json").exists():
        _stage(1, f"already finished in {folder}, skipped (--resume)")
        return Result(str(folder), json.loads((folder / "metrics.json").read_text()))
    _stage(1, f"fine-tuning {job.model}")
    return Result(str(folder), run_finetune(job.finetune, data))


def _reference_stage(job: JobSpec, data, teacher: Result) -> Result | None:
    """The small model fine-tuned directly: what the winners must beat. Kept across resumes."""
    from slimtune.train.finetune import run_finetune

    if job.reference is None:
        return None
    folder = Path(job.reference.out)
    if (folder / "metrics.json").exists() and (folder / "model" / "config.json").exists():
        log.info(f"reference {job.reference.model}: already fine-tuned in {folder}")
        return Result(str(folder), json.loads((folder / "metrics.json").read_text()))
    log.info(f"reference: fine-tuning {job.reference.model} directly, the same rows, epochs and length as the teacher")
    spec = job.reference
    if spec.max_length is None and teacher.metrics.get("max_length"):  # what the teacher read, not its own pick
        spec = replace(spec, max_length=teacher.metrics["max_length"])
    if spec.train.lr is not None and not job.teacher:  # with `teacher:` given, finetune.lr is the reference's alone
        spec = _own_lr(spec, teacher.path)
    return Result(str(folder), run_finetune(spec, data))


def _own_lr(reference, teacher_dir: str):
    """The reference with `finetune.lr` where it is as wide as the teacher, else with its own width's
    default: a rate set for a BERT-base-size teacher (5e-5..1e-4) under-trains MiniLM-L6, whose own
    is 2e-4, and the baseline the winners must beat would be weaker than what a user would fit."""
    from slimtune.models import load_config, resolve_model

    width = lambda name, key: load_config(resolve_model(name, key), key).hidden_size  # noqa: E731
    mine, teachers = width(reference.model, "job: reference"), width(teacher_dir, "job: model")
    if mine == teachers:
        return reference
    log.info(f"reference: learning rate by its own width {mine} (finetune.lr {reference.train.lr:g} is the "
             f"teacher's, for width {teachers})")
    return replace(reference, train=replace(reference.train, lr=None))


def _teach(job: JobSpec, data, linear: dict | None, teacher: Result) -> tuple[JobSpec, dict]:
    """(the job, what was decided): whether the linear model teaches beside the teacher, as
    `alternatives.teach` says; auto: when the two together beat the teacher alone on validation by
    `distillation.blend.TEACH_MARGIN`."""
    mode = job.alternatives.teach
    if linear is None or mode is False:
        return job, {"mode": mode, "on": False}
    folder = str(Path(job.out) / "alternatives" / "linear")
    decided = {"mode": mode, "on": True}
    if mode == "auto":
        from slimtune.distillation.blend import TEACH_MARGIN, best_weight, teaches, validation_scores

        scores = validation_scores(teacher.path, folder, data, job.search.max_length,  # read as the search reads them
                                   job.search.gpus_per_trial > 0)
        decided = {"mode": mode, "on": teaches(scores), "validation_accuracy": scores}
        best = best_weight(scores)
        log.info(f"the linear model {'teaches' if decided['on'] else 'does not teach'} beside the teacher "
                 f"(alternatives.teach: auto): on validation the teacher alone {scores[0.0]:.4f}, with the linear model "
                 f"{scores[best]:.4f} (weight {best:g}); {100 * TEACH_MARGIN:g} point better is the bar")
        if not decided["on"]:
            return job, decided
    if job.search.linear_teacher == folder:  # teach: true sets it when the job is read
        return job, decided
    return replace(job, search=replace(job.search, linear_teacher=folder)), decided


def _needs_finished(job: JobSpec, pareto: dict) -> bool:
    """Whether `pick_winners` would look past the front (no member within the winners' latency
    budget) and this pareto.json, written before it listed every finished trial, cannot tell it which."""
    from slimtune.choosing import latency_budget

    if "finished" in pareto:
        return False
    budget = latency_budget(job.winners.max_latency_ms, job.winners.min_speedup,
                            pareto["teacher"].get("latency_ms"))[0]
    return budget is not None and not any(r["latency_ms"] <= budget for r in pareto["front"])


def _search_stage(job: JobSpec, data, resume: bool):
    from slimtune.results import SearchResult
    from slimtune.searching.driver import run_search
    from slimtune.searching.space import load_space

    folder = Path(job.search.out)
    done = folder / "pareto.json"
    if resume and done.exists():
        pareto = json.loads(done.read_text())
        constraints = load_space(job.search.space, job.search.constraints).constraints.as_dict()
        if pareto["front"] and pareto.get("constraints") == constraints and not _needs_finished(job, pareto):
            _stage(3, f"already finished in {folder}, skipped (--resume)")
            return SearchResult(str(folder), pareto)
        log.info("the constraints changed, or left the front empty, or no front member is within the winners' budget "
                 "and the search predates pareto.json's finished list: recomputing the front from the finished trials")
    s = job.search
    _stage(3, f"{s.trials} trials of {Path(s.space).name}, {s.concurrency} at a time, {s.sampler} sampler")
    return run_search(replace(s, resume=resume), data)  # restores Tune's state if there is any


def _no_front(pareto: dict) -> SlimtuneError:
    emptied = ", ".join(f"{name} rules out {n}" for name, n in pareto.get("emptied_by", {}).items())
    return SlimtuneError(
        f"search: none of the {pareto['trials_finished']} finished trials meets the constraints "
        f"({emptied or 'no trial finished'}); see search/trials.csv, then loosen them (the space's CONSTRAINTS or "
        "search.constraints) and rerun with --resume: every finished trial is reused")


def _depth(row: dict) -> tuple:
    """The layers the trial's student kept (rows of older searches: the knob, None for all of its
    base's), then encoder FLOPs, then accuracy: depth first, as the search's anchor is ranked. At
    equal FLOPs (4 layers keeping a quarter of the heads and FFN, or 1 whole layer) the deeper one
    distilled better on test in both seeds of `python bench/final_gain.py --datasets tweets`."""
    layers = row.get("num_layers")
    if layers is None:  # not reported (a trial run before num_layers was; None once Tune's rows carry the column)
        layers = row.get("layers")
    return (math.inf if layers is None else layers, row.get("encoder_flops") or 0, row["accuracy"])


def pick_winners(pareto: dict, count: int, min_accuracy_ratio: float, max_latency_ms: float | None = None,
                 min_speedup: float | None = None) -> list[Winner]:
    """Trials to distil again with the full budget, at most `count`. With a latency budget
    (`max_latency_ms`, else the teacher's latency over `min_speedup`): the front member most
    accurate within it by the search's latency (the fixed shape, batch 1 x seq tokens: no bundle
    exists yet to time from text; against `max_latency_ms`, a budget from text, it overstates on
    texts shorter than seq, a conservative pick; `min_speedup` is judged at the fixed shape in the
    end too); then the deepest trial within it (most layers, then most encoder FLOPs, on the front
    or not; the search's anchor when it has one: a trial's 1-2 epochs on a sample rank a deep
    student below shallow ones that the full run lifts it above, `bench/final_gain.py`), or, when
    the most accurate is the deepest (rows that say their depth), that one alone; then the next
    most accurate within it, then the rest. When no trial within the budget met the search's
    constraints: the most accurate and the deepest finished trials within it, whatever their search
    accuracy; with none within it either, the fastest front member. Without a budget:
    the fastest front member whose search accuracy is within `min_accuracy_ratio` of the teacher's
    validation accuracy; the next faster one, just under that floor (the final run often lifts such
    a student over it); then the most accurate others."""
    from slimtune.choosing import latency_budget

    front = sorted(pareto["front"], key=lambda r: r["latency_ms"])
    if not front:
        raise _no_front({"trials_finished": 0, **pareto})
    budget = latency_budget(max_latency_ms, min_speedup, pareto["teacher"].get("latency_ms"))[0]
    if budget is not None:
        said = f"{budget:.3g} ms" + (f" ({min_speedup:g}x faster than the teacher)" if max_latency_ms is None else "")
        within = sorted((r for r in front if r["latency_ms"] <= budget), key=lambda r: -r["accuracy"])
        picked = [(r, f"the most accurate within {said} in the search" if i == 0 else
                   f"next most accurate within {said}") for i, r in enumerate(within)]
        # pareto.json of searches before "eligible" was written: the front is what there is
        deepest = max((r for r in pareto.get("eligible") or front if r["latency_ms"] <= budget),
                      key=_depth, default=None)
        same = deepest is not None and picked and str(deepest["trial_id"]) == str(picked[0][0]["trial_id"])
        if same and _depth(deepest)[:2] != (math.inf, 0):  # a row that says its layers or FLOPs
            # the most accurate is the deepest: it is distilled alone, as no second slot paid on 20news
            # seed 43 (README, "The job on 20news"): the next most accurate, another deep student, cost
            # 16 more minutes for 0.15 test points; the fastest, the zero-layer student, tied it on
            # validation, which flatters it there, was chosen and scored 2.5 points below it on test
            picked[0] = (picked[0][0], picked[0][1] + ", and the deepest")
            count = 1
        elif deepest is not None and picked and not same:
            picked = [picked[0], (deepest, f"the deepest within {said}")] + [
                p for p in picked[1:] if str(p[0]["trial_id"]) != str(deepest["trial_id"])]
        if not picked:
            # nothing within the budget met the search's constraints: a trial's 1-2 epochs on a sample
            # put fast students under the space's accuracy floor that the full run lifts (the five
            # computer newsgroups, seed 1: 0.76-0.79 against a floor of 0.79). Within the budget the final run
            # decides, and the job says whether its winner meets the rule; searches before "finished"
            # was written fall back to the fastest front member
            below = [r for r in pareto.get("finished") or [] if (r.get("latency_ms") or math.inf) <= budget]
            if below:
                best, deepest = max(below, key=lambda r: r["accuracy"]), max(below, key=_depth)
                picked = [(best, f"the most accurate within {said} in the search (below the search's constraints)")]
                if str(deepest["trial_id"]) != str(best["trial_id"]):
                    picked.append((deepest, f"the deepest within {said} (below the search's constraints)"))
        if not picked:
            picked = [(front[0], f"the fastest (none within {said} in the search)")]
    else:
        floor = min_accuracy_ratio * pareto["teacher"]["accuracy"]
        good = [r for r in front if r["accuracy"] >= floor]
        if good:
            picked = [(good[0], "fastest within the accuracy floor in the search")]
            at = front.index(good[0])
            if count > 1 and at > 0:
                picked.append((front[at - 1], "faster, just under the floor in the search"))
        else:
            picked = [(max(front, key=lambda r: r["accuracy"]), "most accurate (none met the floor in the search)")]
    taken = {str(r["trial_id"]) for r, _ in picked}
    for r in sorted(front, key=lambda r: -r["accuracy"]):
        if len(picked) < count and str(r["trial_id"]) not in taken:
            picked.append((r, "next most accurate on the front"))
    return [Winner(f"winner-{i + 1}", str(r["trial_id"]), why, r) for i, (r, why) in enumerate(picked[:count])]


def choose_winner(winners: list[Winner], teacher_accuracy: float, min_accuracy_ratio: float,
                  max_latency_ms: float | None = None, rows: dict | None = None, alternatives: list[dict] = (),
                  min_speedup: float | None = None) -> Winner:
    """After the final distillation: the winner to hand over, by `slimtune.choosing.choose` on
    validation accuracy and latency; `rows` (by winner name) carry the bundles' measured latency
    from text and validation accuracy, else the final distillation's figures are used. Validation,
    not test: the choice never looks at test."""
    from slimtune.choosing import choose

    def row(w: Winner) -> dict:
        return (rows or {}).get(w.name) or {"name": w.name, "kind": "winner", "validation_accuracy": w.final["accuracy"],
                                             "test_accuracy": w.final.get("test_accuracy"), "latency_ms": w.final["latency_ms"]}

    picked, why, _ = choose([row(w) for w in winners], teacher_accuracy, min_accuracy_ratio, max_latency_ms,
                            list(alternatives), min_speedup)
    chosen = next(w for w in winners if w.name == picked["name"])
    for w in winners:
        w.chosen = w is chosen
    chosen.why = why + " after the final distillation"
    return chosen


def _winners_stage(job: JobSpec, data, winners: list[Winner], out: Path) -> list[Winner]:
    from slimtune.searching.driver import build_shared
    from slimtune.searching.objective import run_candidate
    from slimtune.searching.space import candidate_of

    def finished(w: Winner) -> bool:  # and for the same trial: a resumed job may pick differently
        path = out / "final" / w.name / "metrics.json"
        return path.exists() and str(json.loads(path.read_text()).get("trial_id")) == w.trial_id

    todo = [w for w in winners if not finished(w)]
    _stage(4, f"distilling {len(winners)} winner(s) again for {job.winners.epochs} epochs"
              + (f" ({len(winners) - len(todo)} already done)" if len(todo) < len(winners) else ""))
    # every training row and transfer text of the job's data and no step cap: the full budget
    final = replace(job.search, out=str(out / "final"), max_train_samples=None, max_unlabeled_samples=None,
                    max_steps=None)
    shared = build_shared(final, data, measure_teacher=False)[0] if todo else None
    for w in winners:
        folder = out / "final" / w.name
        if w in todo:
            candidate = replace(candidate_of(w.search), epochs=job.winners.epochs)
            log.info(f"{w.name} (trial {w.trial_id}): " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                                             for k, v in candidate.as_dict().items() if v is not None)
                     + (f", vocab={final.vocab}" if candidate.vocab is None else ""))
            shape = None
            if candidate.method == "learned":  # the shape its gates found, distilled afresh, not gated again
                from slimtune.models.load import read_model_info

                trial_model = w.search.get("model_path")
                shape = read_model_info(trial_model).get("pruned") if trial_model else None
                if shape is None:
                    log.info(f"{w.name}: the trial's model is gone; its gates are trained again (half of "
                             "the winners' epochs, the rest distil the new shape)")
            metrics = run_candidate(candidate, shared, folder, log_every=20, shape=shape)
            metrics["candidate"] = candidate.as_dict()
            metrics["trial_id"] = w.trial_id
            (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        w.final = json.loads((folder / "metrics.json").read_text())
        log.info(f"{w.name}: validation {w.final['accuracy']:.4f}, test {w.final['test_accuracy']:.4f}")
    return winners


def _export_stage(job: JobSpec, data, teacher: str, winners: list[Winner], out: Path,
                  reference: Result | None = None, linear: dict | None = None) -> dict:
    from slimtune.exporting.bundle import run_export

    targets = {"teacher": teacher, **{w.name: str(out / "final" / w.name / "model") for w in winners}}
    if reference is not None:
        targets["reference"] = reference.path
    _stage(5, f"ONNX bundles of the teacher and {len(winners)} winner(s)")
    manifests = {}
    for name, model in targets.items():
        bundle = _bundle_dir(out, name)
        if name not in ("teacher", "reference") and _older(bundle / "manifest.json", out / "final" / name / "metrics.json"):
            import shutil  # a resumed job picked another trial for this winner: its bundle is stale

            log.info(f"{name} was distilled again since its bundle was written: exporting it again")
            shutil.rmtree(bundle)
        if not (bundle / "manifest.json").exists():  # bundles are written atomically: present means whole
            log.info(f"exporting {name} to {bundle}")
            # the teacher and the reference were scored on test by their fine-tuning; the winners'
            # bundles, what a user deploys, are scored by the bundles themselves
            tested = _stage_tested(model, data) if name in ("teacher", "reference") else None
            run_export(replace(job.export, model=model, out=str(bundle)), data, tested)
        manifests[name] = json.loads((bundle / "manifest.json").read_text())
    if linear is not None:
        manifests[LINEAR] = linear
    return manifests


def _stage_tested(model: str, data) -> dict | None:
    """The test metrics the fine-tuning of `model` measured, when of this data at the length and
    cut the model reads (what its bundle would be scored on)."""
    from slimtune.models import read_model_info, resolve_model
    from slimtune.results import stage_test_metrics

    resolved = resolve_model(model)  # a stage's folder or its model/
    info = read_model_info(resolved)
    return stage_test_metrics(resolved, data.fingerprint, int(info.get("max_length", 128)), info.get("truncation", "head"))


def _alternatives_stage(job: JobSpec, data, out: Path) -> dict | None:
    """The linear TF-IDF model fitted on the job's training rows: seconds of work, kept across
    resumes while the data is the same."""
    from slimtune.alternatives.linear import run_linear

    folder = _bundle_dir(out, LINEAR)
    if not job.alternatives.linear:
        _stage(2, "no linear model (alternatives.linear: false)")
        return None
    manifest = folder / "manifest.json"
    if manifest.exists() and json.loads(manifest.read_text()).get("data_fingerprint") == data.fingerprint:
        _stage(2, f"linear TF-IDF model already fitted in {folder}")
        return json.loads(manifest.read_text())
    _stage(2, f"a linear TF-IDF model (word + char n-grams, logistic regression) on {len(data.train):,} rows")
    return run_linear(data, folder, seed=job.data.seed)


def _older(path: Path, than: Path) -> bool:
    """`path` exists and was written before `than` (which exists): it reflects an older state."""
    return path.exists() and than.exists() and path.stat().st_mtime < than.stat().st_mtime


def _bundle_keys(out: Path, manifests: dict):
    """(key, folder, precision) of every bundle to compare: NAME/fp32 and NAME/int8 where the
    model file is there, and the linear bundle as `linear` (precision None: no ONNX model)."""
    for name in manifests:
        folder = _bundle_dir(out, name)
        if name == LINEAR:
            yield name, folder, None
            continue
        for kind, file in (("fp32", "model.onnx"), ("int8", "model.int8.onnx")):
            if (folder / file).exists():
                yield f"{name}/{kind}", folder, kind


def _still_fresh(path: Path, out: Path, manifests: dict) -> bool:
    """compare.json measured these very bundles: the same ones (a linear model switched on or off
    changes the set), none written since, and by this version (latency from text is there)."""
    rows = json.loads(path.read_text()).get("rows", {})
    expected = {key for key, _, _ in _bundle_keys(out, manifests)}
    return (set(rows) == expected and all("latency_ms_text" in r for r in rows.values())
            and not any(_older(path, _bundle_dir(out, n) / "manifest.json") for n in manifests))


def _latency_texts(data, n: int) -> list[str]:
    """Real test texts, a seeded sample: the same for every bundle."""
    import numpy as np

    texts = list(data.test["text"])
    order = np.random.default_rng(0).permutation(len(texts))[:n]
    return [texts[i] for i in order]


def _compare_stage(job: JobSpec, data, manifests: dict, out: Path, resume: bool) -> dict:
    """Every bundle scored on validation by the bundle itself and timed in turns in one process:
    the fixed-shape model (batch 1 x seq tokens) and from text to label on real test texts."""
    from slimtune.exporting.benchmark import interleaved_latency, text_latency
    from slimtune.exporting.runtime import load_bundle

    e = job.export
    path = out / "compare.json"
    if resume and path.exists() and _still_fresh(path, out, manifests):
        _stage(6, "already measured, skipped (--resume)")
        return json.loads(path.read_text())
    _stage(6, f"scoring every bundle on validation and timing it interleaved, {e.rounds} rounds, "
              f"{e.threads or 'all'} thread(s), fixed shape and from text")
    models, loaded = {}, {}
    for key, folder, kind in _bundle_keys(out, manifests):
        if kind is not None:  # an ONNX model to time at the fixed shape too
            models[key] = folder / ("model.onnx" if kind == "fp32" else "model.int8.onnx")
        loaded[key] = load_bundle(folder, int8=kind == "int8", threads=e.threads, check=False)
    latency = interleaved_latency(models, seq=e.seq, threads=e.threads, rounds=e.rounds)
    from_text = text_latency(loaded, _latency_texts(data, job.alternatives.latency_texts), rounds=e.rounds)
    val_texts = list(data.validation["text"])
    val_labels = [data.label_names[i] for i in data.validation["label"]]
    base = latency["teacher/fp32"]
    teacher_acc = manifests["teacher"]["accuracy_fp32"]
    rows = {}
    for key, bundle in loaded.items():
        name, _, kind = key.partition("/")
        m = manifests[name]
        acc = m.get("accuracy") if name == LINEAR else m.get(f"accuracy_{kind}")
        ms = latency.get(key)
        rows[key] = {
            "model": name, "precision": kind or "numpy", "latency_ms_p50": ms,
            "speedup_vs_teacher_fp32": base / ms if ms else None, "latency_ms_text": from_text[key],
            "speedup_from_text_vs_teacher_fp32": from_text["teacher/fp32"] / from_text[key],
            "validation_accuracy": _validation_accuracy(_bundle_dir(out, name), kind, val_texts, val_labels),
            "test_accuracy": acc, "f1_macro": m.get("f1_macro") if name == LINEAR else m.get(f"f1_macro_{kind}"),
            "size_mb": m["size_mb"] if name == LINEAR else m[f"size_mb_{kind}"],
            "bundle_mb": _deploy_mb(_bundle_dir(out, name), bundle.model_file),
            "accuracy_vs_teacher_fp32": acc / teacher_acc if acc is not None else None}
    result = {"seq": e.seq, "threads": e.threads, "rounds": e.rounds, "latency_texts": job.alternatives.latency_texts,
              "rows": rows}
    path.write_text(json.dumps(result, indent=2) + "\n")
    for key, r in rows.items():
        fixed = f"{r['latency_ms_p50']:7.2f} ms {r['speedup_vs_teacher_fp32']:5.2f}x" if r["latency_ms_p50"] else " " * 17
        log.info(f"{key:>18}: {fixed}  from text {r['latency_ms_text']:7.2f} ms  val acc {r['validation_accuracy']:.4f}  "
                 f"test acc {r['test_accuracy']:.4f} ({100 * r['accuracy_vs_teacher_fp32']:.1f}% of the teacher)  "
                 f"{r['bundle_mb']:.1f} MB")
    return result


def _validation_accuracy(folder: Path, kind: str, texts: list[str], labels: list[str]) -> float:
    """A bundle's own validation accuracy; scoring is not a timing, so on every core, in
    length-sorted batches of 64."""
    from slimtune.exporting.runtime import load_bundle

    return load_bundle(folder, int8=kind == "int8", check=False).evaluate(texts, labels, batch_size=64)["accuracy"]


def _deploy_mb(folder: Path, model_file: Path) -> float:
    """What a device needs to run one precision of a bundle: its model file (or arrays), the
    tokenizer and the small files beside them; not the other precision's model."""
    skip = {"model.onnx", "model.int8.onnx", "model.int8.ort", "README.md", "SHA256SUMS"} - {model_file.name}
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and p.name not in skip) / 1e6


_KINDS = {"teacher/fp32": "teacher", "teacher/int8": "teacher_int8", "reference/fp32": "direct",
          "reference/int8": "direct_int8", LINEAR: "linear"}


def _judge_rows(compare: dict) -> tuple[dict, list[dict]]:
    """Rows for slimtune.choosing: each winner's fp32 and int8 bundle by key, and the alternatives."""
    rows, alternatives = {}, []
    for key, r in compare["rows"].items():
        row = {"name": key, "kind": _KINDS.get(key, "winner"), "validation_accuracy": r["validation_accuracy"],
               "test_accuracy": r["test_accuracy"], "f1_macro": r["f1_macro"], "latency_ms": r["latency_ms_text"],
               "latency_ms_model": r["latency_ms_p50"], "size_mb": r["bundle_mb"]}
        (alternatives.append(row) if key in _KINDS else rows.__setitem__(key, row))
    return rows, alternatives


def _publish(job: JobSpec, out: Path, names: list[str]) -> None:
    """Copy what a user takes away (report, summary, bundles) to the shared storage."""
    import shutil
    import tempfile

    from slimtune.storage import join, upload_dir

    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "results"
        staged.mkdir()
        for name in ("report.html", "summary.json", "compare.json"):
            shutil.copy(out / name, staged / name)
        for name in names:
            source = _bundle_dir(out, name)
            shutil.copytree(source, staged / source.relative_to(out))
        target = upload_dir(staged, join(job.storage, out.name, "results"))
    log.info(f"copied the report, summary and bundles to {target}")


class _StageTimes:
    """This run's stage times (summary.json `seconds`) and what each stage took over every run of the
    job (`seconds_all_runs`, `total_seconds_all_runs`): under --resume a finished stage skips in
    seconds, and without the runs before a resumed job would say it took that long. Written after
    each stage, and when one fails its time so far counts too (a process killed outright keeps what
    its last finished stage wrote)."""

    def __init__(self, out: Path, summary: dict, resume: bool):
        path = out / "summary.json"
        before = json.loads(path.read_text()) if resume and path.exists() else {}
        # a summary written before these keys existed holds one run's figures
        self.earlier = dict(before.get("seconds_all_runs") or before.get("seconds") or {})
        self.earlier_total = before.get("total_seconds_all_runs", before.get("total_seconds", sum(self.earlier.values())))
        self.out, self.summary, self.stage = out, summary, None
        self.started = self.t0 = time.perf_counter()
        summary["seconds_all_runs"] = dict(self.earlier)

    def begin(self, stage: str) -> None:
        self.stage, self.t0 = stage, time.perf_counter()

    def end(self, job_done: bool = False, **values) -> None:
        """The stage begun last is done: its results and its time; after the last one, the job's
        (`total_seconds` only then: a summary that has it is a finished job's)."""
        self.summary["stages"][self.stage] = values
        self._write(finished=True, job_done=job_done)

    def failed(self) -> None:
        """The stage begun last stopped: its time counts over all runs, not as this run's figure. A job
        that stopped before any stage finished leaves no summary (a plain rerun is not refused)."""
        if (self.out / "summary.json").exists():
            self._write(finished=False)

    def _write(self, finished: bool, job_done: bool = False) -> None:
        now, summary = time.perf_counter(), self.summary
        if job_done:
            summary["total_seconds"] = now - self.started
        if self.stage is not None:
            if finished:
                summary["seconds"][self.stage] = now - self.t0
            summary["seconds_all_runs"][self.stage] = self.earlier.get(self.stage, 0.0) + now - self.t0
        summary["total_seconds_all_runs"] = self.earlier_total + now - self.started
        _write_summary(self.out, summary)
        self.stage = None


def _write_summary(out: Path, summary: dict) -> None:
    from slimtune.storage import write_text_atomic

    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")


def _check_job_space(job: JobSpec) -> None:
    """A broken space, or one whose ranges the teacher cannot take, fails now, not after the fine-tune."""
    from slimtune.searching.driver import check_space, teacher_info

    figures = None
    saved = Path(job.search.out) / "teacher.json"
    if saved.exists():
        figures = json.loads(saved.read_text())
    check_space(job.search.space, job.search.constraints, teacher_info(job.teacher or job.model, figures))


def run_job(job: JobSpec, resume: bool = False) -> Result:
    from slimtune.data import load_data
    from slimtune.storage import ensure_writable

    out = Path(job.out)
    if (out / "summary.json").exists() and not resume:
        raise SlimtuneError(f"--out: {out} already holds a job; add --resume to continue it, or pick a new out folder")
    ensure_writable(out, "--out")
    _check_job_space(job)
    data = load_data(job.data)  # once: every stage gets this, each tokenizer encodes it once
    summary: dict = {"job": dataclasses.asdict(job), "stages": {}, "seconds": {},
                     # what the stages learn from: labelled rows, and the transfer set distillation adds
                     "data": {"train_rows": len(data.train), "unlabeled_rows": len(data.unlabeled),
                              "validation_rows": len(data.validation), "test_rows": len(data.test),
                              "truncation": data.truncation}}

    times = _StageTimes(out, summary, resume)
    try:
        return _run_stages(job, data, resume, times)
    except BaseException:  # Ctrl-C too: the stage's time so far is kept for the run that resumes it
        try:
            times.failed()
        except Exception as e:  # the error that stopped the job is the one to see
            log.info(f"could not record the stopped stage's time in {out / 'summary.json'}: {e}")
        raise


def _run_stages(job: JobSpec, data, resume: bool, times: _StageTimes) -> Result:
    from slimtune.report import write_report

    out, summary = Path(job.out), times.summary
    times.begin("teacher")
    teacher = _teacher_stage(job, data, resume)
    times.end(dir=teacher.path, **{k: teacher.metrics.get(k) for k in
                                   ("accuracy", "f1_macro", "num_parameters", "train_seconds", "train",
                                    "best_epoch", "stopped_early", "history", "max_length")})
    summary["data"]["max_length"] = teacher.metrics.get("max_length")
    summary["data"]["truncation"] = teacher.metrics.get("truncation") or data.truncation or "head"
    times.begin("reference")
    reference = _reference_stage(job, data, teacher)
    if reference is not None:
        times.end(dir=reference.path, model=job.reference.model, **{
            k: reference.metrics.get(k) for k in ("accuracy", "best_epoch", "history", "train_seconds")})
    times.begin("alternatives")
    linear = _alternatives_stage(job, data, out)
    if linear is None and job.alternatives.teach is True:
        raise SlimtuneError("alternatives.teach: no linear model was fitted on this data (the line above says why); "
                            "set alternatives.teach: false")
    job, teach = _teach(job, data, linear, teacher)
    summary["job"] = dataclasses.asdict(job)  # with the search's linear teacher when auto switched it on
    if linear is not None:
        times.end(teach=teach, linear={k: linear.get(k) for k in (
            "accuracy", "f1_macro", "accuracy_validation", "C", "num_features", "size_mb", "fit_seconds")})
    times.begin("search")
    search = _search_stage(job, data, resume)
    pareto = search.metrics
    times.end(dir=search.path, front_size=len(search.front), trials_finished=pareto["trials_finished"],
              trials_failed=pareto["trials_failed"], constraints=pareto.get("constraints"),
              emptied_by=pareto.get("emptied_by"))
    if not search.front:
        raise _no_front(pareto)
    times.begin("winners")
    w_spec = job.winners
    winners = _winners_stage(job, data, pick_winners(pareto, w_spec.count, w_spec.min_accuracy_ratio,
                                                     w_spec.max_latency_ms, w_spec.min_speedup), out)
    times.end(winners=[dataclasses.asdict(w) for w in winners])
    times.begin("export")
    manifests = _export_stage(job, data, teacher.path, winners, out, reference, linear)
    times.end(bundles={n: str(_bundle_dir(out, n)) for n in manifests})
    times.begin("compare")
    compare = _compare_stage(job, data, manifests, out, resume)
    judged = _judge(job, winners, compare, compare["rows"]["teacher/fp32"]["validation_accuracy"])
    chosen = judged["winner_name"]
    summary["alternatives"] = judged["alternatives"]
    summary["stages"]["winners"] = {"winners": [dataclasses.asdict(w) for w in winners], "chosen": chosen}
    times.end(**compare, chosen=chosen)
    times.begin("report")
    _stage(7, "writing report.html")
    summary["teacher"] = compare["rows"]["teacher/fp32"]
    summary["winner"] = {"name": chosen, "bundle": str(_bundle_dir(out, chosen)), **compare["rows"][f"{chosen}/fp32"],
                         "int8": compare["rows"].get(f"{chosen}/int8"), **judged["verdict"]}
    if reference is not None:
        summary["reference"] = {"model": job.reference.model, **compare["rows"]["reference/fp32"],
                                "int8": compare["rows"].get("reference/int8")}
    link = out / "winner"  # a stable name for the chosen bundle, whichever it is
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(Path("winners") / chosen, target_is_directory=True)
    write_report(out, summary, pareto, manifests)
    times.end(path=str(out / "report.html"), job_done=True)
    if job.storage:
        _publish(job, out, list(manifests))
    w = summary["winner"]
    spent = log.format_seconds(summary["total_seconds"])
    if times.earlier:
        spent += f" ({log.format_seconds(summary['total_seconds_all_runs'])} with the runs before)"
    log.info(f"job done in {spent}: {out / 'report.html'}")
    log.info(f"winner {chosen}: {w['latency_ms_text']:.2f} ms from text to label (fp32), validation "
             f"{w['validation_accuracy']:.4f}, test {w['test_accuracy']:.4f}; {w['speedup_vs_teacher_fp32']:.2f}x "
             f"faster than the teacher (fp32 model), {100 * w['accuracy_vs_teacher_fp32']:.1f}% of its test accuracy; "
             f"bundle {w['bundle']}")
    for line in w["notes"]:
        log.info(line)
    return Result(str(out), summary)


def _judge(job: JobSpec, winners: list[Winner], compare: dict, teacher_accuracy: float) -> dict:
    """Choose the winner against the alternatives and say what beats it (slimtune.choosing)."""
    from slimtune.choosing import describe, dominance, latency_budget, latency_of, meets_rule, teacher_latency, verdict

    rows, alternatives = _judge_rows(compare)
    fp32 = {w.name: rows[f"{w.name}/fp32"] | {"name": w.name} for w in winners}
    spec = job.winners
    chosen = choose_winner(winners, teacher_accuracy, spec.min_accuracy_ratio, spec.max_latency_ms, fp32, alternatives,
                           spec.min_speedup)
    log.info(f"chosen: {chosen.name}, {chosen.why}")
    mine = [rows[k] for k in (f"{chosen.name}/fp32", f"{chosen.name}/int8") if k in rows]
    pairs = dominance(mine, alternatives)
    notes = []
    teacher_ms = teacher_latency(alternatives)
    met = meets_rule(fp32[chosen.name], teacher_accuracy, spec.min_accuracy_ratio, spec.max_latency_ms,
                     spec.min_speedup, teacher_ms)
    if not met:  # say so, and what else there is, rather than hand over "the most accurate" quietly
        budget, key, within_budget = latency_budget(spec.max_latency_ms, spec.min_speedup, teacher_ms)
        rule = (f"runs {within_budget}" if budget is not None
                else f"reached {spec.min_accuracy_ratio:.0%} of the teacher's validation accuracy")
        # within the budget; under the ratio rule, short of the teacher itself (which meets it trivially)
        fits = [a for a in alternatives if (latency_of(a, key) <= budget if budget is not None else a["kind"] != "teacher")]
        best = max(fits, key=lambda a: a["validation_accuracy"] or 0, default=None)
        where = "within it" if budget is not None else "other than the teacher"
        notes.append(f"no winner {rule}" + (f"; the most accurate alternative {where} is {describe(best)} (validation "
                                           f"{best['validation_accuracy']:.4f}, {best['latency_ms']:.2f} ms from text)"
                                           if best else ""))
    said = verdict(fp32[chosen.name], alternatives)
    if said:
        notes.append(said)
    for name in sorted({p["alternative"] for p in pairs}):
        a = next(x for x in alternatives if x["name"] == name)
        notes.append(f"dominated: {describe(a)} is as accurate on test ({a['test_accuracy']:.4f}) and no slower "
                     f"({a['latency_ms']:.2f} ms from text) than " + " and ".join(
                         p["winner"] for p in pairs if p["alternative"] == name))
    return {"winner_name": chosen.name,
            "alternatives": [a | {"bundle": str(_bundle_dir(Path(job.out), a["name"].split("/")[0]))}
                             for a in alternatives],
            "verdict": {"dominated_by": sorted({p["alternative"] for p in pairs}), "dominance": pairs,
                        "rule_met": met, "holds_against_alternatives": said is None, "notes": notes}}
