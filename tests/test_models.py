"""The two networks have exactly the paper's parameter counts and the described structure."""

import pytest
import torch

from abn import modulators
from abn.layers import DynamicModulatedConv2d
from abn.models import (MODELS, ResNet, build_model, count_parameters, evaluating, resnet_dmb,
                        resnet_s, shared_tensors)


def test_parameter_counts_equal_the_paper():
    assert count_parameters(resnet_s()) == 2_777_674
    assert count_parameters(resnet_dmb()) == 2_957_794


def test_extra_parameters_per_block():
    """Each block of width P gains P^2 + 9P + 4 (conv bias P, W P^2, gate 4P + 4, bank 4P)."""
    extra = sum(2 * (p * p + 9 * p + 4) for p in (64, 128, 256))
    assert extra == 180_120 == count_parameters(resnet_dmb()) - count_parameters(resnet_s())
    w_share = sum(2 * p * p for p in (64, 128, 256)) / extra
    assert round(100 * w_share, 1) == 95.5


def test_dmb_replaces_every_second_conv():
    model = resnet_dmb()
    mods = [n for n, m in model.named_modules() if isinstance(m, DynamicModulatedConv2d)]
    assert mods == [f"layer{s}.{b}.conv2" for s in (1, 2, 3) for b in (0, 1)]
    assert all(model.get_submodule(n).dmb.num_biases == 4 for n in mods)
    assert not any(isinstance(m, DynamicModulatedConv2d) for m in resnet_s().modules())


@pytest.mark.parametrize("width", [0.125, 0.25, 1.0])
def test_forward_shapes_and_width(width):
    for model in (resnet_s(width=width), resnet_dmb(width=width)):
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
        assert model.fc.in_features == max(1, round(256 * width))


def test_narrow_models_are_smaller():
    assert count_parameters(resnet_s(width=0.25)) < count_parameters(resnet_s()) / 10


def test_build_model_and_modulator_registry():
    assert count_parameters(build_model("resnet_dmb", num_biases=4)) == 2_957_794
    assert "dmb" in modulators.names() and "none" in modulators.names()
    k8 = build_model("resnet_dmb", num_biases=8)
    assert count_parameters(k8) - count_parameters(resnet_s()) == sum(
        2 * (p * p + p + 8 * p + 8 + 8 * p) for p in (64, 128, 256))
    with pytest.raises(ValueError, match="Unknown model"):
        build_model("resnet_x")
    with pytest.raises(ValueError, match="Unknown modulator"):
        modulators.get("nope")
    with pytest.raises(ValueError, match="width must be positive"):
        ResNet(width=0)


def test_bad_image_shape():
    with pytest.raises(ValueError, match=r"\(batch, 3, H, W\)"):
        resnet_s(width=0.125)(torch.randn(2, 1, 32, 32))


def test_evaluating_restores_the_mode_even_after_an_error():
    model = resnet_s(width=0.125).train()
    with evaluating(model):
        assert not model.training and not model.layer1[0].bn1.training
    assert model.training and model.layer1[0].bn1.training
    frozen = resnet_s(width=0.125).eval()
    with pytest.raises(RuntimeError, match="boom"):
        with evaluating(frozen):
            raise RuntimeError("boom")
    assert not frozen.training
    model.train()
    with pytest.raises(RuntimeError, match="boom"):
        with evaluating(model):
            raise RuntimeError("boom")
    assert model.training


def modulator_tensor(name: str, variant: ResNet) -> bool:
    """Whether state-dict tensor ``name`` of ``variant`` belongs to its modulator (a gate,
    a DMB or gain layer inside conv2, conv2's own bias): what pairing leaves alone."""
    parts = name.split(".")
    return (".gate." in f".{name}" or any(p in ("dmb", "gain") for p in parts)
            or (parts[-2:] == ["conv2", "bias"] and variant.modulator_name != "none"))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_same_seed_pairs_every_tensor_shared_with_resnet_s(name):
    """For the same seed, every parameter and buffer a variant shares with ResNet-S (same
    name, same shape) starts identical, however many random numbers its gates draw and
    wherever they sit; a different seed changes them; the caller's stream is untouched."""
    width, seed = 0.125, 3
    torch.manual_seed(123)
    before = torch.get_rng_state()
    base, variant = build_model("resnet_s", width, seed=seed), build_model(name, width, seed=seed)
    assert torch.equal(torch.get_rng_state(), before)  # nothing after the build depends on it
    base_state, state = base.state_dict(), variant.state_dict()
    shared = shared_tensors(variant, base)
    unshared = [k for k in state if k not in shared]
    assert not [k for k in shared if not torch.equal(state[k], base_state[k])]
    if name != "resnet_s_wide":  # the same width: everything but the modulator is shared
        assert all(modulator_tensor(k, variant) for k in unshared), unshared
        assert len(shared) == len(base_state)
    # The seed decides: another seed gives other shared weights (checked on a conv that
    # comes after the first gate, where a common stream used to drift apart).
    other = build_model(name, width, seed=seed + 1).state_dict()
    conv = "fc.weight" if name == "resnet_s_wide" else "layer3.1.conv1.weight"
    assert conv in shared or name == "resnet_s_wide"
    assert not torch.equal(other[conv], state[conv])
    # Building again with the seed reproduces the modulator's own tensors too.
    again = build_model(name, width, seed=seed).state_dict()
    assert all(torch.equal(again[k], v) for k, v in state.items())


def test_a_common_stream_would_not_pair():
    """Why build_model takes the seed: seeding once and building from the global stream
    gives ResNet-S and ResNet-DMB different convs after the first gate."""
    torch.manual_seed(0)
    s = resnet_s(width=0.125).state_dict()
    torch.manual_seed(0)
    d = resnet_dmb(width=0.125).state_dict()
    assert torch.equal(s["layer1.0.conv1.weight"], d["layer1.0.conv1.weight"])
    assert not torch.equal(s["layer1.1.conv1.weight"], d["layer1.1.conv1.weight"])
