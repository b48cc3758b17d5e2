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
        summary = {k: result[k] for k in ("accuracy", "f1_macro", "num_parameters", "train_seconds") if k in result}
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
