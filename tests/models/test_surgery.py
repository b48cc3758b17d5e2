"""Surgery hazards beyond tests/models/test_families.py: MPNet's position bias across two rounds of
head pruning, the one-head floor, and hidden-width pruning (every weight along the stream cut,
exact reload, the strongest dimensions kept). Removal against masking, reload and ONNX parity for
every family are in test_families.py."""

import copy

import pytest
import torch

from slimtune.models.load import load_classifier, save_model
from slimtune.models.surgery import model_shape, prune_heads
from tests.helpers import build_tiny_bert, build_tokenizer, prune_uneven


def tiny_mpnet(num_labels=2):
    from transformers import MPNetConfig, MPNetForSequenceClassification

    torch.manual_seed(0)
    config = MPNetConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=80, num_labels=num_labels,
                         relative_attention_num_buckets=32)
    return MPNetForSequenceClassification(config).eval()


MODELS = {"bert": lambda: build_tiny_bert().eval(), "mpnet": tiny_mpnet}
HEADS = {0: [0, 2], 1: [3]}  # uneven on purpose: per-layer shapes must survive a reload
FFN = {0: list(range(0, 64, 2)), 1: list(range(40))}


def _inputs():
    torch.manual_seed(1)
    ids = torch.randint(5, 64, (3, 11))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _pruned(model):
    return prune_uneven(model, HEADS, FFN)


@pytest.mark.parametrize("arch", ["bert", "mpnet"])
def test_pruning_twice_composes(arch):
    """MPNet's per-head position bias must follow the original head numbering across rounds."""
    model = MODELS[arch]()
    once = copy.deepcopy(model)
    prune_heads(once, 0, [1, 3])
    prune_heads(once, 0, [1])  # keeps original head 3
    direct = copy.deepcopy(model)
    prune_heads(direct, 0, [3])
    with torch.no_grad():
        assert torch.allclose(once(**_inputs()).logits, direct(**_inputs()).logits, atol=1e-6)


def test_at_least_one_head_stays():
    with pytest.raises(ValueError):
        prune_heads(build_tiny_bert(), 0, [])


@pytest.mark.parametrize("arch", ["bert", "mpnet"])
def test_hidden_width_cut_everywhere_and_reloads_exactly(arch, tmp_path):
    """Narrowing the residual stream: every weight along it shrinks, heads keep their size, and the
    saved model (heads, FFN, layers and width all cut) rebuilds with identical logits."""
    from slimtune.models.surgery import hidden_slices, prune_hidden

    model = _pruned(MODELS[arch]())
    before = sum(p.numel() for p in model.parameters())
    keep = [0, 3, 5, 8, 13, 21, 22, 30]
    prune_hidden(model, keep)
    assert model.config.hidden_size == 8
    assert all(getattr(m, name).shape[dim] == 8 for m, name, dim in hidden_slices(model))
    assert sum(p.numel() for p in model.parameters()) < before
    with torch.no_grad():
        logits = model(**_inputs()).logits
    assert logits.shape == (3, 2) and torch.isfinite(logits).all()
    model.config.id2label, model.config.label2id = {0: "neg", 1: "pos"}, {"neg": 0, "pos": 1}
    save_model(model, build_tokenizer(), tmp_path, {})
    again = load_classifier(str(tmp_path), ("neg", "pos")).eval()
    assert model_shape(again) == model_shape(model) and model_shape(model)["head_size"] == 8
    with torch.no_grad():
        assert torch.equal(logits, again(**_inputs()).logits)


@pytest.mark.parametrize("arch", ["bert", "mpnet"])
def test_hidden_pruning_keeps_the_strong_dimensions(arch):
    """Dimensions whose weights are large everywhere along the stream rank first."""
    from slimtune.models.surgery import hidden_slices
    from slimtune.pruning.importance import hidden_scores
    from slimtune.pruning.run import apply_pruning

    model = MODELS[arch]()
    strong = torch.tensor([2, 7, 11, 19, 23, 26, 28, 31])
    with torch.no_grad():
        for m, name, dim in hidden_slices(model):
            getattr(m, name).index_fill_(dim, strong, 3.0)
    assert set(torch.topk(hidden_scores(model), 8).indices.tolist()) == set(strong.tolist())
    record = apply_pruning(model, hidden=0.75)
    assert record["hidden_size"] == model.config.hidden_size == 8
    emb = model.base_model.embeddings.word_embeddings.weight
    assert torch.all(emb == 3.0)  # exactly the strong columns survived


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_a_head_with_as_many_labels_as_hidden_dimensions_keeps_its_labels(family):
    """Only the adapter says which Linear makes the logits: matching sizes would cut 32 labels to 8."""
    from slimtune.models.surgery import prune_hidden
    from tests.helpers import build_family_model

    model = build_family_model(family, num_labels=32)  # hidden 32
    prune_hidden(model, list(range(8)))
    with torch.no_grad():
        assert model(input_ids=torch.tensor([[5, 6, 7]])).logits.shape == (1, 32)
