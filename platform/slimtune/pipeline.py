"""`slimtune run JOB.yaml`: the whole job, stage by stage, each stage's outputs kept on disk.

    1 teacher   fine-tune (or take `teacher:` as given)           OUT/teacher/
    2 search    Ray Tune + Optuna over the space file             OUT/search/ (trials.csv, pareto.*)
    3 winners   a few front members distilled again, full budget; one chosen   OUT/final/<name>/
    4 export    ONNX fp32 + int8 bundles, teacher and winners     OUT/teacher_bundle/, OUT/winners/<name>/
    5 compare   teacher against winners, timed interleaved in one process   OUT/compare.json
    6 report    OUT/report.html (self-contained) and OUT/summary.json

The job file is checked whole before any work (slimtune.job). Under `--resume` a stage whose
outputs exist is not run again; a half-finished search continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from slimtune import log
from slimtune.errors import SlimtuneError
from slimtune.job import JobSpec, load_job

__all__ = ["JobSpec", "load_job", "run_job", "pick_winners", "choose_winner"]

STAGES = ("teacher", "search", "winners", "export", "compare", "report")


def _data_spec(job: JobSpec, max_train_samples: int | None = None):
    from slimtune.data import DataSpec

    d = job.data
    return DataSpec(d.source, d.text_column, d.label_column, test_fraction=d.test_fraction,
                    max_train_samples=max_train_samples or d.max_train_samples, seed=d.seed)


def _bundle_dir(out: Path, name: str) -> Path:
    """Where a model's bundle goes: the teacher's beside the winners', each winner's by name."""
    return out / "teacher_bundle" if name == "teacher" else out / "winners" / name


def _storage(job: JobSpec, part: str) -> str | None:
    from slimtune.storage import join

    return join(job.storage, Path(job.out).name, part) if job.storage else None


def _stage(n: int, text: str) -> None:
    log.info(f"stage {n}/{len(STAGES)} {STAGES[n - 1]}: {text}")


def _teacher_stage(job: JobSpec, out: Path, resume: bool) -> tuple[str, dict]:
    from slimtune.train.finetune import FinetuneSpec, run_finetune
    from slimtune.train.loop import TrainSpec

    if job.teacher:
        _stage(1, f"using the fine-tuned teacher {job.teacher}")
        folder = Path(job.teacher)
        metrics = folder / "metrics.json"
        return job.teacher, json.loads(metrics.read_text()) if metrics.exists() else {}
    folder = out / "teacher"
    if resume and (folder / "metrics.json").exists() and (folder / "model" / "config.json").exists():
        _stage(1, f"already finished in {folder}, skipped (--resume)")
        return str(folder), json.loads((folder / "metrics.json").read_text())
    _stage(1, f"fine-tuning {job.model}")
    f = job.finetune
    spec = FinetuneSpec(model=job.model, data=_data_spec(job), out=str(folder),
                        train=TrainSpec(epochs=f.epochs, batch_size=f.batch_size, lr=f.lr, seed=job.data.seed),
                        max_length=f.max_length, workers=f.workers, use_gpu=f.use_gpu,
                        storage=_storage(job, "teacher-checkpoints"))
    return str(folder), run_finetune(spec)


def _search_spec(job: JobSpec, teacher: str, out: Path, resume: bool, full_data: bool = False):
    from slimtune.search.driver import SearchSpec

    s = job.search
    rows = job.data.max_train_samples if full_data else (s.max_train_samples or job.data.max_train_samples)
    return SearchSpec(teacher=teacher, data=_data_spec(job, rows), space=s.space, out=str(out), trials=s.trials,
                      concurrency=s.concurrency, objectives=tuple(s.objectives), sampler=s.sampler,
                      seed=job.data.seed, resume=resume, retries=s.retries, max_train_samples=rows,
                      max_length=job.finetune.max_length, seq=job.export.seq, latency_threads=s.latency_threads,
                      keep_all=s.keep_all, max_steps=None if full_data else s.max_steps,
                      gpus_per_trial=s.gpus_per_trial, trial_workers=s.trial_workers, storage=_storage(job, "search"))


def _search_stage(job: JobSpec, teacher: str, out: Path, resume: bool) -> dict:
    from slimtune.search.driver import run_search

    folder = out / "search"
    if resume and (folder / "pareto.json").exists():
        _stage(2, f"already finished in {folder}, skipped (--resume)")
        return json.loads((folder / "pareto.json").read_text())
    _stage(2, f"{job.search.trials} trials of {Path(job.search.space).name}, {job.search.concurrency} at a time, "
              f"{job.search.sampler} sampler")
    return run_search(_search_spec(job, teacher, folder, resume=resume))  # restores Tune's state if there is any


def pick_winners(pareto: dict, count: int, min_accuracy_ratio: float) -> list[dict]:
    """Front members to distil again with the full budget, `count` in all: the fastest one whose
    search accuracy is within `min_accuracy_ratio` of the teacher's validation accuracy; the next
    faster one, just under that floor (the search trains on a small budget, the final run often
    lifts such a student over it); then the most accurate others."""
    front = sorted(pareto["front"], key=lambda r: r["latency_ms"])
    if not front:
        raise SlimtuneError("search: no finished trial meets the space's CONSTRAINTS, so there is no winner; "
                            "see search/trials.csv, then loosen CONSTRAINTS or raise search.trials and rerun with --resume")
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
    return [{"name": f"winner-{i + 1}", "trial_id": r["trial_id"], "picked_because": why, "search": r}
            for i, (r, why) in enumerate(picked[:count])]


def choose_winner(winners: list[dict], teacher_accuracy: float, min_accuracy_ratio: float) -> dict:
    """After the final distillation: the fastest winner whose validation accuracy is within the
    floor, else the most accurate. Validation, not test: the choice never looks at test."""
    floor = min_accuracy_ratio * teacher_accuracy
    good = [w for w in winners if w["final"]["accuracy"] >= floor]
    chosen = (min(good, key=lambda w: w["final"]["latency_ms"]) if good
              else max(winners, key=lambda w: w["final"]["accuracy"]))
    for w in winners:
        w["chosen"] = w is chosen
    chosen["why"] = (f"the fastest with validation accuracy at least {min_accuracy_ratio:.0%} of the teacher's "
                     "after the final distillation" if good else "the most accurate after the final distillation "
                     f"(none reached {min_accuracy_ratio:.0%} of the teacher's validation accuracy)")
    return chosen


def _winners_stage(job: JobSpec, teacher: str, winners: list[dict], out: Path) -> list[dict]:
    from slimtune.search.driver import build_shared
    from slimtune.search.objective import run_candidate
    from slimtune.search.space import KNOBS, candidate_from

    def finished(w: dict) -> bool:  # and for the same trial: a resumed job may pick differently
        path = out / "final" / w["name"] / "metrics.json"
        return path.exists() and json.loads(path.read_text()).get("trial_id") == w["trial_id"]

    todo = [w for w in winners if not finished(w)]
    _stage(3, f"distilling {len(winners)} winner(s) again for {job.winners.epochs} epochs"
              + (f" ({len(winners) - len(todo)} already done)" if len(todo) < len(winners) else ""))
    shared = build_shared(_search_spec(job, teacher, out / "final", resume=False, full_data=True), measure_teacher=False)[0] if todo else None
    for w in winners:
        folder = out / "final" / w["name"]
        if w in todo:
            knobs = {k: w["search"].get(k) for k in KNOBS if w["search"].get(k) is not None}
            candidate = dataclasses.replace(candidate_from(knobs), epochs=job.winners.epochs)
            log.info(f"{w['name']} (trial {w['trial_id']}): " + ", ".join(f"{k}={v}" for k, v in candidate.__dict__.items()))
            metrics = run_candidate(candidate, shared, folder, log_every=20)
            metrics["candidate"] = candidate.__dict__
            metrics["trial_id"] = w["trial_id"]
            (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        w["final"] = json.loads((folder / "metrics.json").read_text())
        log.info(f"{w['name']}: validation {w['final']['accuracy']:.4f}, test {w['final']['test_accuracy']:.4f}")
    return winners


def _export_stage(job: JobSpec, teacher: str, winners: list[dict], out: Path) -> dict:
    from slimtune.export.bundle import ExportSpec, run_export

    targets = {"teacher": (teacher, _bundle_dir(out, "teacher"))}
    targets.update({w["name"]: (str(out / "final" / w["name"] / "model"), _bundle_dir(out, w["name"])) for w in winners})
    _stage(4, f"ONNX bundles of the teacher and {len(winners)} winner(s)")
    manifests = {}
    for name, (model, bundle) in targets.items():
        if not (bundle / "manifest.json").exists():  # bundles are written atomically: present means whole
            log.info(f"exporting {name} to {bundle}")
            run_export(ExportSpec(model=model, out=str(bundle), int8=job.export.int8, data=_data_spec(job),
                                  seq=job.export.seq, threads=job.export.threads))
        manifests[name] = json.loads((bundle / "manifest.json").read_text())
    return manifests


def _compare_stage(job: JobSpec, manifests: dict, out: Path, resume: bool) -> dict:
    from slimtune.export.benchmark import interleaved_latency

    path = out / "compare.json"
    if resume and path.exists():
        _stage(5, "already measured, skipped (--resume)")
        return json.loads(path.read_text())
    _stage(5, f"timing every bundle interleaved, {job.export.rounds} rounds, {job.export.threads} thread(s)")
    models = {}
    for name in manifests:
        folder = _bundle_dir(out, name)
        models[f"{name}/fp32"] = folder / "model.onnx"
        if (folder / "model.int8.onnx").exists():
            models[f"{name}/int8"] = folder / "model.int8.onnx"
    latency = interleaved_latency(models, seq=job.export.seq, threads=job.export.threads, rounds=job.export.rounds)
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
    result = {"seq": job.export.seq, "threads": job.export.threads, "rounds": job.export.rounds, "rows": rows}
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
        target = upload_dir(staged, join(job.storage, Path(job.out).name, "results"))
    log.info(f"copied the report, summary and bundles to {target}")


def _write_summary(out: Path, summary: dict) -> None:
    from slimtune.storage import write_text_atomic

    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")


def run_job(job: JobSpec, resume: bool = False) -> dict:
    from slimtune.report import write_report
    from slimtune.search.driver import check_space

    out = Path(job.out).resolve()  # Ray's trials and workers run in their own working folders
    if (out / "summary.json").exists() and not resume:
        raise SlimtuneError(f"--out: {out} already holds a job; add --resume to continue it, or pick a new out folder")
    check_space(job.search.space)  # a broken space file fails now, not after the fine-tune
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    summary: dict = {"job": dataclasses.asdict(job), "stages": {}, "seconds": {}}

    def done(stage: str, t0: float, **values) -> None:
        summary["stages"][stage] = values
        summary["seconds"][stage] = time.perf_counter() - t0
        _write_summary(out, summary)

    t0 = time.perf_counter()
    teacher, teacher_metrics = _teacher_stage(job, out, resume)
    done("teacher", t0, dir=teacher, **{k: teacher_metrics.get(k) for k in
                                         ("accuracy", "f1_macro", "num_parameters", "train_seconds")})
    t0 = time.perf_counter()
    pareto = _search_stage(job, teacher, out, resume)
    done("search", t0, dir=str(out / "search"), front_size=len(pareto["front"]),
         trials_finished=pareto["trials_finished"], trials_failed=pareto["trials_failed"])
    t0 = time.perf_counter()
    winners = _winners_stage(job, teacher, pick_winners(pareto, job.winners.count, job.winners.min_accuracy_ratio), out)
    chosen = choose_winner(winners, pareto["teacher"]["accuracy"], job.winners.min_accuracy_ratio)["name"]
    log.info(f"chosen: {chosen}, {next(w['why'] for w in winners if w['chosen'])}")
    done("winners", t0, winners=winners, chosen=chosen)
    t0 = time.perf_counter()
    manifests = _export_stage(job, teacher, winners, out)
    done("export", t0, bundles={n: str(_bundle_dir(out, n)) for n in manifests})
    t0 = time.perf_counter()
    compare = _compare_stage(job, manifests, out, resume)
    done("compare", t0, **compare)
    t0 = time.perf_counter()
    _stage(6, "writing report.html")
    summary["teacher"] = compare["rows"]["teacher/fp32"]
    summary["winner"] = {"name": chosen, "bundle": str(_bundle_dir(out, chosen)), **compare["rows"][f"{chosen}/fp32"],
                         "int8": compare["rows"].get(f"{chosen}/int8")}
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
    return {"print": {"report": str(out / "report.html"), "summary": str(out / "summary.json"),
                      "winner_bundle": w["bundle"], "speedup_vs_teacher_fp32": round(w["speedup_vs_teacher_fp32"], 3),
                      "accuracy_vs_teacher_fp32": round(w["accuracy_vs_teacher_fp32"], 4),
                      "seconds": round(summary["total_seconds"], 1)}}
