"""Importance finds the unit that does nothing, by magnitude and by Taylor."""

import torch

from slimtune.data.tokenize import PadCollator, encode
from slimtune.models.surgery import encoder_layers
from slimtune.pruning.importance import magnitude_scores, taylor_scores
from slimtune.train.loop import cross_entropy_loss
from tests.helpers import build_tiny_bert, build_tokenizer, make_texts


def _silence_head_and_neuron(model):
    with torch.no_grad():
        sa = encoder_layers(model)[0].attention.self
        for m in (sa.query, sa.key, sa.value):
            m.weight[8:16] = 0  # head 1 of 4 (head size 8)
            m.bias[8:16] = 0
        encoder_layers(model)[0].attention.output.dense.weight[:, 8:16] = 0
        ffn = encoder_layers(model)[0]
        ffn.intermediate.dense.weight[7] = 0
        ffn.intermediate.dense.bias[7] = 0
        ffn.output.dense.weight[:, 7] = 0


def test_magnitude_and_taylor_rank_a_dead_unit_last():
    tok = build_tokenizer()
    model = build_tiny_bert(vocab_size=len(tok))
    _silence_head_and_neuron(model)
    heads, ffn = magnitude_scores(model)
    assert heads[0].argmin() == 1 and ffn[0].argmin() == 7
    frame = make_texts(32)
    split = encode(frame["text"], (frame["label"] == "pos").astype(int), tok, 32)
    batches = [PadCollator(tok.pad_token_id)([split[i] for i in range(s, s + 8)]) for s in range(0, 32, 8)]
    heads, ffn = taylor_scores(model, batches, cross_entropy_loss)
    assert heads[0][1] == 0 and ffn[0][7] == 0
    assert all(p.grad is None for p in model.parameters())  # scoring leaves no gradients behind
