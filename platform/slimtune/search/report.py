"""Search outputs: trials.csv, pareto.json (teacher measured the same way + the front),
pareto.png (accuracy against latency, teacher marked), and a table on the console."""

from __future__ import annotations

import json
from pathlib import Path

from slimtune import log
from slimtune.search.space import KNOBS

METRICS = ("accuracy", "test_accuracy", "latency_ms", "size_mb", "num_parameters", "encoder_flops", "trial_seconds")


def _rows(results) -> tuple[list[dict], dict]:
    rows, checkpoints = [], {}
    for result in results:
        metrics = result.metrics or {}
        row = {"trial_id": metrics.get("trial_id") or Path(result.path).name.split("_")[1] if result.path else "",
               "status": "error" if result.error else ("finished" if "accuracy" in metrics else "incomplete")}
        row.update({k: (result.config or {}).get(k) for k in KNOBS})
        row.update({k: metrics.get(k) for k in METRICS})
        row["model_path"] = None
        rows.append(row)
        checkpoints[row["trial_id"]] = result.checkpoint
    return sorted(rows, key=lambda r: str(r["trial_id"])), checkpoints


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


def write_outputs(spec, space, results, teacher: dict, out: Path, seconds: float) -> dict:
    import pandas as pd

    from slimtune.search.driver import keep_models, pareto_indices

    rows, checkpoints = _rows(results)
    eligible = [r for r in rows if r["status"] == "finished" and space.constraints.satisfied(r)]
    idx = pareto_indices([[r[o] for o in spec.objectives] for r in eligible],
                         ["max" if o == "accuracy" else "min" for o in spec.objectives]) if eligible else []
    front = [eligible[i] for i in idx]
    keep = {r["trial_id"] for r in (rows if spec.keep_all else front)}
    keep_models(rows, checkpoints, keep, out)
    pd.DataFrame(rows).to_csv(out / "trials.csv", index=False)
    for row in front:
        row["speedup_vs_teacher"] = teacher["latency_ms"] / row["latency_ms"]
    summary = {"teacher": teacher, "front": front, "objectives": list(spec.objectives),
               "constraints": space.constraints.__dict__, "trials_finished": sum(r["status"] == "finished" for r in rows),
               "trials_failed": sum(r["status"] == "error" for r in rows), "seconds": seconds,
               "sampler": spec.sampler, "seed": spec.seed, "space": spec.space}
    (out / "pareto.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    _plot(rows, front, teacher, out / "pareto.png")
    log.info(f"{summary['trials_finished']} trials finished, {summary['trials_failed']} failed; front of {len(front)}:")
    log.info(f"{'trial':>10} {'layers':>6} {'heads':>5} {'ffn':>5} {'val acc':>8} {'test acc':>8} {'ms':>7} {'speed-up':>8}")
    log.info(f"{'teacher':>10} {'':>6} {'':>5} {'':>5} {teacher['accuracy']:>8.4f} {teacher['test_accuracy']:>8.4f} "
             f"{teacher['latency_ms']:>7.2f} {1.0:>8.2f}")
    for r in sorted(front, key=lambda r: r["latency_ms"]):
        log.info(f"{str(r['trial_id']):>10} {str(r['layers']):>6} {r['heads']:>5.2f} {r['ffn']:>5.2f} {r['accuracy']:>8.4f} "
                 f"{r['test_accuracy']:>8.4f} {r['latency_ms']:>7.2f} {r['speedup_vs_teacher']:>8.2f}")
    return summary
