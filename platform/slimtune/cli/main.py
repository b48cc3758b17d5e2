"""`slimtune` command line. Each subcommand parses flags into a frozen spec and calls its stage.

Errors in the user's input end as one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from slimtune import __version__
from slimtune.errors import SlimtuneError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_data_flags(parser) -> None:
    parser.add_argument("--data", required=True, help="builtin:tweets|reuters-r8|20news, a CSV/TSV/JSON/JSONL/Parquet file, a folder with train.* [validation.* test.*], a save_to_disk folder, or hf:NAME[:CONFIG]")
    parser.add_argument("--text-column", default=None, help="column with the text (default: text, or the built-in dataset's)")
    parser.add_argument("--label-column", default=None, help="column with the label (default: label, or the built-in dataset's)")
    parser.add_argument("--max-train-samples", type=int, default=None, metavar="N", help="stratified subsample of the training split")
    parser.add_argument("--seed", type=int, default=42, help="seed of splits, shuffling and initialisation (default 42)")


def _finetune_parser(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune a teacher classifier (here or on Ray Train)",
                       description="Fine-tune a pretrained transformer as a text classifier. Writes DIR/model/, DIR/metrics.json and DIR/split.json.")
    p.add_argument("--model", required=True, help="builtin:minilm-l6, builtin:mpnet-base, a model folder, or a hub id")
    _add_data_flags(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--epochs", type=int, default=3, help="passes over the training data (default 3)")
    p.add_argument("--batch-size", type=int, default=32, help="examples per step over all workers (default 32)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: by model width, 2e-4 for MiniLM, 5e-5 for BERT-base size)")
    p.add_argument("--max-length", type=int, default=128, help="tokens per text, longer ones truncated (default 128)")
    p.add_argument("--workers", type=int, default=None, help="Ray Train workers; 0 = this process (default: 1 when RAY_ADDRESS is set, else 0)")
    p.add_argument("--use-gpu", action="store_true", help="train on GPU (one per worker)")
    p.set_defaults(func=_cmd_finetune)


def _cmd_finetune(args) -> dict:
    from slimtune.data import DataSpec
    from slimtune.train.finetune import FinetuneSpec, run_finetune
    from slimtune.train.loop import TrainSpec

    spec = FinetuneSpec(
        model=args.model,
        data=DataSpec(args.data, args.text_column, args.label_column,
                      max_train_samples=args.max_train_samples, seed=args.seed),
        out=args.out,
        train=TrainSpec(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed),
        max_length=args.max_length,
        workers=args.workers,
        use_gpu=args.use_gpu,
    )
    return run_finetune(spec)


def _layers_arg(text: str):
    """`--layers 3` keeps 3 evenly spaced layers; `--layers 0,2,5` keeps exactly those."""
    try:
        return tuple(int(x) for x in text.split(",")) if "," in text else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"give a count (3) or indices (0,2,5), not {text!r}") from None


def _prune_parser(sub) -> None:
    p = sub.add_parser("prune", help="remove attention heads, FFN neurons and layers for real",
                       description="Structured pruning: physically remove heads, FFN neurons and whole layers. Writes DIR/model/ and DIR/metrics.json (with encoder_flops, size_mb, num_parameters and the teacher's figures).")
    p.add_argument("--model", required=True, help="a fine-tuned model folder (e.g. a finetune output)")
    _add_data_flags(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--heads", type=float, default=0.0, metavar="R", help="fraction of attention heads removed (each layer keeps one)")
    p.add_argument("--ffn", type=float, default=0.0, metavar="R", help="fraction of FFN neurons removed")
    p.add_argument("--layers", type=_layers_arg, default=None, metavar="K", help="layers kept: a count (evenly spaced, last kept) or indices like 0,2,5")
    p.add_argument("--importance", default="taylor", help="taylor (|w x grad| on calibration batches, default) or magnitude")
    p.add_argument("--scope", default="layer", help="layer: same ratio per layer (default); global: rank units model-wide")
    p.add_argument("--sparsity", type=float, default=0.0, metavar="R", help="unstructured magnitude sparsity on top (size effect only)")
    p.add_argument("--recover-epochs", type=int, default=0, help="fine-tune epochs after pruning (default 0; distil instead)")
    p.add_argument("--max-length", type=int, default=128)
    p.set_defaults(func=_cmd_prune)


def _cmd_prune(args) -> dict:
    from slimtune.data import DataSpec
    from slimtune.prune.run import PruneSpec, run_prune

    layers = args.layers
    return run_prune(PruneSpec(
        model=args.model,
        data=DataSpec(args.data, args.text_column, args.label_column, max_train_samples=args.max_train_samples, seed=args.seed),
        out=args.out, heads=args.heads, ffn=args.ffn,
        layers=layers if isinstance(layers, int) else None,
        keep_layer_indices=layers if isinstance(layers, tuple) else None,
        importance=args.importance, scope=args.scope, sparsity=args.sparsity,
        recover_epochs=args.recover_epochs, max_length=args.max_length,
    ))


def _distill_parser(sub) -> None:
    p = sub.add_parser("distill", help="distil a fine-tuned teacher into a student",
                       description="Knowledge distillation on the training loop (here or on Ray Train). Writes DIR/model/ and DIR/metrics.json (with encoder_flops, size_mb and the teacher's figures).")
    p.add_argument("--teacher", required=True, help="a fine-tuned model folder")
    p.add_argument("--student", required=True, help="a model folder (e.g. prune output), a model name (builtin:minilm-l6), or random:layers=4,hidden=256,heads=4,ffn=1024")
    _add_data_flags(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--epochs", type=int, default=3, help="passes over the training data (default 3)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: by student width)")
    p.add_argument("--temperature", type=float, default=2.0, help="softening of the logit loss (default 2)")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the teacher's soft targets vs hard labels (default 0.5)")
    p.add_argument("--hidden-weight", type=float, default=0.0, help="weight of hidden-state MSE (default 0: off)")
    p.add_argument("--attention-weight", type=float, default=0.0, help="weight of attention KL (default 0: off)")
    p.add_argument("--layer-map", default=None, help="teacher layer per student layer, e.g. 1,3,5 (default: the pruned layers' origin, else uniform)")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--workers", type=int, default=None, help="Ray Train workers; 0 = this process")
    p.add_argument("--use-gpu", action="store_true")
    p.set_defaults(func=_cmd_distill)


def _cmd_distill(args) -> dict:
    from slimtune.data import DataSpec
    from slimtune.distill import DistillSpec, LossSpec, run_distill
    from slimtune.train.loop import TrainSpec

    layer_map = None
    if args.layer_map:
        try:
            layer_map = tuple(int(x) for x in args.layer_map.split(","))
        except ValueError:
            raise SlimtuneError(f"--layer-map: comma-separated layer numbers, e.g. 1,3,5, not {args.layer_map!r}") from None
    return run_distill(DistillSpec(
        teacher=args.teacher, student=args.student,
        data=DataSpec(args.data, args.text_column, args.label_column, max_train_samples=args.max_train_samples, seed=args.seed),
        out=args.out,
        loss=LossSpec(temperature=args.temperature, alpha=args.alpha, hidden_weight=args.hidden_weight,
                      attention_weight=args.attention_weight, layer_map=layer_map),
        train=TrainSpec(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed),
        max_length=args.max_length, workers=args.workers, use_gpu=args.use_gpu,
    ))


def _run_parser(sub) -> None:
    p = sub.add_parser("run", help="run a job file (the whole pipeline)",
                       description="Run the stages a job file names. key=value pairs override the file, e.g. finetune.epochs=2.")
    p.add_argument("job", help="job YAML file, e.g. jobs/quickstart.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override a job key (dotted path)")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: the job's out)")
    p.add_argument("--resume", action="store_true", help="skip the stages that already finished in DIR")
    p.set_defaults(func=_cmd_run)


def _cmd_run(args) -> dict:
    from slimtune.pipeline import load_job, run_job

    job = load_job(args.job, args.overrides, out=args.out)
    return run_job(job, resume=args.resume)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="slimtune", description="Make transformer text classifiers small and fast for the edge.")
    parser.add_argument("--version", action="version", version=f"slimtune {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _finetune_parser(sub)
    _prune_parser(sub)
    _distill_parser(sub)
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
    if isinstance(result, dict):
        keys = ("accuracy", "f1_macro", "num_parameters", "encoder_flops", "size_mb", "train_seconds")
        summary = {k: result[k] for k in keys if k in result}
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
