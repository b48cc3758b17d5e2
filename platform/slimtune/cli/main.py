"""`slimtune` command line. Each subcommand parses flags into a frozen spec and calls its stage.

Errors in the user's input end as one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from slimtune.version import __version__
from slimtune.errors import SlimtuneError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_data_flags(parser, transfer: bool = False, per_trial: bool = False) -> None:
    parser.add_argument("--data", required=True, help="builtin:tweets|reuters-r8|20news, a CSV/TSV/JSON/JSONL/Parquet file, a folder with train.* [validation.* test.*], a save_to_disk folder, or hf:NAME[:CONFIG]")
    parser.add_argument("--text-column", help="column with the text (default: text, or the built-in dataset's)")
    parser.add_argument("--label-column", help="column with the label (default: label, or the built-in dataset's)")
    parser.add_argument("--max-train-samples", type=int, metavar="N", help="stratified subsample of the training split")
    parser.add_argument("--seed", type=int, help="seed of splits, shuffling and initialisation (default 42)")
    parser.add_argument("--truncation", choices=("head", "head_tail"),
                        help="how a text longer than --max-length is cut: its first tokens (head, the default), or "
                             "the first quarter and last three quarters of the budget (head_tail: long documents)")
    if transfer:  # the stages that distil
        parser.add_argument("--unlabeled", metavar="FILE|FOLDER", help="unlabelled text to distil on (the teacher labels it): "
                            "a .txt file (one text a line), a CSV/Parquet file's --text-column, or a folder of them")
        parser.add_argument("--max-unlabeled-samples", type=int, metavar="N",
                            help=("transfer texts each trial distils on (default 2000; 0: none)" if per_trial else
                                  "cap on the transfer set: the --unlabeled texts and the training rows beyond "
                                  "--max-train-samples, labels hidden (default: all; 0: none)"))


def _add_storage_flag(parser) -> None:
    parser.add_argument("--storage", metavar="PATH|URI",
                        help="checkpoints and trial state: a folder every node reaches, or s3://... / gs://... (default: under --out)")


def _stage_parser(sub, name: str, **kwargs):
    """A stage's parser: flags the user leaves out are absent, so the stage's settings object holds
    the one default (the same for the CLI, job files and the Python API)."""
    return sub.add_parser(name, argument_default=argparse.SUPPRESS, **kwargs)


def _flags(args) -> dict:
    return {k: v for k, v in vars(args).items() if k not in ("func", "command")}


def _finetune_parser(sub) -> None:
    p = _stage_parser(sub, "finetune", help="fine-tune a teacher classifier (here or on Ray Train)",
                      description="Fine-tune a pretrained transformer as a text classifier. Writes DIR/model/, DIR/metrics.json and DIR/split.json.")
    p.add_argument("--model", required=True, help="builtin:minilm-l6, builtin:mpnet-base, a model folder, or a hub id")
    _add_data_flags(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--epochs", type=int, help="passes over the training data (default 3); with --patience, the most")
    p.add_argument("--patience", type=int, help="stop after this many epochs without a better validation score (default: run every epoch)")
    p.add_argument("--batch-size", type=int, help="examples per step over all workers (default 32)")
    p.add_argument("--lr", type=float, help="peak learning rate (default: by model width, 2e-4 for MiniLM, 5e-5 for BERT-base size)")
    p.add_argument("--max-length", type=int, help="tokens per text, longer ones cut (default: the length covering 95%% of the training texts, at most the model's positions and 256 on a CPU)")
    p.add_argument("--workers", type=int, help="Ray Train workers; 0 = this process (default: 1 when RAY_ADDRESS is set, else 0)")
    p.add_argument("--use-gpu", action="store_true", help="train on GPU (one per worker)")
    _add_storage_flag(p)
    p.set_defaults(func=_cmd_finetune)


def _cmd_finetune(args) -> dict:
    import slimtune

    return slimtune.finetune(**_flags(args)).metrics


def _layers_arg(text: str):
    """`--layers 3` keeps 3 evenly spaced layers; `--layers 0,2,5` keeps exactly those."""
    try:
        return tuple(int(x) for x in text.split(",")) if "," in text else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"give a count (3) or indices (0,2,5), not {text!r}") from None


def _ints_arg(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated layer numbers, e.g. 1,3,5, not {text!r}") from None


def _prune_parser(sub) -> None:
    p = _stage_parser(sub, "prune", help="remove attention heads, FFN neurons and layers for real",
                      description="Structured pruning: physically remove heads, FFN neurons and whole layers. Writes DIR/model/ and DIR/metrics.json (with encoder_flops, size_mb, num_parameters and the teacher's figures).")
    p.add_argument("--model", required=True, help="a fine-tuned model folder (e.g. a finetune output)")
    _add_data_flags(p, transfer=True)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--heads", type=float, metavar="R", help="fraction of attention heads removed (each layer keeps one; default 0)")
    p.add_argument("--ffn", type=float, metavar="R", help="fraction of FFN neurons removed (default 0)")
    p.add_argument("--hidden", type=float, metavar="R", help="fraction of the hidden size removed: embeddings, every LayerNorm and projection narrowed together (default 0)")
    p.add_argument("--layers", type=_layers_arg, metavar="K", help="layers kept: a count (evenly spaced, last kept) or indices like 0,2,5")
    p.add_argument("--importance", help="taylor (|w x grad| on calibration batches, default) or magnitude")
    p.add_argument("--scope", help="layer: same ratio per layer (default); global: rank units model-wide")
    p.add_argument("--sparsity", type=float, metavar="R", help="unstructured magnitude sparsity on top (size effect only)")
    p.add_argument("--recover-epochs", type=int, help="fine-tune epochs after pruning (default 0; distil instead)")
    p.add_argument("--vocab", help="full (default) or data: keep only the pieces the training rows tokenize to")
    p.add_argument("--vocab-extra", metavar="FILE", help="unlabelled in-domain texts, one per line, whose pieces --vocab data keeps too")
    p.add_argument("--max-length", type=int, help="tokens per text (default: the model's own when slimtune fine-tuned it, else picked from the data as finetune does)")
    learned = p.add_argument_group("learned pruning (--method learned)")
    learned.add_argument("--method", help="oneshot (score once, cut by the ratios above; default) or learned (L0 gates trained towards --target-speedup)")
    learned.add_argument("--target-speedup", type=float, metavar="S", help="ONNX fp32 speed-up to reach over the model being pruned (predicted by the latency model; metrics.json has the measured one)")
    learned.add_argument("--teacher", help="distil from this model (default: the model being pruned)")
    learned.add_argument("--epochs", type=int, help="epochs of gate training (default 1)")
    learned.add_argument("--final-epochs", type=int, help="distillation epochs after the removal (default 2)")
    learned.add_argument("--scores", help="gates (trained; default) or taylor: no gate training, Taylor scores rank the units the latency model cuts to the target (the baseline the gates are measured against)")
    learned.add_argument("--hidden-weight", type=float, metavar="W", help="layer-wise distillation while the gates train: MSE to the same layer of the model being pruned (default 0: logits only)")
    learned.add_argument("--lr", type=float, help="learning rate of the weights (default: by width); the gates move faster, by the number of steps")
    learned.add_argument("--latency-model", metavar="FILE.json", help="a latency model (slimtune bench --profile) to reuse; default: profile the model first")
    learned.add_argument("--seq", type=int, help="tokens the latency is measured at (default 128)")
    learned.add_argument("--threads", type=int, help="ONNX Runtime threads the latency is measured at (default 1)")
    p.set_defaults(func=_cmd_prune)


def _cmd_prune(args) -> dict:
    import slimtune

    return slimtune.prune(**_flags(args)).metrics


def _distill_parser(sub) -> None:
    p = _stage_parser(sub, "distill", help="distil a fine-tuned teacher into a student",
                      description="Knowledge distillation on the training loop (here or on Ray Train). Writes DIR/model/ and DIR/metrics.json (with encoder_flops, size_mb and the teacher's figures).")
    p.add_argument("--teacher", required=True, help="a fine-tuned model folder")
    p.add_argument("--student", required=True, help="a model folder (e.g. prune output), a model name (builtin:minilm-l6), or random:layers=4,hidden=256,heads=4,ffn=1024")
    _add_data_flags(p, transfer=True)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--epochs", type=int, help="passes over the training data (default 3); with --patience, the most")
    p.add_argument("--patience", type=int, help="stop after this many epochs without a better validation score (default: run every epoch)")
    p.add_argument("--batch-size", type=int, help="examples per step (default 32)")
    p.add_argument("--lr", type=float, help="peak learning rate (default: by student width)")
    p.add_argument("--temperature", type=float, help="softening of the logit loss (default 2)")
    p.add_argument("--standardize", action=argparse.BooleanOptionalAction,
                   help="z-score each example's logits before softening (default: on with 3 or more classes)")
    p.add_argument("--alpha", type=float, help="weight of the teacher's soft targets vs hard labels (default 0.5)")
    p.add_argument("--hidden-weight", type=float, help="weight of hidden-state MSE (default 0: off)")
    p.add_argument("--attention-weight", type=float, help="weight of attention KL (default 0: off)")
    p.add_argument("--layer-map", type=_ints_arg, help="teacher layer per student layer, e.g. 1,3,5 (default: the pruned layers' origin, else uniform)")
    p.add_argument("--linear-teacher", metavar="DIR", help="a linear TF-IDF bundle fitted on this data (a job's OUT/alternatives/linear): learn from the teacher and it together, weighted as validation prefers")
    p.add_argument("--max-length", type=int, help="tokens per text (default: the model's own when slimtune fine-tuned it, else picked from the data as finetune does)")
    p.add_argument("--workers", type=int, help="Ray Train workers; 0 = this process")
    p.add_argument("--use-gpu", action="store_true")
    _add_storage_flag(p)
    p.set_defaults(func=_cmd_distill)


def _cmd_distill(args) -> dict:
    import slimtune

    return slimtune.distill(**_flags(args)).metrics


def _export_parser(sub) -> None:
    p = _stage_parser(sub, "export", help="export to ONNX fp32 + int8, checked and benchmarked, as a bundle",
                      description="Export a model folder to an ONNX bundle that runs with onnxruntime alone: model.onnx, model.int8.onnx, tokenizer files, labels.json, manifest.json, README.md.")
    p.add_argument("--model", required=True, help="a model folder (finetune, prune or distill output)")
    p.add_argument("--out", required=True, metavar="BUNDLE", help="bundle folder (new or empty)")
    p.add_argument("--data", help="dataset whose test split gives accuracy_fp32/int8 and parity texts")
    p.add_argument("--text-column", help="column with the text")
    p.add_argument("--label-column", help="column with the label")
    p.add_argument("--seed", type=int, help="seed of the test split when one is carved out (42)")
    p.add_argument("--int8", action="store_true", help="write model.int8.onnx (default: on)")
    p.add_argument("--no-int8", dest="int8", action="store_false", help="fp32 only")
    p.add_argument("--static-int8", action="store_true", help="static int8 calibrated on training texts (needs --data)")
    p.add_argument("--no-optimize", dest="optimize", action="store_false", help="skip ONNX Runtime graph fusions")
    p.add_argument("--seq", type=int, help="sequence length of the latency measurement (128)")
    p.add_argument("--threads", type=int, help="threads of the latency measurement (all cores)")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args) -> dict:
    import slimtune

    manifest = slimtune.export(**_flags(args)).metrics
    keys = ("parity_max_abs_diff", "accuracy_fp32", "accuracy_int8", "latency_ms_p50_fp32", "latency_ms_p50_int8",
            "size_mb_fp32", "size_mb_int8", "opset")
    return {"print": {k: manifest[k] for k in keys}}


def _bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="latency percentiles and throughput of a bundle or a model folder",
                       description="Measure p50/p90/p99 latency (batch --batch) and throughput (batch 32). JSON on stdout.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--bundle", help="a bundle folder (ONNX, or a linear TF-IDF bundle: timed from text only); "
                                         "its files are checked first")
    source.add_argument("--model", help="a model folder (PyTorch eager)")
    p.add_argument("--int8", action="store_true", help="measure the bundle's int8 model")
    p.add_argument("--ort", action="store_true", help="measure the bundle's int8 model in ORT format (model.int8.ort)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--profile", action="store_true",
                   help="with --model: build the latency model of ONNX Runtime at --seq and --threads (default 1), "
                        "fp32 and int8, from timed layer shapes; write it to --out")
    p.add_argument("--out", metavar="FILE.json", help="where --profile writes the latency model")
    p.set_defaults(func=_cmd_bench)


def _cmd_profile(args) -> dict:
    from slimtune import log
    from slimtune.exporting.latency_model import profile
    from slimtune.models import load_classifier, load_config, resolve_model
    from slimtune.storage import ensure_writable

    if not args.model or not args.out:
        raise SlimtuneError("--profile: give --model DIR (the model whose layers are timed) and --out FILE.json")
    ensure_writable(Path(args.out).parent, "--out")
    resolved = resolve_model(args.model)
    config = load_config(resolved)
    model = load_classifier(resolved, tuple(config.id2label[i] for i in range(config.num_labels)))
    result = profile(model, seq=args.seq, threads=args.threads or 1, batch=args.batch)
    result.save(args.out)
    log.info(f"wrote {args.out}")
    return {"print": {"out": args.out, **result.terms}}


def _cmd_bench(args) -> dict:
    if args.profile:
        return _cmd_profile(args)
    if args.bundle:
        from slimtune.exporting.benchmark import bench_onnx, bench_texts
        from slimtune.exporting.runtime import SAMPLE_TEXTS

        bundle = _open_bundle(args.bundle, args)  # checked against SHA256SUMS first
        if bundle.kind == "linear":  # no fixed-shape model: latency is from text to label, the usual keys too
            import time

            from_text = bench_texts(bundle, SAMPLE_TEXTS, args.iters)
            batch = [SAMPLE_TEXTS[i % len(SAMPLE_TEXTS)] for i in range(32)]
            started = time.perf_counter()
            bundle.logits(batch)
            report = {"kind": "linear", **{k.replace("_text", ""): v for k, v in from_text.items()}, **from_text,
                      "throughput_per_s": len(batch) / (time.perf_counter() - started),
                      "size_mb": bundle.manifest["size_mb"], "texts": len(SAMPLE_TEXTS)}
        else:
            limit = bundle.manifest.get("max_positions")
            if limit and args.seq > limit:
                raise SlimtuneError(f"--seq: this model takes at most {limit} tokens, got {args.seq}")
            try:
                report = bench_onnx(bundle.model_file, args.seq, args.threads, args.iters, batch=args.batch)
            except Exception as exc:  # onnxruntime refusing the shape (a bundle older than max_positions)
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
                raise SlimtuneError(f"--seq/--batch: onnxruntime refused {args.batch} x {args.seq} tokens ({first}); "
                                    f"try a shorter --seq") from None
            report.update(bench_texts(bundle, SAMPLE_TEXTS, args.iters))  # the tokenizer included
    else:
        from slimtune.exporting.benchmark import bench_torch
        from slimtune.models import load_classifier, load_config, resolve_model

        resolved = resolve_model(args.model)
        config = load_config(resolved)
        model = load_classifier(resolved, tuple(config.id2label[i] for i in range(config.num_labels)))
        report = bench_torch(model, args.seq, args.threads, args.iters, batch=args.batch)
    return {"print": report}


def _open_bundle(path: str, args=None):
    """The bundle, checked whole against SHA256SUMS; any problem is one line naming the file."""
    from slimtune.exporting.runtime import Bundle, BundleError, load_bundle

    try:
        if args is not None and args.ort:
            return Bundle(path, int8=True, ort_format=True)
        bundle = load_bundle(path, int8=bool(args and args.int8))
        if bundle.kind == "linear" and args is not None and args.int8:
            raise SlimtuneError(f"--int8: {path} is a linear TF-IDF bundle, which has no int8 model; drop --int8")
        return bundle
    except SlimtuneError:
        raise
    except (BundleError, FileNotFoundError, OSError) as exc:
        raise SlimtuneError(f"--bundle: {exc}") from None
    except Exception as exc:  # onnxruntime or tokenizers refusing a file the list still vouches for
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise SlimtuneError(f"--bundle: cannot load {path}: {first}") from None


def _add_model_choice(p) -> None:
    p.add_argument("--int8", action="store_true", help="use model.int8.onnx")
    p.add_argument("--ort", action="store_true", help="use model.int8.ort (the int8 model in ORT format, as on a phone)")


def _eval_parser(sub) -> None:
    p = sub.add_parser("eval", help="accuracy and macro-F1 of a bundle on a test split (onnxruntime only)")
    p.add_argument("--bundle", required=True)
    p.add_argument("--data", required=True, help="a dataset (its test split), or with only onnxruntime installed a CSV/TSV/JSON/JSONL file")
    p.add_argument("--text-column", default=None)
    p.add_argument("--label-column", default=None)
    p.add_argument("--seed", type=int, default=42, help="seed of the test split when one is carved out (42)")
    _add_model_choice(p)
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args) -> dict:
    from slimtune.exporting.runtime import read_labelled_file

    bundle = _open_bundle(args.bundle, args)  # a clear error before reading data
    try:
        import pandas  # noqa: F401  the full loader: every data form, the same seeded test split

        from slimtune.data import DataSpec, load_data

        data = load_data(DataSpec(args.data, args.text_column, args.label_column, seed=args.seed))
        texts, labels = list(data.test["text"]), [data.label_names[i] for i in data.test["label"]]
    except ImportError:  # a device with only numpy, onnxruntime and tokenizers
        try:
            texts, labels = read_labelled_file(args.data, args.text_column or "text", args.label_column or "label")
        except (OSError, ValueError) as exc:
            raise SlimtuneError(f"--data: {exc}") from None
    try:
        scores = bundle.evaluate(texts, labels)
    except ValueError as exc:
        raise SlimtuneError(f"--data: {exc}") from None
    return {"print": {"accuracy": scores["accuracy"], "f1_macro": scores["f1_macro"], "n": scores["n"],
                      "model": bundle.model_file.name}}


def _predict_parser(sub) -> None:
    p = sub.add_parser("predict", help="classify texts with a bundle (onnxruntime only): one JSON line per text")
    p.add_argument("--bundle", required=True)
    p.add_argument("texts", nargs="+", metavar="TEXT")
    _add_model_choice(p)
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args) -> dict:
    for row in _open_bundle(args.bundle, args).predict(args.texts):
        print(json.dumps(row))
    return {}


def _verify_parser(sub) -> None:
    p = sub.add_parser("verify", help="check every file of a bundle against its SHA256SUMS",
                       description="Check a bundle's files against SHA256SUMS (written by export; the manifest is covered too). "
                                   "Catches corruption and truncation, not a deliberate forgery.")
    p.add_argument("--bundle", required=True)
    p.set_defaults(func=_cmd_verify)


def _cmd_verify(args) -> dict:
    from slimtune.exporting.runtime import BundleError, verify

    try:
        files = verify(args.bundle)
    except (BundleError, OSError) as exc:
        raise SlimtuneError(f"--bundle: {exc}") from None
    return {"print": {"ok": True, "files": files, "bundle": args.bundle}}


def _search_parser(sub) -> None:
    p = _stage_parser(sub, "search", help="search students with Ray Tune + Optuna over several objectives",
                      description="Multi-objective search (accuracy up, latency down, size optionally). Writes DIR/trials.csv, DIR/pareto.json, DIR/pareto.png; the front's models stay in DIR/trials/.")
    p.add_argument("--teacher", required=True, help="a fine-tuned model folder")
    _add_data_flags(p, transfer=True, per_trial=True)
    p.add_argument("--space", required=True, help="a search space file, e.g. search_spaces/full.py")
    p.add_argument("--reference", metavar="DIR",
                   help="a small model fine-tuned directly on this data; spaces may start students from it (teacher.reference)")
    p.add_argument("--linear-teacher", metavar="DIR", help="a linear TF-IDF bundle fitted on this data: trials learn from the teacher and it together, weighted as validation prefers")
    p.add_argument("--trials", type=int, help="trials in all (default 12)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--concurrency", type=int, help="trials at once, each gets CPUs / concurrency threads (default 2)")
    p.add_argument("--resume", action="store_true", help="continue the search in DIR; finished trials are kept")
    p.add_argument("--objectives", type=lambda s: tuple(s.split(",")), help="from accuracy, latency_ms, size_mb (default accuracy,latency_ms)")
    p.add_argument("--sampler", help="tpe (default), nsga2 or random")
    p.add_argument("--sampler-seed", type=int, help="seed of the sampler (default: --seed)")
    p.add_argument("--steer-speedup", type=float, metavar="N",
                   help="steer the sampler toward students at least N x faster than the teacher (Optuna constraints; the front keeps the space's)")
    p.add_argument("--retries", type=int, help="retries of a failing trial before it is recorded as failed (default 1)")
    p.add_argument("--max-steps", type=int, help="cap on each trial's training steps")
    p.add_argument("--max-length", type=int, help="tokens per text (default: the model's own when slimtune fine-tuned it, else picked from the data as finetune does)")
    p.add_argument("--keep-all", action="store_true", help="keep every trial's model, not only the front's")
    p.add_argument("--latency-model", metavar="FILE.json",
                   help="a latency model (slimtune bench --profile): trials also get latency_ms_predicted")
    p.add_argument("--vocab", help="full (default) or data: candidates keep only the pieces the training rows use (unless the space sets the vocab knob)")
    p.add_argument("--gpus-per-trial", type=float,
                   help="GPU share each trial asks Ray for (0.25: four trials share one GPU; default 0: CPUs)")
    p.add_argument("--trial-workers", type=int,
                   help="0: each trial trains in its own process (default); N: as a Ray Train job on N workers (one GPU each with --gpus-per-trial)")
    _add_storage_flag(p)
    p.set_defaults(func=_cmd_search)


def _cmd_search(args) -> dict:
    import slimtune

    pareto = slimtune.search(**_flags(args)).metrics
    return {"print": {"front": len(pareto["front"]), "trials_finished": pareto["trials_finished"],
                      "trials_failed": pareto["trials_failed"], "seconds": pareto["seconds"]}}


def _run_parser(sub) -> None:
    p = sub.add_parser("run", help="run a job file (the whole pipeline)",
                       description="Run the stages a job file names. key=value pairs override the file, e.g. finetune.epochs=2.")
    p.add_argument("job", help="job YAML file, e.g. jobs/quickstart.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override a job key (dotted path)")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: the job's out)")
    p.add_argument("--resume", action="store_true", help="skip the stages that already finished in DIR")
    _add_storage_flag(p)
    p.set_defaults(func=_cmd_run, storage=None)


def _cmd_run(args) -> dict:
    import slimtune

    summary = slimtune.run(args.job, out=args.out, overrides=args.overrides, resume=args.resume, storage=args.storage).metrics
    w = summary["winner"]
    return {"print": {"report": str(Path(summary["job"]["out"]) / "report.html"),
                      "summary": str(Path(summary["job"]["out"]) / "summary.json"),
                      "winner_bundle": w["bundle"], "test_accuracy": round(w["test_accuracy"], 4),
                      "latency_ms_text": round(w["latency_ms_text"], 3),
                      "speedup_vs_teacher_fp32": round(w["speedup_vs_teacher_fp32"], 3),
                      "accuracy_vs_teacher_fp32": round(w["accuracy_vs_teacher_fp32"], 4),
                      "holds_against_alternatives": w["holds_against_alternatives"], "dominated_by": w["dominated_by"],
                      "seconds": round(summary["total_seconds"], 1),
                      "seconds_all_runs": round(summary["total_seconds_all_runs"], 1)}}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="slimtune", description="Make transformer text classifiers small and fast for the edge.")
    parser.add_argument("--version", action="version", version=f"slimtune {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _finetune_parser(sub)
    _prune_parser(sub)
    _distill_parser(sub)
    _export_parser(sub)
    _bench_parser(sub)
    _eval_parser(sub)
    _predict_parser(sub)
    _verify_parser(sub)
    _search_parser(sub)
    _run_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except SlimtuneError as exc:
        print(f"slimtune {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"slimtune {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a failure we did not foresee: still one line, the traceback on request
        if os.environ.get("SLIMTUNE_DEBUG"):
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        print(f"slimtune {args.command}: error: {type(exc).__name__}: {first} (SLIMTUNE_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1
    if isinstance(result, dict) and "print" in result:
        print(json.dumps(result["print"]))
    elif isinstance(result, dict) and result:
        keys = ("accuracy", "f1_macro", "num_parameters", "encoder_flops", "size_mb", "train_seconds")
        summary = {k: result[k] for k in keys if k in result}
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
