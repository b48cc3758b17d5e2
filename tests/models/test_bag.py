"""The zero-layer student (models.bag): built from a classifier of each kind of embedding, its
shape, size, FLOPs and latency read through an adapter with no layers, padding never counts,
it saves and reloads through transformers' Auto classes, and its ONNX graph matches PyTorch."""

import pytest
import torch

from tests.helpers import build_family_model, build_family_tokenizer

TEXTS = ["sunny warm bright day", "cold dark storm", "the sky was very grey and harsh today"]


@pytest.fixture(scope="module")
def teacher():
    tok = build_family_tokenizer("bert")
    model = build_family_model("bert", vocab_size=len(tok), pad_token_id=tok.pad_token_id)
    model.config.id2label, model.config.label2id = {0: "neg", 1: "pos"}, {"neg": 0, "pos": 1}
    return model, tok


def _inputs(tok, texts=TEXTS):
    enc = tok(texts, padding=True, return_tensors="pt", return_token_type_ids=False)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def _logits(model, inputs):
    with torch.no_grad():
        return model.eval()(**inputs).logits


def test_built_from_the_teachers_embeddings_with_its_labels(teacher):
    from slimtune.models.bag import bag_from

    model, tok = teacher
    bag = bag_from(model, seed=0)
    assert bag.config.model_type == "slimtune-bag" and bag.config.num_hidden_layers == 0
    assert bag.config.id2label == {0: "neg", 1: "pos"} and bag.config.pad_token_id == tok.pad_token_id
    assert torch.equal(bag.get_input_embeddings().weight, model.get_input_embeddings().weight)
    assert torch.equal(bag.norm.weight, model.bert.embeddings.LayerNorm.weight)
    bag.get_input_embeddings().weight.data += 1  # a copy: the teacher keeps its own
    assert not torch.equal(bag.get_input_embeddings().weight, model.get_input_embeddings().weight)


@pytest.mark.parametrize("family", ["modernbert", "electra", "distilbert"])
def test_every_kind_of_embedding_gives_a_student(family):
    """ModernBERT's norm has no bias; ELECTRA's embeddings are narrower than its hidden size."""
    from slimtune.models.bag import bag_from

    tok = build_family_tokenizer(family)
    model = build_family_model(family, vocab_size=len(tok), pad_token_id=tok.pad_token_id)
    bag = bag_from(model)
    assert bag.config.hidden_size == model.get_input_embeddings().embedding_dim
    assert bag.config.embedding_norm and bag.config.norm_bias == (family != "modernbert")
    assert _logits(bag, _inputs(tok)).shape == (3, 2)


def test_padding_does_not_count(teacher):
    """A masked mean: the same text alone or padded beside a longer one gives the same logits."""
    from slimtune.models.bag import bag_from

    model, tok = teacher
    bag = bag_from(model, seed=0)
    alone = _logits(bag, _inputs(tok, TEXTS[1:2]))
    padded = _logits(bag, _inputs(tok))[1:2]
    assert torch.allclose(alone, padded, atol=1e-6)


def test_shape_size_flops_and_latency_through_an_adapter_without_layers(teacher):
    from slimtune.exporting.latency_model import LatencyModel
    from slimtune.models import num_parameters, size_mb
    from slimtune.models.bag import bag_from
    from slimtune.models.families import family_of
    from slimtune.models.surgery import encoder_flops, encoder_layers, model_layer_shape, model_shape
    from slimtune.searching.space import TeacherInfo

    model, _ = teacher
    bag = bag_from(model)
    assert family_of(bag).model_types == ("slimtune-bag",) and len(encoder_layers(bag)) == 0
    assert model_shape(bag) is None and model_layer_shape(bag) == [] and encoder_flops(bag, 128) == 0
    vocab, width = model.get_input_embeddings().weight.shape
    assert num_parameters(bag) == vocab * width + 2 * width + (width * width + width) + (width * 2 + 2)
    assert size_mb(bag) == num_parameters(bag) * 4 / 1e6
    latency = LatencyModel(family="bert", hidden_size=width, num_heads=4, ffn=64, seq=128, batch=1, threads=1,
                           terms={"fp32": {"fixed": 0.3, "c0": 0.1, "per_head": 0.05, "per_neuron": 0.001}})
    assert latency.predict_model(bag) == 0.3  # the fixed part alone: embeddings, head, the runtime
    info = TeacherInfo.from_config(bag.config)
    assert (info.family, info.num_layers, info.num_heads, info.ffn) == ("slimtune-bag", 0, 0, 0)


def test_vocabulary_cut_keeps_the_logits_of_kept_pieces(teacher):
    from slimtune.models.bag import bag_from
    from slimtune.models.vocab import kept_ids, prune_vocab

    model, tok = teacher
    bag = bag_from(model, seed=0)
    before = _logits(bag, _inputs(tok))
    used = {i for ids in tok(TEXTS)["input_ids"] for i in ids}
    bag, small = prune_vocab(bag, tok, kept_ids(tok, used))
    assert bag.config.vocab_size == len(small) < len(tok)
    assert torch.allclose(_logits(bag, _inputs(small)), before, atol=1e-6)


def test_saves_and_reloads_through_the_auto_classes(teacher, tmp_path):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from slimtune.models import load_classifier, read_model_info, save_model
    from slimtune.models.bag import BagForSequenceClassification, bag_from

    model, tok = teacher
    bag = bag_from(model, seed=0)
    save_model(bag, tok, tmp_path, {"label_names": ["neg", "pos"]})
    assert read_model_info(tmp_path)["shape"] is None
    assert AutoConfig.from_pretrained(tmp_path).model_type == "slimtune-bag"
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert isinstance(again, BagForSequenceClassification)
    loaded = load_classifier(str(tmp_path), ("neg", "pos"))
    inputs = _inputs(tok)
    assert torch.equal(_logits(again, inputs), _logits(bag, inputs))
    assert torch.equal(_logits(loaded, inputs), _logits(bag, inputs))


def test_onnx_export_matches_pytorch(teacher, tmp_path):
    from slimtune.exporting.onnx_export import check_parity, export_onnx, parity
    from slimtune.models.bag import bag_from

    model, tok = teacher
    bag = bag_from(model, seed=0).eval()
    feeds = [{k: v.numpy() for k, v in _inputs(tok, texts).items()} for texts in (TEXTS, TEXTS[:1], TEXTS[1:])]
    report = parity(bag, export_onnx(bag, tmp_path / "model.onnx"), feeds)
    assert report["samples"] == 6 and report["same_predictions"]
    assert _logits(bag, _inputs(tok)).abs().max() > 0.05  # logits large enough for the check to mean something
    check_parity(report)  # the export's own gate: max |diff| within 1e-4


def test_prune_refuses_it_in_one_line(teacher, tmp_path):
    from slimtune.errors import SlimtuneError
    from slimtune.models import save_model
    from slimtune.models.bag import bag_from
    from slimtune.pruning import PruneSpec, run_prune

    model, tok = teacher
    save_model(bag_from(model), tok, tmp_path / "bag", {})
    with pytest.raises(SlimtuneError, match=r"^--model: .* has no layers to prune \(a zero-layer student\)"):
        run_prune(PruneSpec(str(tmp_path / "bag"), "unused.csv", str(tmp_path / "out"), heads=0.5))
