"""Search outputs: trials.csv, pareto.json (teacher measured the same way + the front),
pareto.png (accuracy against latency, teacher marked), and a table on the console.

The front is computed here from the finished trials and the constraints, so a resume with other
constraints recomputes it from the same trials."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from slimtune import log
from slimtune.results import stage_metrics
from slimtune.searching.space import KNOBS
from slimtune.searching.steer import ORIGIN, why_tried

FAR_BELOW = 0.10
"""A trial this far under the reference's validation accuracy (the small model fine-tuned
directly) is listed with the reason it was tried: a student a user would not pick unless the
search says why it was in it."""

METRICS = ("accuracy", "test_accuracy", "latency_ms", "latency_ms_predicted", "size_mb", "num_parameters", "encoder_flops", "num_layers",
           "trial_seconds", "lr", "vocab_size", "hidden_size")


def _rows(results) -> tuple[list[dict], dict]:
    rows, checkpoints = [], {}
    for result in results:
        metrics = result.metrics or {}
        row = {"trial_id": metrics.get("trial_id") or Path(result.path).name.split("_")[1] if result.path else "",
               "status": "error" if result.error else ("finished" if "accuracy" in metrics else "incomplete")}
        row.update({k: (result.config or {}).get(k) for k in KNOBS})
        row[ORIGIN] = (result.config or {}).get(ORIGIN)
        row.update({k: metrics.get(k) for k in METRICS})
        row["model_path"] = None
        rows.append(row)
        checkpoints[row["trial_id"]] = result.checkpoint
    return sorted(rows, key=lambda r: str(r["trial_id"])), checkpoints


def pareto_indices(values: list[list[float]], directions: list[str]) -> list[int]:
    """Indices of the non-dominated rows, by Optuna's own Pareto helper (a study's best_trials)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize" if d == "max" else "minimize" for d in directions])
    for i, row in enumerate(values):
        study.add_trial(optuna.trial.create_trial(values=row, params={}, distributions={}, user_attrs={"row": i}))
    return sorted(t.user_attrs["row"] for t in study.best_trials)


def keep_models(rows: list[dict], checkpoints: dict, keep: set, drop: set, out: Path) -> None:
    """Fetch the kept trials' models from Tune's storage into OUT/trials/<id>/model; delete the
    dropped trials' models from storage. Trials in neither set (outside the constraints) keep
    their model in storage: looser constraints on a resume may put them on the front."""
    for row in rows:
        checkpoint = checkpoints.get(row["trial_id"])
        local = out / "trials" / str(row["trial_id"]) / "model"
        if row["trial_id"] in keep:
            if not (local / "config.json").exists() and checkpoint is not None:
                shutil.rmtree(local, ignore_errors=True)
                local.parent.mkdir(parents=True, exist_ok=True)
                try:
                    checkpoint.to_directory(str(local))
                except (FileNotFoundError, OSError):
                    log.info(f"trial {row['trial_id']}: its model was removed from storage by an earlier run")
            row["model_path"] = str(local) if (local / "config.json").exists() else None
            continue
        row["model_path"] = None
        shutil.rmtree(local.parent, ignore_errors=True)
        if row["trial_id"] in drop and checkpoint is not None:
            try:
                checkpoint.filesystem.delete_dir(checkpoint.path)
            except (FileNotFoundError, OSError):
                pass  # already removed by an earlier run of this search


def _plot(rows, front, teacher, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["status"] == "finished"]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.scatter([r["latency_ms"] for r in done], [r["accuracy"] for r in done], c="#9aa5b1", label="trials")
    line = sorted(front, key=lambda r: r["latency_ms"])
    ax.plot([r["latency_ms"] for r in line], [r["accuracy"] for r in line], "o-", c="#d9480f", label="Pareto front")
    ax.scatter([teacher["latency_ms"]], [teacher["accuracy"]], marker="*", s=220, c="#1864ab", label="teacher", zorder=5)
    ax.set_xlabel("latency, ms (ONNX Runtime fp32, batch 1)")
    ax.set_ylabel("validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def emptied_by(finished: list[dict], constraints, teacher: dict) -> dict[str, int]:
    """For an empty front: constraint name -> how many finished trials it rules out."""
    counts: dict[str, int] = {}
    for row in finished:
        for name in constraints.failures(row, teacher):
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def below_reference(finished: list[dict], reference_dir: str | None) -> dict | None:
    """The finished trials more than FAR_BELOW under the reference's validation accuracy, each with
    why it was tried; None without a reference that recorded its validation accuracy."""
    metrics = stage_metrics(reference_dir) if reference_dir else {}
    accuracy = (metrics.get("validation") or {}).get("accuracy")
    if accuracy is None:
        return None
    far = [{"trial_id": r["trial_id"], "accuracy": r["accuracy"], "shape": _shape(r), "origin": r.get(ORIGIN),
            "why": why_tried(r.get(ORIGIN))}
           for r in sorted(finished, key=lambda r: r["accuracy"]) if r["accuracy"] < accuracy - FAR_BELOW]
    return {"model": metrics.get("model") or reference_dir, "validation_accuracy": accuracy, "margin": FAR_BELOW,
            "trials": far}


def _shape(row: dict) -> str:
    path = Path(str(row.get("base")))
    name = path.parent.name if path.name == "model" else path.name  # a job's OUT/reference/model: "reference"
    base = "" if row.get("base") in (None, "teacher") else f" of {name}"
    layers = "all layers" if row.get("layers") is None else f"{row['layers']} layers"
    return (f"{layers}{base}, heads {_cell(row.get('heads'))}, FFN {_cell(row.get('ffn'))} removed"
            + (f", hidden {_cell(row['hidden'])}" if row.get("hidden") else "") + f", {row.get('epochs')} epoch(s)")


def write_outputs(spec, space, results, teacher: dict, out: Path, seconds: float, retime=None) -> dict:
    """pareto.json, trials.csv and the plot; `retime` (finished rows -> None) may correct their
    latency first (`searching.anchor.retime_near_budget`), so constraints and front see it."""
    import pandas as pd

    rows, checkpoints = _rows(results)
    finished = [r for r in rows if r["status"] == "finished"]
    if retime is not None:
        retime(finished)
    constraints = space.constraints
    eligible = [r for r in finished if constraints.satisfied(r, teacher)]
    idx = pareto_indices([[r[o] for o in spec.objectives] for r in eligible],
                         ["max" if o == "accuracy" else "min" for o in spec.objectives]) if eligible else []
    front = [eligible[i] for i in idx]
    keep = {r["trial_id"] for r in (rows if spec.keep_all else front)}
    keep_models(rows, checkpoints, keep, {r["trial_id"] for r in eligible} - keep, out)
    pd.DataFrame([{**r, "heads": _cell(r["heads"]), "ffn": _cell(r["ffn"])} for r in rows]).to_csv(out / "trials.csv", index=False)
    for row in finished:
        row["speedup_vs_teacher"] = teacher["latency_ms"] / row["latency_ms"] if row.get("latency_ms") else None
    # every trial within the constraints, not only the front: the winners stage also takes the
    # deepest student within a latency budget, which a short trial seldom puts on the front; and
    # every finished trial, for a budget that no trial within the constraints meets
    summary = {"teacher": teacher, "front": front, "eligible": eligible, "finished": finished,
               "objectives": list(spec.objectives),
               "constraints": constraints.as_dict(),
               "limits": {k: {"metric": m, "bound": b} for k, (m, b) in constraints.limits(teacher).items()},
               "emptied_by": emptied_by(finished, constraints, teacher) if not front else {},
               "below_reference": below_reference(finished, spec.reference),
               "trials_finished": len(finished), "trials_failed": sum(r["status"] == "error" for r in rows),
               "seconds": seconds, "sampler": spec.sampler, "seed": spec.seed, "sampler_seed": spec.sampler_seed,
               "space": space.name}
    (out / "pareto.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    _plot(rows, front, teacher, out / "pareto.png")
    log.info(f"{summary['trials_finished']} trials finished, {summary['trials_failed']} failed; front of {len(front)}"
             + (f" (constraints {constraints.as_dict()})" if constraints.as_dict() else "") + ":")
    if not front and finished:
        log.info("no finished trial meets the constraints: " + ", ".join(
            f"{name} rules out {n} of {len(finished)}" for name, n in summary["emptied_by"].items()))
    log.info(f"{'trial':>10} {'layers':>6} {'heads':>5} {'ffn':>5} {'val acc':>8} {'test acc':>8} {'ms':>7} {'speed-up':>8}")
    log.info(f"{'teacher':>10} {'':>6} {'':>5} {'':>5} {teacher['accuracy']:>8.4f} {teacher['test_accuracy']:>8.4f} "
             f"{teacher['latency_ms']:>7.2f} {1.0:>8.2f}")
    for r in sorted(front, key=lambda r: r["latency_ms"]):
        log.info(f"{str(r['trial_id']):>10} {str(r['layers']):>6} {_cell(r['heads'])[:5]:>5} {_cell(r['ffn'])[:5]:>5} "
                 f"{r['accuracy']:>8.4f} {r['test_accuracy']:>8.4f} {r['latency_ms']:>7.2f} {r['speedup_vs_teacher']:>8.2f}")
    far = summary["below_reference"]
    if far and far["trials"]:
        log.info(f"{len(far['trials'])} of {len(finished)} trials ended more than {100 * FAR_BELOW:.0f} points under "
                 f"{far['model']} fine-tuned directly (validation {far['validation_accuracy']:.4f}); why each was tried:")
        for t in far["trials"]:
            log.info(f"  trial {t['trial_id']} ({t['shape']}): validation {t['accuracy']:.4f}; {t['why']}")
    return summary


def _cell(value) -> str:
    """A ratio, or per-layer ratios joined by '/' (one CSV cell)."""
    if isinstance(value, (list, tuple)):
        return "/".join(f"{v:g}" for v in value)
    return f"{value:.2f}" if isinstance(value, float) else str(value)
