"""`slimtune run JOB.yaml`: the whole job, stage by stage, each stage's outputs kept on disk.

    1 teacher   fine-tune (or take `teacher:` as given)           OUT/teacher/
                and the `reference:` small model fine-tuned directly OUT/reference/
    2 search    Ray Tune + Optuna over the space                  OUT/search/ (trials.csv, pareto.*)
    3 winners   a few front members distilled again, full budget; one chosen   OUT/final/<name>/
    4 export    ONNX fp32 + int8 bundles, teacher and winners     OUT/teacher_bundle/, OUT/winners/<name>/
    5 compare   teacher against winners, timed interleaved in one process   OUT/compare.json
    6 report    OUT/report.html (self-contained) and OUT/summary.json

The job file is checked whole before any work (slimtune.job); the data is loaded once and handed
to every stage. Under `--resume` a stage whose outputs exist is not run again; a half-finished
search continues where it stopped, and a search whose constraints changed recomputes its front
from the trials it has.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

from slimtune import log
from slimtune.errors import SlimtuneError
from slimtune.job import JobSpec, load_job
from slimtune.results import Result

__all__ = ["JobSpec", "Winner", "load_job", "run_job", "pick_winners", "choose_winner"]

STAGES = ("teacher", "search", "winners", "export", "compare", "report")


@dataclass
class Winner:
    """A front member distilled again with the full budget."""

    name: str
    trial_id: str
    picked_because: str
    search: dict
    """Its row on the search's front (knobs and search metrics)."""
    final: dict | None = None
    """Its metrics after the final distillation (validation `accuracy`, `test_accuracy`, `latency_ms`, ...)."""
    chosen: bool = False
    why: str = ""


def _bundle_dir(out: Path, name: str) -> Path:
    """Where a model's bundle goes: the teacher's and the reference's beside the winners', each
    winner's by name."""
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


def _reference_stage(job: JobSpec, data) -> Result | None:
    """The small model fine-tuned directly: what the winners must beat. Kept across resumes."""
    from slimtune.train.finetune import run_finetune

    if job.reference is None:
        return None
    folder = Path(job.reference.out)
    if (folder / "metrics.json").exists() and (folder / "model" / "config.json").exists():
        log.info(f"reference {job.reference.model}: already fine-tuned in {folder}")
        return Result(str(folder), json.loads((folder / "metrics.json").read_text()))
    log.info(f"reference: fine-tuning {job.reference.model} directly, the same rows and epochs as the teacher")
    return Result(str(folder), run_finetune(job.reference, data))


def _search_stage(job: JobSpec, data, resume: bool):
    from slimtune.results import SearchResult
    from slimtune.searching.driver import run_search
    from slimtune.searching.space import load_space

    folder = Path(job.search.out)
    done = folder / "pareto.json"
    if resume and done.exists():
        pareto = json.loads(done.read_text())
        constraints = load_space(job.search.space, job.search.constraints).constraints.as_dict()
        if pareto["front"] and pareto.get("constraints") == constraints:
            _stage(2, f"already finished in {folder}, skipped (--resume)")
            return SearchResult(str(folder), pareto)
        log.info("the constraints changed or left the front empty: recomputing the front from the finished trials")
    s = job.search
    _stage(2, f"{s.trials} trials of {Path(s.space).name}, {s.concurrency} at a time, {s.sampler} sampler")
    return run_search(replace(s, resume=resume), data)  # restores Tune's state if there is any


def _no_front(pareto: dict) -> SlimtuneError:
    emptied = ", ".join(f"{name} rules out {n}" for name, n in pareto.get("emptied_by", {}).items())
    return SlimtuneError(
        f"search: none of the {pareto['trials_finished']} finished trials meets the constraints "
        f"({emptied or 'no trial finished'}); see search/trials.csv, then loosen them (the space's CONSTRAINTS or "
        "search.constraints) and rerun with --resume: every finished trial is reused")


def pick_winners(pareto: dict, count: int, min_accuracy_ratio: float) -> list[Winner]:
    """Front members to distil again with the full budget, `count` in all: the fastest one whose
    search accuracy is within `min_accuracy_ratio` of the teacher's validation accuracy; the next
    faster one, just under that floor (the search trains on a small budget, the final run often
    lifts such a student over it); then the most accurate others."""
    front = sorted(pareto["front"], key=lambda r: r["latency_ms"])
    if not front:
        raise _no_front({"trials_finished": 0, **pareto})
    floor = min_accuracy_ratio * pareto["teacher"]["accuracy"]
    good = [r for r in front if r["accuracy"] >= floor]
    if good:
        picked = [(good[0], "fastest within the accuracy floor in the search")]
        at = front.index(good[0])
        if count > 1 and at > 0:
            picked.append((front[at - 1], "faster, just under the floor in the search"))
    else:
        picked = [(max(front, key=lambda r: r["accuracy"]), "most accurate (none met the floor in the search)")]
    taken = {id(r) for r, _ in picked}
    for r in sorted(front, key=lambda r: -r["accuracy"]):
        if len(picked) < count and id(r) not in taken:
            picked.append((r, "next most accurate on the front"))
    return [Winner(f"winner-{i + 1}", str(r["trial_id"]), why, r) for i, (r, why) in enumerate(picked[:count])]


def choose_winner(winners: list[Winner], teacher_accuracy: float, min_accuracy_ratio: float) -> Winner:
    """After the final distillation: the fastest winner whose validation accuracy is within the
    floor, else the most accurate. Validation, not test: the choice never looks at test."""
    floor = min_accuracy_ratio * teacher_accuracy
    good = [w for w in winners if w.final["accuracy"] >= floor]
    chosen = (min(good, key=lambda w: w.final["latency_ms"]) if good
              else max(winners, key=lambda w: w.final["accuracy"]))
    for w in winners:
        w.chosen = w is chosen
    chosen.why = (f"the fastest with validation accuracy at least {min_accuracy_ratio:.0%} of the teacher's "
                  "after the final distillation" if good else "the most accurate after the final distillation "
                  f"(none reached {min_accuracy_ratio:.0%} of the teacher's validation accuracy)")
    return chosen


def _winners_stage(job: JobSpec, data, winners: list[Winner], out: Path) -> list[Winner]:
    from slimtune.searching.driver import build_shared
    from slimtune.searching.objective import run_candidate
    from slimtune.searching.space import KNOBS, candidate_from

    def finished(w: Winner) -> bool:  # and for the same trial: a resumed job may pick differently
        path = out / "final" / w.name / "metrics.json"
        return path.exists() and str(json.loads(path.read_text()).get("trial_id")) == w.trial_id

    todo = [w for w in winners if not finished(w)]
    _stage(3, f"distilling {len(winners)} winner(s) again for {job.winners.epochs} epochs"
              + (f" ({len(winners) - len(todo)} already done)" if len(todo) < len(winners) else ""))
    # every training row of the job's data and no step cap: the full budget
    final = replace(job.search, out=str(out / "final"), max_train_samples=None, max_steps=None)
    shared = build_shared(final, data, measure_teacher=False)[0] if todo else None
    for w in winners:
        folder = out / "final" / w.name
        if w in todo:
            knobs = {k: w.search.get(k) for k in KNOBS if w.search.get(k) is not None}
            candidate = replace(candidate_from(knobs), epochs=job.winners.epochs)
            log.info(f"{w.name} (trial {w.trial_id}): " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                                             for k, v in candidate.as_dict().items() if v is not None)
                     + (f", vocab={final.vocab}" if candidate.vocab is None else ""))
            metrics = run_candidate(candidate, shared, folder, log_every=20)
            metrics["candidate"] = candidate.as_dict()
            metrics["trial_id"] = w.trial_id
            (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        w.final = json.loads((folder / "metrics.json").read_text())
        log.info(f"{w.name}: validation {w.final['accuracy']:.4f}, test {w.final['test_accuracy']:.4f}")
    return winners


def _export_stage(job: JobSpec, data, teacher: str, winners: list[Winner], out: Path,
                  reference: Result | None = None) -> dict:
    from slimtune.exporting.bundle import run_export

    targets = {"teacher": teacher, **{w.name: str(out / "final" / w.name / "model") for w in winners}}
    if reference is not None:
        targets["reference"] = reference.path
    _stage(4, f"ONNX bundles of the teacher and {len(winners)} winner(s)")
    manifests = {}
    for name, model in targets.items():
        bundle = _bundle_dir(out, name)
        if not (bundle / "manifest.json").exists():  # bundles are written atomically: present means whole
            log.info(f"exporting {name} to {bundle}")
            run_export(replace(job.export, model=model, out=str(bundle)), data)
        manifests[name] = json.loads((bundle / "manifest.json").read_text())
    return manifests


def _compare_stage(job: JobSpec, manifests: dict, out: Path, resume: bool) -> dict:
    from slimtune.exporting.benchmark import interleaved_latency

    e = job.export
    path = out / "compare.json"
    if resume and path.exists():
        _stage(5, "already measured, skipped (--resume)")
        return json.loads(path.read_text())
    _stage(5, f"timing every bundle interleaved, {e.rounds} rounds, {e.threads or 'all'} thread(s)")
    models = {}
    for name in manifests:
        folder = _bundle_dir(out, name)
        models[f"{name}/fp32"] = folder / "model.onnx"
        if (folder / "model.int8.onnx").exists():
            models[f"{name}/int8"] = folder / "model.int8.onnx"
    latency = interleaved_latency(models, seq=e.seq, threads=e.threads, rounds=e.rounds)
    base = latency["teacher/fp32"]
    rows = {}
    for name, m in manifests.items():
        for kind in ("fp32", "int8"):
            if f"{name}/{kind}" in latency:
                ms = latency[f"{name}/{kind}"]
                acc = m.get(f"accuracy_{kind}")
                rows[f"{name}/{kind}"] = {
                    "model": name, "precision": kind, "latency_ms_p50": ms, "speedup_vs_teacher_fp32": base / ms,
                    "test_accuracy": acc, "size_mb": m[f"size_mb_{kind}"],
                    "accuracy_vs_teacher_fp32": acc / manifests["teacher"]["accuracy_fp32"] if acc is not None else None}
    result = {"seq": e.seq, "threads": e.threads, "rounds": e.rounds, "rows": rows}
    path.write_text(json.dumps(result, indent=2) + "\n")
    for key, r in rows.items():
        log.info(f"{key:>18}: {r['latency_ms_p50']:7.2f} ms  {r['speedup_vs_teacher_fp32']:5.2f}x  "
                 f"test acc {r['test_accuracy']:.4f} ({100 * r['accuracy_vs_teacher_fp32']:.1f}% of the teacher)  "
                 f"{r['size_mb']:.1f} MB")
    return result


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
    from slimtune.report import write_report
    from slimtune.storage import ensure_writable

    out = Path(job.out)
    if (out / "summary.json").exists() and not resume:
        raise SlimtuneError(f"--out: {out} already holds a job; add --resume to continue it, or pick a new out folder")
    ensure_writable(out, "--out")
    _check_job_space(job)
    data = load_data(job.data)  # once: every stage gets this, each tokenizer encodes it once
    started = time.perf_counter()
    summary: dict = {"job": dataclasses.asdict(job), "stages": {}, "seconds": {}}

    def done(stage: str, t0: float, **values) -> None:
        summary["stages"][stage] = values
        summary["seconds"][stage] = time.perf_counter() - t0
        _write_summary(out, summary)

    t0 = time.perf_counter()
    teacher = _teacher_stage(job, data, resume)
    done("teacher", t0, dir=teacher.path, **{k: teacher.metrics.get(k) for k in
                                              ("accuracy", "f1_macro", "num_parameters", "train_seconds", "train",
                                               "best_epoch", "stopped_early", "history")})
    t0 = time.perf_counter()
    reference = _reference_stage(job, data)
    if reference is not None:
        done("reference", t0, dir=reference.path, model=job.reference.model, **{
            k: reference.metrics.get(k) for k in ("accuracy", "best_epoch", "history", "train_seconds")})
    t0 = time.perf_counter()
    search = _search_stage(job, data, resume)
    pareto = search.metrics
    done("search", t0, dir=search.path, front_size=len(search.front), trials_finished=pareto["trials_finished"],
         trials_failed=pareto["trials_failed"], constraints=pareto.get("constraints"),
         emptied_by=pareto.get("emptied_by"))
    if not search.front:
        raise _no_front(pareto)
    t0 = time.perf_counter()
    winners = _winners_stage(job, data, pick_winners(pareto, job.winners.count, job.winners.min_accuracy_ratio), out)
    chosen = choose_winner(winners, search.teacher["accuracy"], job.winners.min_accuracy_ratio).name
    log.info(f"chosen: {chosen}, {next(w.why for w in winners if w.chosen)}")
    done("winners", t0, winners=[dataclasses.asdict(w) for w in winners], chosen=chosen)
    t0 = time.perf_counter()
    manifests = _export_stage(job, data, teacher.path, winners, out, reference)
    done("export", t0, bundles={n: str(_bundle_dir(out, n)) for n in manifests})
    t0 = time.perf_counter()
    compare = _compare_stage(job, manifests, out, resume)
    done("compare", t0, **compare)
    t0 = time.perf_counter()
    _stage(6, "writing report.html")
    summary["teacher"] = compare["rows"]["teacher/fp32"]
    summary["winner"] = {"name": chosen, "bundle": str(_bundle_dir(out, chosen)), **compare["rows"][f"{chosen}/fp32"],
                         "int8": compare["rows"].get(f"{chosen}/int8")}
    if reference is not None:
        summary["reference"] = {"model": job.reference.model, **compare["rows"]["reference/fp32"],
                                "int8": compare["rows"].get("reference/int8")}
    link = out / "winner"  # a stable name for the chosen bundle, whichever it is
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(Path("winners") / chosen, target_is_directory=True)
    summary["total_seconds"] = time.perf_counter() - started
    write_report(out, summary, pareto, manifests)
    done("report", t0, path=str(out / "report.html"))
    if job.storage:
        _publish(job, out, list(manifests))
    w = summary["winner"]
    log.info(f"job done in {log.format_seconds(summary['total_seconds'])}: {out / 'report.html'}")
    log.info(f"winner {chosen}: {w['speedup_vs_teacher_fp32']:.2f}x faster than the teacher (fp32), "
             f"{100 * w['accuracy_vs_teacher_fp32']:.1f}% of its test accuracy; bundle {w['bundle']}")
    return Result(str(out), summary)
