"""report.html for a finished job: one self-contained file (inline CSS, the plot as a data: URI,
no scripts, nothing fetched), so it can be mailed or opened offline.

Sections, each with a stable id a test can find: #headline, #comparison (teacher against the
winners, and the reference model fine-tuned directly), #alternatives (test accuracy against
latency from text to label: winners beside what a user could have without slimtune), #training (the teacher's learning curve),
#pareto (the search's plot), #confusion (the chosen winner's test confusion matrix), #trials
(every trial, the front marked), #job (stage times and settings).
"""

from __future__ import annotations

import base64
import csv
import html
import json
from pathlib import Path

CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1f2933;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2.2rem;border-bottom:1px solid #e4e7eb;padding-bottom:.3rem}
.sub{color:#616e7c;margin-top:0}
.cards{display:flex;gap:1rem;flex-wrap:wrap;margin:1.2rem 0}
.card{border:1px solid #e4e7eb;border-radius:8px;padding:.8rem 1.1rem;min-width:180px}
.card b{display:block;font-size:1.5rem;color:#0b6e4f}.card span{color:#616e7c;font-size:.85rem}
table{border-collapse:collapse;font-size:.88rem;margin:.6rem 0}
th,td{padding:.3rem .6rem;border-bottom:1px solid #e4e7eb;text-align:right;white-space:nowrap}
th{background:#f5f7fa;position:sticky;top:0}td.l,th.l{text-align:left}
tr.front td{background:#fff4e6}tr.reference td{color:#616e7c;font-style:italic}tr.chosen td{background:#e6fcf5;font-weight:600}
.scroll{max-height:420px;overflow:auto;border:1px solid #e4e7eb}.wide{overflow-x:auto}
img{max-width:100%;border:1px solid #e4e7eb;border-radius:6px}
.cm td{text-align:center;min-width:3.2rem}.note{color:#616e7c;font-size:.85rem}
code{background:#f5f7fa;padding:0 .25rem;border-radius:3px}
"""


def _fmt(value, digits: int = 4) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape(str(value))


def _table(headers: list[str], rows: list[list], classes: list[str] | None = None, left: int = 1) -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{html.escape(h)}</th>' for i, h in enumerate(headers))
    body = []
    for n, row in enumerate(rows):
        cls = f' class="{classes[n]}"' if classes and classes[n] else ""
        cells = "".join(f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _comparison(summary: dict, manifests: dict) -> str:
    rows, classes = [], []
    compare = summary["stages"]["compare"]["rows"]
    chosen = summary["winner"]["name"]
    for key, r in compare.items():
        name = r["model"]
        m = manifests[name]
        shape = ("" if name == "teacher" else f"{summary['reference']['model']}, fine-tuned directly"
                 if name == "reference" else "TF-IDF + logistic regression (numpy)" if name == "linear"
                 else _shape(summary, name))
        speedup = r["speedup_vs_teacher_fp32"]
        rows.append([html.escape(name), r["precision"], shape, _fmt(r["test_accuracy"]),
                     _fmt(None if r["accuracy_vs_teacher_fp32"] is None else 100 * r["accuracy_vs_teacher_fp32"], 1) + " %",
                     _fmt(r["latency_ms_p50"], 2), _fmt(speedup, 2) + ("×" if speedup else ""),
                     _fmt(r.get("latency_ms_text"), 2), _fmt(r["size_mb"], 1),
                     _fmt(compare["teacher/fp32"]["size_mb"] / r["size_mb"], 1) + "×",
                     f"{m['parity_max_abs_diff']:.1e}" if r["precision"] == "fp32" and m.get("parity_max_abs_diff") is not None
                     else "–"])
        classes.append("chosen" if name == chosen else "reference" if name in ("reference", "linear") else "")
    return _table(["model", "precision", "shape", "test acc.", "of teacher", "p50 (ms)", "faster", "from text (ms)",
                   "MB", "smaller", "parity"], rows, classes, left=3)


def _shape(summary: dict, name: str) -> str:
    for w in summary["stages"]["winners"]["winners"]:
        if w["name"] == name:
            c = w["final"]["candidate"]
            parts = [] if c.get("base", "teacher") == "teacher" else [f"from {c['base']}"]
            parts.append(f"{'all' if c.get('layers') is None else c['layers']} layers")
            if w["final"].get("hidden_size"):
                parts.append(f"width {w['final']['hidden_size']}")
            for k, label in (("heads", "heads"), ("ffn", "FFN")):
                if isinstance(c[k], list):  # one ratio per kept layer
                    parts.append(f"−({'/'.join(f'{100 * r:.0f}' for r in c[k])})% {label}")
                elif c[k]:
                    parts.append(f"−{100 * c[k]:.0f}% {label}")
            if w["final"].get("vocab_size"):
                parts.append(f"{w['final']['vocab_size']:,} pieces")
            return html.escape(", ".join(parts))
    return ""


def _curve_svg(curves: dict[str, list[dict]], width: int = 520, height: int = 220) -> str:
    """Validation accuracy per epoch, one line per model, as inline SVG (no scripts, no files)."""
    points = [row["val_accuracy"] for rows in curves.values() for row in rows]
    epochs = max(len(rows) for rows in curves.values())
    low, high = min(points), max(points)
    low, high = (low - 0.01, high + 0.01) if high - low < 0.02 else (low, high)
    pad = 40
    x = lambda e: pad + (e - 1) * (width - 2 * pad) / max(1, epochs - 1)  # noqa: E731
    y = lambda v: height - pad + (low - v) * (height - 2 * pad) / (high - low)  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="validation accuracy per epoch">',
             f'<text x="{pad}" y="16" font-size="12" fill="#616e7c">validation accuracy per epoch</text>',
             f'<text x="4" y="{y(high) + 4:.0f}" font-size="11">{high:.3f}</text>',
             f'<text x="4" y="{y(low) + 4:.0f}" font-size="11">{low:.3f}</text>']
    for color, (name, rows) in zip(("#0b6e4f", "#c92a2a", "#1c7ed6"), curves.items()):
        line = " ".join(f"{x(r['epoch']):.1f},{y(r['val_accuracy']):.1f}" for r in rows)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{line}"/>')
        parts += [f'<circle cx="{x(r["epoch"]):.1f}" cy="{y(r["val_accuracy"]):.1f}" r="3" fill="{color}"/>' for r in rows]
        parts.append(f'<text x="{x(rows[-1]["epoch"]) + 6:.1f}" y="{y(rows[-1]["val_accuracy"]):.1f}" font-size="11" '
                     f'fill="{color}">{html.escape(name)}</text>')
    parts += [f'<text x="{x(e) - 3:.1f}" y="{height - pad + 16}" font-size="11">{e}</text>' for e in range(1, epochs + 1)]
    return "".join(parts) + "</svg>"


_MARKS = {"winner": ("o", "#0b6e4f", "winners"), "linear": ("^", "#c92a2a", "linear TF-IDF"),
          "teacher": ("*", "#1864ab", "teacher"), "teacher_int8": ("*", "#1864ab", None),
          "direct": ("s", "#862e9c", "fine-tuned directly"), "direct_int8": ("s", "#862e9c", None)}


def _alternatives_plot(points: list[dict], chosen: str) -> str:
    """Test accuracy against latency from text (log scale: a linear model and a teacher lie more
    than an order of magnitude apart), one mark per kind, int8 hollow; a data: URI of a PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    seen = set()
    for p in points:
        marker, color, label = _MARKS[p["kind"]]
        hollow = p["name"].endswith("/int8")
        label = (label or "") if p["kind"] not in seen and label else None
        seen.add(p["kind"])
        ax.scatter([p["latency_ms"]], [p["test_accuracy"]], marker=marker, s=200 if marker == "*" else 70,
                   facecolors="none" if hollow else color, edgecolors=color, linewidths=1.8, label=label, zorder=4)
        ax.annotate(p["name"] + (" (chosen)" if p["name"].split("/")[0] == chosen and not hollow else ""),
                    (p["latency_ms"], p["test_accuracy"]), textcoords="offset points", xytext=(6, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("latency from text to label, ms (batch 1, tokenizer included; log scale)")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=8, title="hollow: int8", title_fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _alternatives(summary: dict) -> str:
    compare = summary["stages"]["compare"]["rows"]
    w = summary["winner"]
    winners = [{"name": k, "kind": "winner", "test_accuracy": r["test_accuracy"], "latency_ms": r["latency_ms_text"],
                "validation_accuracy": r["validation_accuracy"], "f1_macro": r["f1_macro"], "size_mb": r["bundle_mb"],
                "latency_ms_model": r["latency_ms_p50"]}
               for k, r in compare.items() if r["model"].startswith("winner-")]
    points = sorted(winners + list(summary.get("alternatives", [])), key=lambda p: p["latency_ms"])
    rows, classes = [], []
    for p in points:
        rows.append([html.escape(p["name"]), html.escape(p["kind"]), _fmt(p["validation_accuracy"]), _fmt(p["test_accuracy"]),
                     _fmt(p.get("f1_macro")), _fmt(p["latency_ms"], 2), _fmt(p.get("latency_ms_model"), 2),
                     _fmt(p["size_mb"], 1)])
        classes.append("chosen" if p["name"] == f"{w['name']}/fp32" else "reference" if p["kind"] != "winner" else "")
    notes = "".join(f"<p><b>{html.escape(line)}</b></p>" for line in w.get("notes", []))
    return (f'{notes}<img alt="test accuracy against latency from text" src="{_alternatives_plot(points, w["name"])}">'
            + _table(["bundle", "kind", "val. acc.", "test acc.", "test macro-F1", "ms from text", "ms model",
                      "MB"], rows, classes, left=2))


def _training(summary: dict) -> str:
    """The teacher's (and the reference's) learning curve: was the teacher trained to teach?"""
    stages = summary["stages"]
    curves = {name: stages[name]["history"] for name in ("teacher", "reference")
              if stages.get(name, {}).get("history")}
    if not curves:
        return '<p class="note">The teacher was given ready-trained: no learning curve.</p>'
    rows = [[html.escape(name), r["epoch"], _fmt(r["train_loss"]), _fmt(r["val_accuracy"]), _fmt(r["val_f1_macro"]),
             _fmt(r["seconds"], 1)] for name, history in curves.items() for r in history]
    teacher = stages["teacher"]
    note = (f"Best epoch {teacher.get('best_epoch')}; "
            + ("stopped once validation accuracy stopped improving." if teacher.get("stopped_early")
               else "ran every epoch it was given.")) if "teacher" in curves else ""
    return (f'<p class="note">{html.escape(note)} The best epoch\'s weights are kept.</p>{_curve_svg(curves)}'
            + _table(["model", "epoch", "train loss", "val. accuracy", "val. macro-F1", "seconds"], rows))


def _constraints(pareto: dict) -> str:
    limits = pareto.get("limits") or {}
    if not limits:
        return "none"
    return ", ".join(f"{name} ({v['metric']} {'≥' if v['metric'] == 'accuracy' else '≤'} {v['bound']:.4g})"
                     for name, v in limits.items())


def _confusion(manifest: dict) -> str:
    matrix = manifest.get("confusion_fp32")
    if not matrix:
        return '<p class="note">No test data was given to the export, so there is no confusion matrix.</p>'
    labels = manifest["labels"]
    peak = max(max(row) for row in matrix) or 1
    head = "".join(f"<th>{html.escape(str(l))}</th>" for l in labels)
    body = []
    for label, row in zip(labels, matrix):
        total = sum(row) or 1
        cells = []
        for j, v in enumerate(row):
            alpha = 0.12 + 0.75 * v / peak
            color = "11,110,79" if labels[j] == label else "201,42,42"
            cells.append(f'<td style="background:rgba({color},{alpha if v else 0:.2f})" title="{v / total:.1%} of {html.escape(str(label))}">{v}</td>')
        body.append(f'<tr><th class="l">{html.escape(str(label))}</th>{"".join(cells)}</tr>')
    return (f'<table class="cm"><thead><tr><th class="l">true \\ predicted</th>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _trials(search_dir: Path, pareto: dict, chosen_trial: str) -> str:
    path = search_dir / "trials.csv"
    if not path.exists():
        return '<p class="note">No trials.csv.</p>'
    with path.open() as f:
        records = list(csv.DictReader(f))
    front = {str(r["trial_id"]) for r in pareto["front"]}
    cols = [c for c in ("trial_id", "status", "origin", "accuracy", "test_accuracy", "latency_ms", "latency_ms_trial", "size_mb", "base", "layers",
                        "heads", "ffn", "hidden", "hidden_size", "importance", "temperature", "alpha", "hidden_weight", "lr", "epochs",
                        "num_parameters", "trial_seconds") if records and c in records[0]]
    rows, classes = [], []
    for r in sorted(records, key=lambda r: float(r.get("latency_ms") or 1e9)):
        cells = []
        for c in cols:
            v = r.get(c, "")
            try:
                v = int(v) if v.isdigit() else float(v) if v not in ("", "nan") else ""
            except ValueError:
                pass
            cells.append(_fmt(v, 2 if c in ("latency_ms", "size_mb", "trial_seconds", "temperature", "alpha", "heads",
                                            "ffn", "hidden", "hidden_weight") else 6 if c == "lr" else 4))
        rows.append(cells)
        tid = str(r["trial_id"])
        classes.append("chosen" if tid == chosen_trial else "front" if tid in front else "")
    return f'<div class="scroll">{_table(cols, rows, classes, left=cols.index("accuracy") if "accuracy" in cols else 2)}</div>'


def _far_below(pareto: dict) -> str:
    """The trials far under the small model fine-tuned directly, each with why it was tried."""
    far = pareto.get("below_reference")
    if not far or not far["trials"]:
        return ""
    items = "".join(f"<li>trial {html.escape(str(t['trial_id']))} ({html.escape(t['shape'])}): validation "
                    f"{t['accuracy']:.4f}; {html.escape(t['why'])}</li>" for t in far["trials"])
    return (f'<p class="note">{len(far["trials"])} trial(s) ended more than {100 * far["margin"]:.0f} points under '
            f'{html.escape(str(far["model"]))} fine-tuned directly (validation {far["validation_accuracy"]:.4f}). '
            f'Why each was tried:</p><ul class="note">{items}</ul>')


def write_report(out: Path, summary: dict, pareto: dict, manifests: dict) -> Path:
    job = summary["job"]
    w, t = summary["winner"], summary["teacher"]
    chosen = next(x for x in summary["stages"]["winners"]["winners"] if x["name"] == w["name"])
    png = out / "search" / "pareto.png"
    plot = (f'<img alt="Pareto front: validation accuracy against latency" '
            f'src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}">' if png.exists()
            else '<p class="note">No pareto.png.</p>')
    int8 = w.get("int8")
    cards = [
        (f"{w['test_accuracy']:.4f}", f"the winner's test accuracy, {w['latency_ms_text']:.2f} ms from text to label (fp32)"),
        *[(f"{a['test_accuracy']:.4f}", f"{a['name']}: test accuracy, {a['latency_ms']:.2f} ms from text to label")
          for a in summary.get("alternatives", []) if a["kind"] in ("linear", "direct")],
        (f"{w['speedup_vs_teacher_fp32']:.1f}×", "faster than the teacher (fp32 ONNX, same measurement)"),
        (f"{100 * w['accuracy_vs_teacher_fp32']:.1f} %", "of the teacher's test accuracy"),
        (f"{t['size_mb'] / w['size_mb']:.1f}× smaller", f"{w['size_mb']:.1f} MB against {t['size_mb']:.1f} MB"),
    ]
    if int8:
        cards.append((f"{int8['speedup_vs_teacher_fp32']:.1f}×", f"int8: {int8['latency_ms_p50']:.2f} ms, "
                      f"test accuracy {int8['test_accuracy']:.4f}"))
    ref = summary.get("reference")
    if ref:
        cards.append((f"{ref['latency_ms_p50'] / w['latency_ms_p50']:.1f}× faster",
                      f"than {ref['model']} fine-tuned directly, at {100 * (w['test_accuracy'] - ref['test_accuracy']):+.1f} "
                      f"points of test accuracy ({ref['test_accuracy']:.4f})"))
    card_html = "".join(f"<div class=card><b>{html.escape(a)}</b><span>{html.escape(b)}</span></div>" for a, b in cards)
    compare = summary["stages"]["compare"]
    this_run, all_runs = summary["seconds"], summary["seconds_all_runs"]
    if all_runs != this_run:  # a resumed job: what this run took and what the stages cost in all
        timings = _table(["stage", "seconds, this run", "seconds, all runs"],
                         [[s, _fmt(this_run.get(s), 1), _fmt(v, 1)] for s, v in all_runs.items()])
    else:
        timings = _table(["stage", "seconds"], [[s, _fmt(v, 1)] for s, v in this_run.items()])
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>slimtune report: {html.escape(job['model'])} on {html.escape(job['data']['source'])}</title>
<style>{CSS}</style></head><body>
<section id="headline">
<h1>slimtune report</h1>
<p class="sub">Teacher <code>{html.escape(job['teacher'] or job['model'])}</code> on <code>{html.escape(job['data']['source'])}</code>;
chosen winner <code>{html.escape(w['name'])}</code> (trial {html.escape(str(chosen['trial_id']))}: {html.escape(chosen['why'])}),
bundle <code>{html.escape(w['bundle'])}</code>.</p>
<div class="cards">{card_html}</div>
</section>
<section id="comparison"><h2>Teacher against the winners{" and the reference" if summary.get("reference") else ""}</h2>
<p class="note">Test accuracy from the bundles themselves (onnxruntime, no torch), but the teacher's and the
reference's fp32 figures, their fine-tuning's PyTorch test pass. Latency: ONNX Runtime, batch 1,
{compare['seq']} tokens, {compare['threads']} thread(s), all models timed in turns in one process, median of
{compare['rounds']} rounds. Speed-up is against the teacher's fp32 bundle.</p>
<div class="wide">{_comparison(summary, manifests)}</div>
</section>
<section id="alternatives"><h2>Against what you could have without slimtune</h2>
<p class="note">Every bundle from a raw text in to a label out (tokenizer included), batch 1, {compare['threads']} thread(s),
on {compare.get('latency_texts', '–')} real test texts, timed in turns in one process: what a device pays per request. A linear TF-IDF
model fitted on the same rows, the teacher in fp32 and int8{", a small model fine-tuned directly" if summary.get("reference") else ""}.
The winner is chosen on validation accuracy and this latency; it is passed over when a faster alternative is more accurate on
validation. An alternative <i>dominates</i> a bundle when it is at least as accurate on test (within 0.2 points) and no slower
(within 5%).</p>
<div class="wide">{_alternatives(summary)}</div>
</section>
<section id="training"><h2>Training the teacher</h2>
{_training(summary)}
</section>
<section id="pareto"><h2>Search: accuracy against latency</h2>
<p class="note">{pareto['trials_finished']} trials finished, {pareto['trials_failed']} failed; sampler {html.escape(str(pareto.get('sampler')))}.
The front is the trials within the constraints ({html.escape(_constraints(pareto))}) that no other trial beats on every
objective ({', '.join(pareto['objectives'])}); validation accuracy, ONNX fp32 latency at {job['search']['latency_threads']} thread(s).</p>
{plot}
</section>
<section id="confusion"><h2>Confusion matrix of {html.escape(w['name'])} (test split, fp32)</h2>
{_confusion(manifests[w['name']])}
</section>
<section id="trials"><h2>All trials</h2>
<p class="note">Sorted by latency; accuracy is on the validation split, as the search saw it. Orange: on the Pareto front. Green: the chosen winner's trial.
<i>origin</i> (where recorded): why the trial was tried.</p>
{_far_below(pareto)}
{_trials(out / 'search', pareto, str(chosen['trial_id']))}
</section>
<section id="job"><h2>Job</h2>
{timings}
<details><summary>settings</summary><pre>{html.escape(json.dumps(job, indent=2))}</pre></details>
</section>
</body></html>
"""
    from slimtune.storage import write_text_atomic

    return write_text_atomic(out / "report.html", page)
