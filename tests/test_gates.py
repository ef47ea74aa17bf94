"""Gate recording sees every modulated layer and leaves the outputs bit-identical."""

import pytest
import torch

from abn.gates import gated_layers, record_gates
from abn.models import MODELS, build_model, resnet_dmb, resnet_s

GATED = [n for n in MODELS if n not in ("resnet_s", "resnet_s_wide")]


def trained_looking(model):
    """Non-zero bias banks, so that alpha actually shapes m."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "bias_bank" in name:
                p.copy_(torch.randn(p.shape, generator=g))
    return model.eval()


@pytest.mark.parametrize("name", GATED)
def test_recording_leaves_outputs_bit_identical(name):
    """Every gated variant: the same logits with and without a recorder, one entry per
    gated layer, m in (0, 2), alpha exactly where there is a bias bank."""
    model = trained_looking(build_model(name, width=0.125))
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        plain = model(x)
        with record_gates(model) as gates:
            recorded = model(x)
        after = model(x)
    assert torch.equal(plain, recorded) and torch.equal(plain, after)
    assert len(gates) == 6 and list(gates) == list(gated_layers(model))
    for layer in gates.values():
        m = layer.modulation
        assert m.shape[0] == 3 and ((m > 0) & (m < 2)).all()
    has_bank = name in ("resnet_dmb", "resnet_dmb_k1", "resnet_dmb_k8")
    assert bool(gates.weights()) == has_bank


def test_recorded_values():
    model = trained_looking(resnet_dmb(width=0.25, num_biases=3))
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad(), record_gates(model) as gates:
        model(x[:2])
        model(x[2:])  # batches concatenate in order
    for name, layer in gates.items():
        m, alpha = layer.modulation, layer.weights
        width = model.get_submodule(name).out_channels
        assert m.shape == (5, width) and alpha.shape == (5, 3)
        assert ((m > 0) & (m < 2)).all()
        torch.testing.assert_close(alpha.sum(dim=1), torch.ones(5))
    # The recorded m is the one the layer applied: recompute it for the first layer.
    first = model.layer1[0]
    with torch.no_grad():
        h = torch.relu(first.bn1(first.conv1(model.stem(x))))
        m_direct, _ = first.conv2.modulation(h)
    torch.testing.assert_close(gates["layer1.0.conv2"].modulation, m_direct)
    assert set(gates.modulation()) == set(gates.weights()) == set(gates)


def test_recorder_is_removed_even_after_an_error():
    model = resnet_dmb(width=0.125)
    with pytest.raises(RuntimeError):
        with record_gates(model):
            raise RuntimeError("boom")
    assert all(m._gate_sink is None for m in gated_layers(model).values())


def test_models_without_gates_are_refused():
    with pytest.raises(ValueError, match="no gated layers"):
        with record_gates(resnet_s(width=0.125)):
            pass
