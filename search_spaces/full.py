# slimtune search --teacher runs/quickstart/teacher --data builtin:tweets --space search_spaces/full.py --trials 12 --concurrency 2 --out runs/search-full
"""Architecture, pruning ratios and distillation settings together; ranges and limits follow the
teacher, so the same file fits a 6-layer MiniLM and a 12-layer MPNet on any data set.

Besides students cut from the teacher, a second base where one pays: the small model fine-tuned
directly on this data when the search has one (a job's `reference:`, `--reference`), else, for a
teacher wider than the built-in MiniLM (hidden 384), MiniLM-L6 fresh from pre-training. A wide
teacher's own students keep its full hidden width: a cut of the width leaves a model that a trial's
distillation does not bring back (see `hidden` below). Trial 1 is the zero-layer student (the search
enqueues it)."""

from slimtune import Constraints, TeacherInfo

# Relative to the teacher as the search measures it: a floor in absolute accuracy would fit one
# data set only. Students under 2x faster are not worth a place on the front.
CONSTRAINTS = Constraints(min_accuracy_ratio=0.9, min_speedup=2.0)
MINILM_L6 = TeacherInfo(family="bert", num_layers=6, num_heads=12, ffn=1536, hidden_size=384, vocab_size=30522,
                        path="builtin:minilm-l6")


def small_base(teacher) -> TeacherInfo | None:
    if teacher.reference is not None:
        return teacher.reference  # already knows the task: far ahead of a fresh pretrained model
    return MINILM_L6 if teacher.hidden_size > MINILM_L6.hidden_size else None


def space(trial, teacher):
    small = small_base(teacher)
    on_small = small is not None and trial.suggest_categorical("base", ["teacher", "small"]) == "small"
    if on_small:
        # a small base is already fast: keep at least half its layers and cut heads and FFN lightly
        values = {"base": small.path,
                  "layers": trial.suggest_int("small_layers", max(1, small.num_layers // 2), small.num_layers),
                  "heads": trial.suggest_float("small_heads", 0.0, 0.5, step=0.25),
                  "ffn": trial.suggest_float("small_ffn", 0.0, 0.5, step=0.25)}
    else:
        # from 1: the search enqueues the zero-layer student (the teacher's embeddings, a mean, a head)
        # as trial 1, layers=0 below this range; it runs at the speed of a linear model, so the front
        # reaches down to there. Sampled from 0, TPE took it again and again (its latency wins: 3 of the
        # 8 trials of `slimtune run jobs/quickstart.yaml` in session 8)
        values = {"layers": trial.suggest_int("layers", 1, max(1, min(teacher.num_layers - 1, 8)))}
        if values["layers"]:  # heads and FFN are the layers' own: a zero-layer student has none
            values["heads"] = trial.suggest_float("heads", 0.0, 0.75, step=0.25)
            values["ffn"] = trial.suggest_float("ffn", 0.0, 0.75, step=0.25)
            # No `hidden` (width) cuts: MPNet cut to half its width (8 layers, a quarter of heads
            # and FFN) is at chance on 20news (test 0.05, 20 classes); one epoch of distillation at a
            # trial's lr on the 2,000 labelled rows (a trial also sees 2,000 transfer texts) leaves it
            # there (validation 0.053, with hidden-state alignment too), three reach 0.39, where
            # MiniLM-L6 fine-tuned directly on the same rows reaches 0.789: `python bench/wide_cut.py
            # --data builtin:20news --max-train-samples 2000` (with a job's --teacher and --reference).
            # A wide teacher always has a small base here (the reference, else MiniLM-L6): a model
            # of about that width already trained.
    zero = values["layers"] == 0
    wide_cut = not on_small and not zero and teacher.hidden_size > MINILM_L6.hidden_size
    values.update({
        "temperature": trial.suggest_float("temperature", 1.0, 4.0),
        "alpha": trial.suggest_float("alpha", 0.3, 0.9),
        # embeddings and a head take far larger steps than an encoder (models.bag.BAG_LR)
        "lr": (trial.suggest_float("bag_lr", 3e-3, 1e-2, log=True) if zero
               else trial.suggest_float("lr", 1e-4, 4e-4, log=True)),
        # a student cut from a wide teacher trains several times slower than a MiniLM-size one (10-17
        # min for 2 epochs of MPNet students on 2,000 Reuters rows: `python bench/big_teacher.py`,
        # session 5): one epoch ranks it, the winners stage gives it the full budget
        "epochs": 1 if wide_cut else trial.suggest_int("epochs", 1, 2),
    })
    if not zero and trial.suggest_categorical("use_hidden", [False, True]):  # no layer states without layers
        values["hidden_weight"] = trial.suggest_float("hidden_weight", 0.1, 1.0)
    return values
