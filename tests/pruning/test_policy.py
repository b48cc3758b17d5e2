import pytest
import torch

from slimtune.pruning.policy import evenly_spaced_layers, keep_per_layer


def test_layer_scope_keeps_the_top_share_of_each_layer():
    scores = [torch.tensor([0.1, 0.9, 0.5, 0.3]), torch.tensor([5.0, 1.0, 3.0, 4.0])]
    assert keep_per_layer(scores, 0.5) == [[1, 2], [0, 3]]


def test_global_scope_cuts_unevenly_but_keeps_one_per_layer():
    scores = [torch.tensor([1.0, 1.0, 1.0, 1.0]), torch.tensor([0.01, 0.01, 8.0, 0.01])]
    keep = keep_per_layer(scores, 0.5, scope="global")
    assert keep[1] == [2] and len(keep[0]) == 4  # layer-normalised: the flat layer keeps all
    assert keep_per_layer([torch.tensor([1.0, 2.0])], 0.99, scope="global") == [[1]]


def test_evenly_spaced_layers_keep_the_last():
    assert evenly_spaced_layers(6, 3) == [0, 2, 5]  # round(2.5) is 2: Python rounds half to even
    assert evenly_spaced_layers(12, 4) == [0, 4, 7, 11]
    assert evenly_spaced_layers(6, 1) == [5]
    with pytest.raises(ValueError):
        evenly_spaced_layers(6, 7)


def test_one_ratio_per_layer():
    scores = [torch.tensor([0.1, 0.9, 0.5, 0.3]), torch.tensor([5.0, 1.0, 3.0, 4.0])]
    assert keep_per_layer(scores, [0.75, 0.0]) == [[1], [0, 1, 2, 3]]
    with pytest.raises(ValueError, match="one per layer"):
        keep_per_layer(scores, [0.5])
