"""Every modulator: shapes, parameter counts by formula, closed forms, gate recording,
every model reachable by name, and the parameter-matched wide baseline."""

import math

import pytest
import torch

from abn import modulators
from abn.gates import gated_layers, record_gates
from abn.layers import DynamicModulatedConv2d
from abn.models import (MODELS, STAGE_WIDTHS, build_model, count_parameters, matched_width,
                        parameter_table, plain_parameter_count, resnet_dmb, resnet_s,
                        resnet_s_wide, stage_widths)
from abn.modulators import GainModulatedConv2d, QueryKeyGate, SqueezeExcite

BLOCK_WIDTHS = [p for p in STAGE_WIDTHS for _ in range(2)]  # two blocks per stage


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# Extra parameters per block of width P, by formula (the table in abn/modulators.py).
EXTRA_PER_BLOCK = {
    "resnet_dmb": lambda P: P * P + P + 2 * 4 * P + 4,
    "resnet_dmb_k0": lambda P: P * P + P,
    "resnet_dmb_k1": lambda P: P * P + P + 2 * P + 1,  # includes the gradient-free G row
    "resnet_dmb_k8": lambda P: P * P + P + 2 * 8 * P + 8,
    "resnet_se": lambda P: 2 * P * (P // 16) + P // 16 + P,
    "resnet_se_var3": lambda P: P * P + P,
    "resnet_qk": lambda P: 2 * P * P + 2 * P + 1,
}


@pytest.mark.parametrize("name", sorted(EXTRA_PER_BLOCK))
def test_model_parameter_counts_by_formula(name):
    extra = sum(EXTRA_PER_BLOCK[name](p) for p in BLOCK_WIDTHS)
    assert count_parameters(build_model(name)) == 2_777_674 + extra


def test_parameter_table_lists_every_model():
    table = {row["model"]: row for row in parameter_table()}
    assert list(table) == list(MODELS)
    assert table["resnet_s"]["params"] == 2_777_674 and table["resnet_dmb"]["params"] == 2_957_794
    assert table["resnet_qk"]["extra"] == sum(EXTRA_PER_BLOCK["resnet_qk"](p) for p in BLOCK_WIDTHS)


@pytest.mark.parametrize("module, formula", [
    (lambda: GainModulatedConv2d(6, 5, 3, padding=1), 5 * 6 * 9 + 5 + 6 * 5),
    (lambda: SqueezeExcite(32), 2 * 32 * 2 + 2 + 32),
    (lambda: SqueezeExcite(8), 2 * 8 * 1 + 1 + 8),  # bottleneck never below one unit
    (lambda: SqueezeExcite(7, reduction=None), 7 * 7 + 7),  # SE-Var3: no bottleneck
    (lambda: QueryKeyGate(7), 2 * 7 * 7 + 2 * 7 + 1),
])
def test_module_parameter_counts(module, formula):
    assert n_params(module()) == formula


@pytest.mark.parametrize("gate", [SqueezeExcite(16), SqueezeExcite(16, None), QueryKeyGate(16)])
def test_gate_shapes(gate):
    h, delta = torch.randn(3, 16, 5, 5), torch.randn(3, 16, 5, 5)
    assert gate(h, delta).shape == delta.shape
    assert gate(h[:, :, 0, 0], delta[:, :, 0, 0]).shape == (3, 16)  # vectors pass un-pooled


def test_k0_equals_closed_form(randomize):
    conv = randomize(GainModulatedConv2d(4, 6, 3, padding=1).double())
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    m = 1 + torch.tanh(x.mean(dim=(2, 3)) @ conv.gain.weight.t())
    want = torch.nn.functional.conv2d(x, conv.weight, conv.bias, padding=1) * m[:, :, None, None]
    torch.testing.assert_close(conv(x), want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(conv.modulation(x)[0], m, rtol=1e-12, atol=1e-12)
    assert conv.modulation(x)[1] is None  # no bank, no alpha


def test_k1_is_a_static_bias(randomize):
    """softmax over one logit is 1: m = 1 + tanh(W GAP(x) + B[:, 0]), whatever G is."""
    conv = randomize(DynamicModulatedConv2d(4, 6, 3, num_biases=1, padding=1).double())
    x = torch.randn(3, 4, 7, 7, dtype=torch.float64)
    m, alpha = conv.modulation(x)
    want = 1 + torch.tanh(x.mean(dim=(2, 3)) @ conv.dmb.weight.t() + conv.dmb.bias_bank[:, 0])
    torch.testing.assert_close(m, want, rtol=1e-12, atol=1e-12)
    assert torch.equal(alpha, torch.ones(3, 1, dtype=torch.float64))
    conv(x).sum().backward()  # the G row is a parameter that never learns
    assert torch.count_nonzero(conv.dmb.gate.weight.grad) == 0


def test_se_and_se_var3_equal_their_formulas(randomize):
    h, delta = torch.randn(2, 32, 4, 4), torch.randn(2, 32, 4, 4)
    s = delta.mean(dim=(2, 3))
    se = randomize(SqueezeExcite(32))
    m = torch.sigmoid(se.fc2(torch.relu(se.fc1(s))))
    torch.testing.assert_close(se(h, delta), delta * m[:, :, None, None])
    var3 = randomize(SqueezeExcite(32, reduction=None))
    m = torch.sigmoid(s @ var3.fc.weight.t() + var3.fc.bias)
    torch.testing.assert_close(var3(h, delta), delta * m[:, :, None, None])


def test_qk_equals_formula_and_tau_init(randomize):
    gate = QueryKeyGate(9)
    assert gate.tau.item() == pytest.approx(3.0) and gate.tau.requires_grad  # sqrt(C)
    randomize(gate)
    h, delta = torch.randn(2, 9, 3, 3), torch.randn(2, 9, 3, 3)
    q = h.mean(dim=(2, 3)) @ gate.query.weight.t() + gate.query.bias
    k = delta.mean(dim=(2, 3)) @ gate.key.weight.t() + gate.key.bias
    g = torch.sigmoid(q * k / gate.tau)
    torch.testing.assert_close(gate(h, delta), g[:, :, None, None] * delta)
    with pytest.raises(ValueError, match="one shape"):
        gate(h, delta[:, :, :2])


def test_qk_on_sequences_is_pnns_elementwise_gate(randomize):
    """[batch, length, d] is gated per token and dimension with no pooling, as PNN's
    QueryKeyGate.forward (pnn/models/pnn.py) computes it, evaluated token by token."""
    gate = randomize(QueryKeyGate(6).double())
    h, delta = torch.randn(2, 2, 5, 6, dtype=torch.float64)
    want = torch.empty_like(delta)
    for b in range(2):
        for t in range(5):
            query = gate.query.weight @ h[b, t] + gate.query.bias
            key = gate.key.weight @ delta[b, t] + gate.key.bias
            want[b, t] = torch.sigmoid(query * key / gate.tau) * delta[b, t]
    with record_gates(gate) as gates:
        got = gate(h, delta)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert gates[""].modulation.shape == (10, 6)  # one row per token
    torch.testing.assert_close(gates[""].modulation.view(2, 5, 6), (want / delta).float())
    moved = delta.clone()
    moved[1, 3] += 1.0  # one token's update changes that token's output only
    changed = (gate(h, moved) != got).any(dim=2)
    assert changed.nonzero().tolist() == [[1, 3]]


def test_qk_rejects_inputs_it_cannot_read():
    gate = QueryKeyGate(6)
    with pytest.raises(ValueError, match="built for 6 channels, got 5"):
        gate(torch.randn(2, 3, 5), torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match="built for 6 channels, got 5"):
        gate(torch.randn(2, 5, 3, 3), torch.randn(2, 5, 3, 3))
    with pytest.raises(ValueError, match="batch x length x C"):
        gate(torch.randn(6), torch.randn(6))


def test_dmb_modulator_k_values():
    assert isinstance(modulators.get("dmb", num_biases=0).build_conv2(8), GainModulatedConv2d)
    assert modulators.get("dmb", num_biases=8).build_conv2(8).dmb.num_biases == 8
    with pytest.raises(ValueError, match="num_biases"):  # issue #2: K < 0 stays an error
        modulators.get("dmb", num_biases=-1).build_conv2(8)
    assert count_parameters(resnet_dmb(num_biases=0)) == count_parameters(build_model("resnet_dmb_k0"))


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_runs_at_quick_width(name):
    assert build_model(name, width=0.125)(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_plain_parameter_count_formula():
    for width in (0.125, 0.3, 1.0):
        assert plain_parameter_count(stage_widths(width)) == count_parameters(resnet_s(width))


@pytest.mark.parametrize("width", [1.0, 0.5, 0.25, 0.125])
def test_wide_baseline_within_one_percent(width):
    wide = count_parameters(resnet_s_wide(width))
    dmb = count_parameters(resnet_dmb(width=width))
    assert abs(wide - dmb) / dmb < 0.01
    assert not gated_layers(resnet_s_wide(width))


def test_wide_baseline_at_full_width():
    assert matched_width(1.0) == pytest.approx(1.03)
    model = resnet_s_wide()
    assert [model.layer1[0].conv1.out_channels, model.layer2[0].conv1.out_channels,
            model.fc.in_features] == [66, 132, 264]
    assert count_parameters(model) == 2_953_708
    assert math.isclose(count_parameters(model) / 2_957_794, 1, abs_tol=0.01)
