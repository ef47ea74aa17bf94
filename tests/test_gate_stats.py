"""abn.gate_stats on known inputs (no training): the across-image coefficient of variation."""

from __future__ import annotations

import pytest
import torch

from abn.gate_stats import across_image_cv, cv_summary, layer_summary


def test_across_image_cv_on_known_columns():
    m = torch.tensor([[1.0, 0.5, 2.0],
                      [1.0, 1.5, 1.0],
                      [1.0, 1.0, 0.0]])
    # column 0 constant: 0; column 1: std 0.5, mean 1; column 2: std 1, mean 1
    torch.testing.assert_close(across_image_cv(m), torch.tensor([0.0, 0.5, 1.0]))


def test_cv_ignores_a_constant_factor_and_sees_variation():
    torch.manual_seed(0)
    m = 1 + 0.2 * torch.rand(50, 4)
    scale = torch.tensor([0.1, 0.5, 1.0, 1.9])  # what bn2 would erase
    torch.testing.assert_close(across_image_cv(m * scale), across_image_cv(m))
    assert (across_image_cv(m) > 0).all()


def test_cv_needs_two_images():
    with pytest.raises(ValueError, match="2 or more images"):
        across_image_cv(torch.ones(1, 3))


def test_cv_summary_and_layer_summary_agree():
    m = {"a": torch.tensor([[1.0, 0.5], [1.0, 1.5]]), "b": torch.tensor([[2.0], [2.0]])}
    table = cv_summary(m)
    expected_a = across_image_cv(m["a"])
    assert table.loc["a", "mean_cv"] == pytest.approx(expected_a.mean().item())
    assert table.loc["a", "max_cv"] == pytest.approx(expected_a.max().item())
    assert table.loc["b", "median_cv"] == 0.0 and table.loc["b", "channels"] == 1
    alpha = {k: torch.full((2, 4), 0.25) for k in m}
    assert layer_summary(m, alpha).loc["a", "image_cv"] == pytest.approx(expected_a.mean().item())
