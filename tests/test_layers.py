"""The two layers compute exactly the formulas of the paper (checked in float64)."""

import pytest
import torch

from abn.layers import DynamicModulatedConv2d, DynamicMultiBiasLinear


def dmb_formula(x, W, G, g, B):
    """y = x W^T + softmax(x G^T + g) B^T, written out with explicit sums."""
    logits = torch.einsum("bi,ki->bk", x, G) + g
    alpha = torch.exp(logits - logits.max(dim=1, keepdim=True).values)
    alpha = alpha / alpha.sum(dim=1, keepdim=True)
    return torch.einsum("bi,oi->bo", x, W) + torch.einsum("bk,ok->bo", alpha, B)


def test_dmb_linear_equals_formula(randomize):
    layer = DynamicMultiBiasLinear(7, 5, num_biases=3).double()
    randomize(layer)
    assert layer.bias_bank.abs().min() > 0  # a zero bank would hide a wrong mixing term
    x = torch.randn(11, 7, dtype=torch.float64)
    want = dmb_formula(x, layer.weight, layer.gate.weight, layer.gate.bias, layer.bias_bank)
    torch.testing.assert_close(layer(x), want, rtol=1e-12, atol=1e-12)


def test_dmb_linear_parameters_and_init():
    layer = DynamicMultiBiasLinear(6, 4, num_biases=3)
    assert layer.weight.shape == (4, 6) and layer.bias_bank.shape == (4, 3)
    assert layer.gate.weight.shape == (3, 6) and layer.gate.bias.shape == (3,)
    assert sum(p.numel() for p in layer.parameters()) == 4 * 6 + 3 * 6 + 3 + 4 * 3
    assert torch.count_nonzero(layer.bias_bank) == 0  # zero-initialised bank
    x = torch.randn(2, 6)
    torch.testing.assert_close(layer(x), x @ layer.weight.t())  # at init: bias-free linear


def test_mixing_weights_are_a_distribution_shared_by_all_outputs():
    layer = DynamicMultiBiasLinear(5, 9, num_biases=4)
    _, alpha = layer.forward_with_weights(torch.randn(3, 5))
    assert alpha.shape == (3, 4)
    torch.testing.assert_close(alpha.sum(dim=1), torch.ones(3))


def test_modulated_conv_equals_formula(randomize):
    layer = DynamicModulatedConv2d(3, 6, 3, num_biases=4, padding=1).double()
    randomize(layer, seed=1)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    d = layer.dmb
    gap = x.mean(dim=(2, 3))
    m = 1 + torch.tanh(dmb_formula(gap, d.weight, d.gate.weight, d.gate.bias, d.bias_bank))
    conv = torch.nn.functional.conv2d(x, layer.weight, layer.bias, padding=1)
    torch.testing.assert_close(layer(x), conv * m[:, :, None, None], rtol=1e-12, atol=1e-12)
    assert ((m > 0) & (m < 2)).all()


def test_modulated_conv_keeps_conv_bias_and_kwargs():
    layer = DynamicModulatedConv2d(4, 8, 3, stride=2, padding=1)
    assert layer.bias is not None and layer.bias.shape == (8,)
    assert layer(torch.randn(2, 4, 8, 8)).shape == (2, 8, 4, 4)
    assert DynamicModulatedConv2d(4, 8, 3, bias=False).bias is None


def test_gradcheck(randomize):
    lin = DynamicMultiBiasLinear(4, 3, num_biases=2).double()
    randomize(lin, seed=2)
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lin, (x,))
    conv = DynamicModulatedConv2d(2, 3, 3, num_biases=2, padding=1).double()
    randomize(conv, seed=3)
    xc = torch.randn(2, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(conv, (xc,))


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_num_biases_must_be_positive(bad):
    with pytest.raises(ValueError, match="num_biases must be a positive integer"):
        DynamicMultiBiasLinear(4, 3, num_biases=bad)
    with pytest.raises(ValueError, match="num_biases must be a positive integer"):
        DynamicModulatedConv2d(4, 3, 3, num_biases=bad)


def test_wrong_inputs_give_clear_errors():
    lin = DynamicMultiBiasLinear(4, 3)
    with pytest.raises(ValueError, match="2-D input.*unsqueeze"):
        lin(torch.randn(4))
    with pytest.raises(ValueError, match="built for 4 input.*got 5"):
        lin(torch.randn(2, 5))
    conv = DynamicModulatedConv2d(3, 8, 3)
    with pytest.raises(ValueError, match="4-D input.*unsqueeze"):
        conv(torch.randn(3, 8, 8))
    with pytest.raises(ValueError, match="built for 3 input.*got 1"):
        conv(torch.randn(2, 1, 8, 8))
