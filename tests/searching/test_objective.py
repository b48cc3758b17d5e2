"""One trial in this process: a student from another pretrained base, narrowed, distilled with
cached hidden-state targets; saved so that it reloads exactly."""

from dataclasses import replace

import pytest
import torch

pytestmark = pytest.mark.slow


def test_student_from_another_base_narrowed_and_reloaded(trained_tiny_dir, tiny_model_dir, texts_csv, tmp_path):
    from slimtune.data import DataSpec
    from slimtune.models import load_classifier
    from slimtune.models.load import read_model_info
    from slimtune.searching.driver import SearchSpec, build_shared
    from slimtune.searching.objective import run_candidate
    from slimtune.searching.space import Candidate
    from tests.helpers import build_tokenizer

    spec = SearchSpec(teacher=str(trained_tiny_dir), data=DataSpec(str(texts_csv)), space="unused.py",
                      out=str(tmp_path / "s"), max_train_samples=None, max_length=32, seq=32)
    shared, _ = build_shared(spec, measure_teacher=False)
    candidate = Candidate(base=str(tiny_model_dir), layers=1, hidden=0.5, heads=0.5, hidden_weight=1.0,
                          lr=3e-3, epochs=1)
    metrics = run_candidate(candidate, shared, tmp_path / "trial")
    assert metrics["hidden_size"] == 16 and metrics["base_layers"] == 2
    assert 0 <= metrics["test_accuracy"] <= 1 and metrics["latency_ms"] > 0
    folder = tmp_path / "trial" / "model"
    info = read_model_info(folder)
    assert info["source_model"] == str(tiny_model_dir) and info["shape"]["head_size"] == 8
    model = load_classifier(str(folder), shared.label_names).eval()
    assert model.config.hidden_size == 16 and model.config.num_hidden_layers == 1
    ids = torch.tensor([build_tokenizer()("good film")["input_ids"]])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    assert logits.shape == (1, 2)


@pytest.mark.parametrize("family", ["distilbert", "deberta-v2", "modernbert"])
def test_a_trial_on_every_family(family, texts_csv, tmp_path):
    """The search's trial (layers, heads, FFN and width cut, hidden-state distillation from the
    cache, ONNX latency) on teachers of other families; the saved student reloads."""
    from slimtune.data import DataSpec
    from slimtune.models import load_classifier
    from slimtune.searching.driver import SearchSpec, build_shared, teacher_info
    from slimtune.searching.objective import run_candidate
    from slimtune.searching.space import Candidate
    from tests.helpers import build_family_model, build_family_tokenizer

    tok = build_family_tokenizer(family)
    teacher = build_family_model(family, vocab_size=len(tok), pad_token_id=tok.pad_token_id)
    teacher.config.id2label, teacher.config.label2id = {0: "neg", 1: "pos"}, {"neg": 0, "pos": 1}
    teacher.save_pretrained(tmp_path / "teacher")
    tok.save_pretrained(tmp_path / "teacher")
    info = teacher_info(str(tmp_path / "teacher"))
    assert (info.family, info.num_layers, info.ffn) == (family, 3, 64)
    spec = SearchSpec(teacher=str(tmp_path / "teacher"), data=DataSpec(str(texts_csv)), space="unused.py",
                      out=str(tmp_path / "s"), max_train_samples=None, max_length=32, seq=32)
    shared, _ = build_shared(spec, measure_teacher=False)
    candidate = Candidate(layers=2, heads=0.5, ffn=0.5, hidden=0.5, hidden_weight=0.5, lr=3e-3, epochs=1)
    metrics = run_candidate(candidate, shared, tmp_path / "trial")
    assert metrics["hidden_size"] == 16 and metrics["latency_ms"] > 0 and 0 <= metrics["accuracy"] <= 1
    model = load_classifier(str(tmp_path / "trial" / "model"), shared.label_names)
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 16


def test_a_learned_trial_finds_its_own_shape_and_reloads(trained_tiny_dir, texts_csv, tmp_path):
    """method learned in a trial: gates towards the target (after a layer cut), then the usual
    distillation; the uneven shape is saved with the layers' place in the teacher."""
    import dataclasses

    from slimtune.data import DataSpec
    from slimtune.errors import SlimtuneError
    from slimtune.models import load_classifier
    from slimtune.models.load import read_model_info
    from slimtune.models.surgery import model_layer_shape
    from slimtune.searching.driver import SearchSpec, build_shared
    from slimtune.searching.objective import run_candidate
    from slimtune.searching.space import Candidate
    from tests.pruning.test_learned import LATENCY

    spec = SearchSpec(teacher=str(trained_tiny_dir), data=DataSpec(str(texts_csv)), space="unused.py",
                      out=str(tmp_path / "s"), max_train_samples=None, max_length=32, seq=32)
    shared, _ = build_shared(spec, measure_teacher=False)
    candidate = Candidate(method="learned", target_speedup=1.8, layers=2, lr=3e-3, epochs=8)  # 4 of gates, 4 after
    with pytest.raises(SlimtuneError, match="method learned needs a latency model"):
        run_candidate(candidate, shared, tmp_path / "no-model")
    shared = dataclasses.replace(shared, latency_model=dataclasses.asdict(LATENCY))
    metrics = run_candidate(candidate, shared, tmp_path / "trial")
    full = LATENCY.predict([(4, 64)] * 2)
    assert (metrics["gate_epochs"], metrics["distill_epochs"]) == (4, 4)  # a one-shot trial's budget of 8
    info = read_model_info(tmp_path / "trial" / "model")
    # the gates' own shape, before `fit` rounds it, is near the 1.8x target: they trained
    assert info["pruned"]["gates_ms"] <= 1.15 * full / 1.8, info["pruned"]
    assert info["pruned"]["method"] == "learned" and set(info["pruned"]["kept_layers"]) <= {0, 1}
    model = load_classifier(str(tmp_path / "trial" / "model"), shared.label_names)
    assert model_layer_shape(model) == list(zip(info["pruned"]["heads"], info["pruned"]["ffn"]))
    # the winners stage: the same candidate at the shape its gates found, distilled afresh, no gates
    # (other gates would settle elsewhere: 1 epoch and a 4x target here)
    again = run_candidate(dataclasses.replace(candidate, target_speedup=4.0, epochs=1), shared, tmp_path / "winner",
                          shape=info["pruned"])
    winner = read_model_info(tmp_path / "winner" / "model")["pruned"]
    assert [winner[k] for k in ("kept_layers", "heads", "ffn")] == [info["pruned"][k] for k in ("kept_layers", "heads", "ffn")]
    assert again["latency_ms_predicted"] == pytest.approx(metrics["latency_ms_predicted"])
    with pytest.raises(SlimtuneError, match="heads and ffn go with method oneshot"):
        Candidate(method="learned", target_speedup=4, heads=0.5)
    with pytest.raises(SlimtuneError, match="knob target_speedup"):
        Candidate(method="learned")


def test_a_zero_layer_trial_distils_the_teachers_embeddings_and_reloads(trained_tiny_dir, texts_csv, tmp_path):
    """layers=0 in a trial: the teacher's embeddings (vocabulary cut to the training rows' pieces),
    a mean and a head, distilled from logits at the zero-layer rate; timed, sized and saved."""
    import dataclasses

    from slimtune.data import DataSpec
    from slimtune.models import load_classifier
    from slimtune.models.bag import BAG_LR, BagForSequenceClassification
    from slimtune.models.load import read_model_info
    from slimtune.searching.driver import SearchSpec, build_shared
    from slimtune.searching.objective import run_candidate
    from slimtune.searching.space import Candidate

    spec = SearchSpec(teacher=str(trained_tiny_dir), data=DataSpec(str(texts_csv)), space="unused.py",
                      out=str(tmp_path / "s"), max_train_samples=None, max_length=32, seq=32)
    shared, _ = build_shared(spec, measure_teacher=False)
    shared = dataclasses.replace(shared, spec=dataclasses.replace(shared.spec, vocab="data"))
    metrics = run_candidate(Candidate(layers=0, epochs=2), shared, tmp_path / "trial")
    assert metrics["lr"] == BAG_LR and metrics["base_layers"] == 2 and metrics["encoder_flops"] == 0
    assert metrics["accuracy"] >= 0.9 and metrics["test_accuracy"] >= 0.9  # word lists: a bag of words suffices
    assert metrics["latency_ms"] > 0 and metrics["size_mb"] > 0
    folder = tmp_path / "trial" / "model"
    info = read_model_info(folder)
    assert info["pruned"]["bag"] and info["pruned"]["kept_layers"] == [] and info["vocab"]["vocab"] == "data"
    model = load_classifier(str(folder), shared.label_names)
    assert isinstance(model, BagForSequenceClassification) and model.config.vocab_size == metrics["vocab_size"]
    assert metrics["num_parameters"] == sum(p.numel() for p in model.parameters())


def test_a_student_that_reads_fewer_tokens(trained_tiny_dir, texts_csv, tmp_path):
    """Knob seq: the student trains, is timed and is saved at 8 tokens (its texts cut there), while
    the teacher's logits still come from whole texts; hidden-state losses are refused with it."""
    from slimtune.data import DataSpec
    from slimtune.errors import SlimtuneError
    from slimtune.models.load import read_model_info
    from slimtune.searching.driver import SearchSpec, build_shared
    from slimtune.searching.objective import run_candidate
    from slimtune.searching.space import Candidate

    with pytest.raises(SlimtuneError, match="knob seq=8 .* hidden_weight"):
        Candidate(layers=1, seq=8, hidden_weight=1.0)
    spec = SearchSpec(teacher=str(trained_tiny_dir), data=DataSpec(str(texts_csv)), space="unused.py",
                      out=str(tmp_path / "s"), max_train_samples=None, max_length=32, seq=32)
    shared, _ = build_shared(spec, measure_teacher=False)
    assert max(map(len, shared.encoded["train"].input_ids)) > 8  # the teacher reads more
    metrics = run_candidate(Candidate(layers=1, seq=8, lr=3e-3, epochs=1), shared, tmp_path / "trial")
    assert metrics["seq"] == 8
    assert read_model_info(tmp_path / "trial" / "model")["max_length"] == 8  # the bundle cuts texts there
    full = run_candidate(Candidate(layers=1, lr=3e-3, epochs=1), shared, tmp_path / "whole")
    assert full["seq"] == 32 and full["encoder_flops"] > 2 * metrics["encoder_flops"]
    # texts read at 16 tokens are still timed at the search's seq, where the winners are judged
    short, _ = build_shared(replace(spec, max_length=16, out=str(tmp_path / "s16")), measure_teacher=False)
    assert short.seq == 32 and run_candidate(Candidate(layers=1, lr=3e-3, epochs=1), short, tmp_path / "s16t")["seq"] == 32
    with pytest.raises(SlimtuneError, match=r"--resume: this search timed .* at 16 tokens, this run would at 32"):
        build_shared(spec, saved={"accuracy": 0.5, "latency_ms": 1.0, "seq": 16})  # one timed before the change
