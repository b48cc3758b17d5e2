"""Every family through its adapter, on tiny models built offline (hidden 32, 3 layers, logits of
order 1; tolerances relative to the logits' scale): removing heads, FFN neurons and layers equals
masking them, uneven per-layer shapes and a narrowed width save and reload exactly, and the pruned,
narrowed model passes ONNX parity."""

import copy

import pytest
import torch

from slimtune.models.families import family_of
from slimtune.models.surgery import encoder_flops, encoder_layers, keep_layers, model_shape, num_heads, prune_hidden
from tests.helpers import FAMILIES, build_family_model, build_family_tokenizer, prune_uneven

VARIANTS = [(f, {}) for f in FAMILIES] + [("deberta-v2", {"share_att_key": False})]
IDS = [f if not kw else f"{f}-separate-pos-proj" for f, kw in VARIANTS]
HEADS = {0: [0, 2], 1: [3], 2: [1, 2, 3]}  # uneven on purpose
FFN = {0: list(range(0, 64, 2)), 1: list(range(40)), 2: [5]}


@pytest.fixture(scope="module", params=VARIANTS, ids=IDS)
def case(request):
    family, kwargs = request.param
    tok = build_family_tokenizer(family)
    model = build_family_model(family, vocab_size=len(tok), pad_token_id=tok.pad_token_id, **kwargs)
    batch = tok(["sunny warm golden day", "dark cold storm today and very grey sky", "calm"], padding=True,
                return_tensors="pt")
    return family, model, tok, {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def _logits(model, inputs):
    with torch.no_grad():
        return model(**inputs).logits


def _close(a, b, rel=1e-5):
    scale = b.abs().max().item()
    assert scale > 0.1, "logits too small for the comparison to mean anything"
    assert (a - b).abs().max().item() <= rel * scale


def _masked(model):
    """The same function by zeroing: a removed head's output-projection columns and a removed
    neuron's second-projection column make their contributions zero in every family."""
    masked = copy.deepcopy(model)
    family = family_of(masked)
    with torch.no_grad():
        for i, layer in enumerate(encoder_layers(masked)):
            o = family.head_parts(layer)[-1].module
            size = family.head_size(layer)
            for h in set(range(4)) - set(HEADS[i]):
                o.weight[:, h * size:(h + 1) * size] = 0
            down = family.ffn_parts(layer)[-1].module
            down.weight[:, sorted(set(range(64)) - set(FFN[i]))] = 0
    return masked


def _pruned(model):
    return prune_uneven(model, HEADS, FFN)


def test_removing_heads_and_neurons_equals_masking(case):
    family, model, _, inputs = case
    pruned = _pruned(model)
    assert [num_heads(layer, pruned) for layer in encoder_layers(pruned)] == [2, 1, 3]
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())
    assert encoder_flops(pruned) < encoder_flops(model)
    _close(_logits(pruned, inputs), _logits(_masked(model), inputs))


def test_removing_layers_equals_skipping_them(case):
    """Dropping layer 0 and 2 equals running the model with those layers as identities (and keeps,
    for ModernBERT, each kept layer's kind of attention)."""
    family, model, _, inputs = case

    def skip(module, args, kwargs, output):
        hidden = args[0] if args else kwargs["hidden_states"]
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    skipped = copy.deepcopy(model)
    for i in (0, 2):
        encoder_layers(skipped)[i].register_forward_hook(skip, with_kwargs=True)
    dropped = copy.deepcopy(model)
    keep_layers(dropped, [1])
    assert dropped.config.num_hidden_layers == 1
    if family == "modernbert":
        assert dropped.config.layer_types == [model.config.layer_types[1]]
    _close(_logits(dropped, inputs), _logits(skipped, inputs))


def test_uneven_shapes_and_narrowing_save_and_reload_exactly(case, tmp_path):
    from slimtune.models.load import load_classifier, save_model

    family, model, tok, inputs = case
    pruned = _pruned(model)
    keep_layers(pruned, [1, 2])  # layer 0 goes: ModernBERT's new first layer keeps its attention norm
    prune_hidden(pruned, list(range(0, 32, 2)))
    pruned.config.id2label, pruned.config.label2id = {0: "neg", 1: "pos"}, {"neg": 0, "pos": 1}
    save_model(pruned, tok, tmp_path, {})
    again = load_classifier(str(tmp_path), ("neg", "pos")).eval()
    assert model_shape(again) == model_shape(pruned) is not None
    assert torch.equal(_logits(pruned.eval(), inputs), _logits(again, inputs))


def test_pruned_model_passes_onnx_parity(case, tmp_path):
    from slimtune.exporting.onnx_export import export_onnx, parity

    family, model, _, inputs = case
    pruned = _pruned(model)
    keep_layers(pruned, [0, 2])
    prune_hidden(pruned, list(range(0, 32, 2)))
    path = export_onnx(pruned, tmp_path / "model.onnx")
    check = parity(pruned.eval(), path, [{k: v.numpy() for k, v in inputs.items()}])
    assert check["same_predictions"] and check["max_abs_diff"] <= 1e-4 * max(1.0, _logits(pruned, inputs).abs().max().item())
