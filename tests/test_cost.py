"""abn.cost: counted multiply-adds equal the closed forms; latency is measured sanely."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import abn
from abn.cost import compare_cpu_latency, count_macs, cpu_latency, gate_multiplies, macs_by_module
from abn.models import BLOCKS_PER_STAGE, STAGE_STRIDES, STAGE_WIDTHS


@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 1), (1, 0)])
def test_conv2d_macs_equal_closed_form(stride: int, padding: int) -> None:
    conv = nn.Conv2d(5, 7, 3, stride=stride, padding=padding)
    h_out = (17 + 2 * padding - 3) // stride + 1
    assert count_macs(conv, (1, 5, 17, 17)) == 5 * 7 * 3 * 3 * h_out * h_out


def test_linear_macs_equal_closed_form_and_scale_with_batch() -> None:
    linear = nn.Linear(13, 11)
    assert count_macs(linear, (1, 13)) == 13 * 11
    assert count_macs(linear, (4, 13)) == 4 * 13 * 11


def _dmb_extra(num_biases: int = 4) -> tuple[int, int]:
    """Closed form: per block of width P on an S x S map, the gate's matrix products cost
    P^2 (W) + P K (G) + K P (bank B) MACs, and m scales P S^2 values."""
    macs = mults = 0
    side = 32
    for planes, stride in zip(STAGE_WIDTHS, STAGE_STRIDES):
        side //= stride
        macs += BLOCKS_PER_STAGE * (planes * planes + 2 * num_biases * planes)
        mults += BLOCKS_PER_STAGE * planes * side * side
    return macs, mults


def test_dmb_costs_the_closed_form_more_than_baseline() -> None:
    base, dmb = abn.resnet_s(), abn.resnet_dmb()
    extra_macs, extra_mults = _dmb_extra()
    assert count_macs(dmb) - count_macs(base) == extra_macs == 179_200
    assert gate_multiplies(base) == 0
    assert gate_multiplies(dmb) == extra_mults == 229_376


def test_dmb_extra_with_other_bank_size() -> None:
    base, dmb = abn.resnet_s(width=0.25), abn.resnet_dmb(num_biases=8, width=0.25)
    macs = 0
    for planes in (16, 32, 64):
        macs += BLOCKS_PER_STAGE * (planes * planes + 2 * 8 * planes)
    assert count_macs(dmb) - count_macs(base) == macs


def test_macs_by_module_adds_up_and_restores_mode() -> None:
    model = abn.resnet_s().train()
    per_module = macs_by_module(model)
    assert model.training  # the count runs in eval mode and restores the mode
    assert per_module[""] == count_macs(model)
    top = ["stem", "layer1", "layer2", "layer3", "fc"]
    assert sum(per_module[name] for name in top) == per_module[""]
    assert per_module["fc"] == 256 * 10


def test_cpu_latency_returns_positive_numbers() -> None:
    model = abn.resnet_s(width=0.125).train()
    threads = torch.get_num_threads()
    result = cpu_latency(model, batch_size=2, repeats=5, warmup=1)
    assert model.training and torch.get_num_threads() == threads  # both restored
    assert 0 < result["q1_ms"] <= result["median_ms"] <= result["q3_ms"]
    assert result["iqr_ms"] >= 0 and result["per_image_ms"] == pytest.approx(result["median_ms"] / 2)
    assert result["repeats"] == 5 and result["batch_size"] == 2 and result["threads"] == 1


def test_compare_cpu_latency_times_every_model_in_turns() -> None:
    models = {"s": abn.resnet_s(width=0.125), "dmb": abn.resnet_dmb(width=0.125).train()}
    result = compare_cpu_latency(models, repeats=4, warmup=1, threads=None)
    assert set(result) == {"s", "dmb"} and models["dmb"].training
    for row in result.values():
        assert row["median_ms"] > 0 and row["repeats"] == 4
        assert row["threads"] == torch.get_num_threads()


def test_cpu_latency_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="repeats"):
        cpu_latency(nn.Linear(3, 3), repeats=0)
    with pytest.raises(ValueError, match="threads"):
        cpu_latency(nn.Linear(3, 3), threads=0)
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="CPU"):
            cpu_latency(abn.resnet_s(width=0.125).cuda())
