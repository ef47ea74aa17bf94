"""abn.interventions: what bn2 leaves of a DMB gain, and the causal test of its input-dependence."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from abn import interventions as iv
from abn.data import normalize
from abn.gates import record_gates
from abn.layers import DynamicModulatedConv2d
from abn.models import BasicBlock, resnet_dmb, resnet_s
from abn.modulators import get


def dmb_block(seed: int = 0) -> BasicBlock:
    """A real BasicBlock with a DMB conv2 whose gate does something (random bank)."""
    torch.manual_seed(seed)
    block = BasicBlock(8, 8, 1, get("dmb"))
    with torch.no_grad():
        block.conv2.dmb.bias_bank.normal_(0, 0.5)
        block.conv2.dmb.gate.weight.normal_(0, 1.0)
    return block


# ---------------------------------------------------------------- bn2 and a constant gain

def test_constant_gain_is_erased_by_bn2_in_train_mode_and_in_matching_eval_mode():
    block, x = dmb_block(), torch.randn(32, 8, 6, 6)
    gain = torch.linspace(0.3, 1.9, 8)  # a different positive constant per channel
    default = iv.constant_gain_effect(block, x, gain)  # eps = 1e-5 leaks a little
    block = block.double()
    block.bn2.eps = 1e-15  # next to no eps (it must be > 0): erased up to rounding
    exact = iv.constant_gain_effect(block, x.double(), gain.double())
    for effect, tol in ((exact, 1e-9), (default, 1e-2)):
        assert effect["train mode: m = c vs m = 1"] < tol
        assert effect["train mode: c·m(x) vs m(x)"] < tol
        assert effect["eval mode, statistics gathered with each gain: m = c vs m = 1"] < tol
        # the same constant with running statistics gathered without it is NOT erased
        assert effect["eval mode, statistics gathered with m = 1: m = c vs m = 1"] > 0.1


def test_constant_gain_effect_by_hand_in_train_mode():
    """The same claim written out: a BasicBlock's output with m = c equals that with m = 1,
    and the block's own dynamic m does change it (the test can fail)."""
    block, x = dmb_block(1).train(), torch.randn(16, 8, 6, 6)
    with torch.no_grad():
        with iv.replace_gains(block, iv.constant_gain(0.4)):
            low = block(x)
        with iv.replace_gains(block, iv.constant_gain(1.0)):
            one = block(x)
        own = block(x)
    torch.testing.assert_close(low, one, atol=1e-2, rtol=0)
    assert (own - one).abs().max() > 0.05


def test_bn_eps_is_the_only_leak():
    """BN(c z) = (z - mu) / sqrt(var + eps / c^2): a tiny c leaks through eps."""
    bn = nn.BatchNorm2d(3, affine=False).train()
    z = torch.randn(10, 3, 4, 4)
    mu, var = z.mean(dim=(0, 2, 3), keepdim=True), z.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    for c in (0.01, 0.5, 3.0):
        torch.testing.assert_close(bn(c * z), (z - mu) / (var + bn.eps / c**2).sqrt())
    assert (bn(0.5 * z) - bn(z)).abs().max() < 1e-4  # var ~ 1 >> eps / c^2: erased
    small = z * 1e-3  # var ~ 1e-6, while eps / c^2 = 0.1 at c = 0.01: not erased
    assert (bn(0.01 * small) - bn(small)).abs().max() > 0.1


def test_replace_gains_restores_the_model_and_nests():
    model = resnet_dmb(width=0.125).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        with iv.replace_gains(model, iv.constant_gain(0.5)):
            with iv.replace_gains(model, iv.scaled_gain(2.0)):
                with record_gates(model) as rec:
                    model(x)
            with record_gates(model) as rec_outer:
                model(x)
        after = model(x)
    assert torch.equal(before, after)
    assert all(torch.equal(m, torch.ones_like(m)) for m in rec.modulation().values())
    assert all(torch.equal(m, torch.full_like(m, 0.5)) for m in rec_outer.modulation().values())
    assert not any("modulation" in mod.__dict__ for mod in iv.modulated_layers(model).values())
    with pytest.raises(ValueError, match="no gain-modulated"):
        with iv.replace_gains(resnet_s(width=0.125), iv.constant_gain(1.0)):
            pass


def test_shuffled_gains_permute_rows_deterministically():
    m = torch.arange(12.0).view(6, 2)
    a, b = iv.shuffled_gains(3)("l", m), iv.shuffled_gains(3)("l", m)
    assert torch.equal(a, b) and not torch.equal(a, m)
    assert torch.equal(a.sort(dim=0).values, m)  # same rows, new order


# ---------------------------------------------------------------- the causal test

def test_interventions_change_nothing_when_gains_are_constant():
    """ResNet-DMB with W = 0 and bank = 0: m = 1 + tanh(0) = 1 for every image, so the
    static mean and the shuffle are the same gains, and the logits do not move."""
    torch.manual_seed(0)
    model = resnet_dmb(width=0.125).eval()
    with torch.no_grad():
        for mod in iv.modulated_layers(model).values():
            mod.dmb.weight.zero_()
            mod.dmb.bias_bank.zero_()
    images = torch.randint(0, 256, (20, 3, 16, 16), dtype=torch.uint8)  # small: fast
    labels = torch.randint(0, 10, (20,))
    means = iv.mean_gains(model, images, batch_size=10)
    assert all(torch.equal(v, torch.ones_like(v)) for v in means.values())
    # "trained": running statistics gathered on the calibration images, with m = 1
    iv.recalibrate_bn(model, [normalize(images[:10]), normalize(images[10:])])
    test = iv.causal_test(model, images, labels, batch_size=10, means=means, calibration=images)
    assert set(test.accuracy) == {iv.AS_TRAINED, iv.STATIC, iv.RECALIBRATED, iv.SHUFFLED}
    assert set(test.drops.values()) == {0.0}
    assert set(test.lost.values()) == {0} and test.mcnemar_p(iv.STATIC) == 1.0
    x = normalize(images)
    with torch.no_grad():
        plain = model(x)
        for fn in (iv.static_gain(means), iv.shuffled_gains(0)):
            with iv.replace_gains(model, fn):
                assert torch.equal(model(x), plain)


class GainCarriesLabel(nn.Module):
    """A model whose only route from the input to the label is a DMB gain: the conv's
    output is the constant 1 (zero kernel, bias 1), and m_0 = 1 + tanh(5 * mean of
    channel 0) is about 2 for label 1 and about 0 for label 0; logit_1 = m_0 - 1."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = DynamicModulatedConv2d(2, 1, 1, num_biases=1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.fill_(1.0)
            self.conv.dmb.weight.copy_(torch.tensor([[5.0, 0.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m0 = self.conv(x).mean(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(m0), m0 - 1], dim=1)


def test_interventions_destroy_accuracy_when_the_gain_carries_the_label():
    torch.manual_seed(0)
    labels = torch.arange(200) % 2
    x = torch.randn(200, 2, 4, 4) * 0.1
    x[:, 0] += (2.0 * labels - 1)[:, None, None]  # channel 0: +1 for label 1, -1 for 0
    model = GainCarriesLabel()
    test = iv.causal_test(model, x, labels, batch_size=50, seed=0, calibration=x)
    assert test.accuracy[iv.AS_TRAINED] == 100.0
    assert test.accuracy[iv.RECALIBRATED] <= 60.0
    given = iv.causal_test(model, x, labels, batch_size=50, predicted=iv.predictions(model, x))
    assert given.accuracy == {k: v for k, v in test.accuracy.items() if k != iv.RECALIBRATED}
    assert test.accuracy[iv.STATIC] <= 60.0  # one static gain: one answer for all
    assert test.accuracy[iv.SHUFFLED] <= 75.0  # another image's gain: a coin flip
    assert test.drops[iv.STATIC] >= 40.0
    # the discordant images account for the drop, and McNemar sees it
    for kind in (iv.STATIC, iv.SHUFFLED):
        assert test.lost[kind] - test.gained[kind] == round(test.drops[kind] * 200 / 100)
    assert test.mcnemar_p(iv.STATIC) < 1e-6
    table = iv.causal_table({"only": test})
    assert table.loc[iv.STATIC, "images lost"] == test.lost[iv.STATIC]


def test_causal_table_interval_only_from_two_models():
    one = {"s0": iv.CausalTest({iv.AS_TRAINED: 50.0, iv.STATIC: 45.0, iv.SHUFFLED: 40.0}, 100, 0)}
    table = iv.causal_table(one)
    assert table.loc[iv.STATIC, "drop"] == 5.0 and "drop CI low" not in table
    two = {**one, "s1": iv.CausalTest({iv.AS_TRAINED: 52.0, iv.STATIC: 45.0, iv.SHUFFLED: 44.0}, 100, 0)}
    table = iv.causal_table(two)
    assert table.loc[iv.STATIC, "drop"] == 6.0
    assert table.loc[iv.STATIC, "drop CI low"] < 6.0 < table.loc[iv.STATIC, "drop CI high"]
    assert table.loc[iv.AS_TRAINED, "n models"] == 2
