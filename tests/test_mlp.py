"""abn.mlp: the MLPs with static and dynamic biases, their pairing, and the study on tiny data."""

import math

import pandas as pd
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from torch import nn

from abn import mlp
from abn.models import count_parameters as n_params
from abn.data import normalize
from abn.layers import DynamicMultiBiasLinear


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models (conftest.py)


# ----------------------------------------------------------------------------- models
@pytest.mark.parametrize("dynamic", [False, True])
def test_mlp_shapes_and_layers(dynamic):
    net = mlp.mlp(12, 7, dynamic, num_biases=3)
    assert net(torch.randn(5, 12)).shape == (5, mlp.CLASSES)
    hidden = (DynamicMultiBiasLinear if dynamic else nn.Linear)
    assert type(net[0]) is hidden and type(net[2]) is hidden
    assert type(net[4]) is nn.Linear and net[4].out_features == mlp.CLASSES
    if dynamic:
        assert net[0].num_biases == 3 and net[2].in_features == 7
    else:
        assert torch.count_nonzero(net[0].bias) == 0 and torch.count_nonzero(net[2].bias) == 0


@pytest.mark.parametrize("d, h, k", [(12, 7, 3), (768, 128, 4), (3072, 512, 4), (5, 1, 1)])
def test_parameter_formula_counts_the_built_models(d, h, k):
    for dynamic in (False, True):
        assert mlp.mlp_parameters(d, h, dynamic, k) == n_params(mlp.mlp(d, h, dynamic, k))
    extra = mlp.mlp_parameters(d, h, True, k) - mlp.mlp_parameters(d, h, False, k)
    assert extra == k * (d + 3 * h + 2) - 2 * h


@pytest.mark.parametrize("d, h, k", [(12, 7, 3), (768, 128, 4), (3072, 512, 4), (40, 3, 8)])
def test_matched_width_is_the_closest_static_mlp(d, h, k):
    target = mlp.mlp_parameters(d, h, True, k)
    width = mlp.matched_width(d, h, k)
    gap = abs(mlp.mlp_parameters(d, width, False) - target)
    assert all(gap <= abs(mlp.mlp_parameters(d, w, False) - target) for w in range(1, 4 * h + 10))
    assert width >= h  # DMB only adds parameters, so the control is at least as wide


def test_quick_recipe_is_matched_within_a_fraction_of_a_percent():
    rec = mlp.QUICK
    dmb = n_params(mlp.build(mlp.DYNAMIC, rec.in_features, rec.hidden, rec.num_biases, 0))
    wide = n_params(mlp.build(mlp.WIDE, rec.in_features, rec.hidden, rec.num_biases, 0))
    static = n_params(mlp.build(mlp.STATIC, rec.in_features, rec.hidden, rec.num_biases, 0))
    assert static < dmb and abs(wide - dmb) / dmb < 0.005


def test_build_refuses_an_unknown_model():
    with pytest.raises(ValueError, match="model must be one of"):
        mlp.build("wide", 12, 7, 3, 0)


# ----------------------------------------------------------------------------- pairing
def test_same_seed_same_initial_function_for_static_and_dynamic():
    static = mlp.build(mlp.STATIC, 20, 16, 4, seed=3)
    dynamic = mlp.build(mlp.DYNAMIC, 20, 16, 4, seed=3)
    for i in (0, 2):
        assert torch.equal(static[i].weight, dynamic[i].weight)
    assert torch.equal(static[4].weight, dynamic[4].weight)
    x = torch.randn(9, 20)
    torch.testing.assert_close(static(x), dynamic(x))
    # ... and the gate is live: with a non-zero bank the two differ.
    with torch.no_grad():
        dynamic[0].bias_bank.normal_()
    assert not torch.allclose(static(x), dynamic(x))


def test_another_seed_another_init():
    a, b = (mlp.build(mlp.STATIC, 20, 16, 4, seed=s) for s in (0, 1))
    assert not torch.equal(a[0].weight, b[0].weight)
    a2 = mlp.build(mlp.STATIC, 20, 16, 4, seed=0)
    assert torch.equal(a[0].weight, a2[0].weight)


class Recorder(nn.Module):
    """A linear classifier that keeps every training batch it is shown."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.linear, self.seen = nn.Linear(d, mlp.CLASSES), []

    def forward(self, x):
        if self.training:
            self.seen.append(x.clone())
        return self.linear(x)


def tiny_recipe(**kw) -> mlp.Recipe:
    base = dict(profile="quick", pool=8, hidden=16, num_biases=4, epochs=3, seeds=5,
                train_subset=None, val_size=0, test_subset=None, batch_size=32, lr=0.05)
    return mlp.Recipe(**base | kw)


def test_data_order_depends_on_the_seed_only():
    x, y = torch.randn(100, 6), torch.randint(0, 10, (100,))
    rec = tiny_recipe(epochs=2)
    runs = {}
    for name, seed in (("a", 4), ("b", 4), ("c", 5)):
        torch.manual_seed({"a": 0, "b": 1, "c": 0}[name])  # other global RNG states
        model = Recorder(6)
        mlp.fit(model, (x, y), rec, seed)
        runs[name] = torch.cat(model.seen)
    assert len(runs["a"]) == 2 * len(x)
    assert torch.equal(runs["a"], runs["b"])
    assert not torch.equal(runs["a"], runs["c"])
    torch.testing.assert_close(runs["a"][:100].sum(0), x.sum(0))  # each image once an epoch


# ----------------------------------------------------------------------------- data
def test_pixel_features_are_normalised_pooled_pixels():
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    feats = mlp.pixel_features(images, 2)
    assert feats.shape == (3, 3 * 16 * 16) and feats.dtype == torch.float32
    torch.testing.assert_close(feats, F.avg_pool2d(normalize(images), 2).flatten(1))
    torch.testing.assert_close(mlp.pixel_features(images, 1), normalize(images).flatten(1))
    assert mlp.QUICK.in_features == 768 and mlp.FULL.in_features == 3072
    with pytest.raises(ValueError, match="pool must divide 32"):
        mlp.pixel_features(images, 3)


def test_recipe_follows_the_profile():
    assert mlp.recipe("quick") is mlp.QUICK and mlp.recipe("full") is mlp.FULL
    assert mlp.QUICK.seeds >= 5
    assert "quick mode" in mlp.QUICK.label and "16×16" in mlp.QUICK.label


# ----------------------------------------------------------------------------- the study
def blobs(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ten Gaussian clusters in d dimensions: an easy, learnable task."""
    g = torch.Generator().manual_seed(seed)
    centres = 0.8 * torch.randn(mlp.CLASSES, d, generator=torch.Generator().manual_seed(99))
    y = torch.randint(0, mlp.CLASSES, (n,), generator=g)
    return centres[y] + torch.randn(n, d, generator=g), y


def test_study_on_tiny_data_trains_every_model_from_every_seed():
    rec = tiny_recipe()
    data = mlp.Pixels(blobs(400, rec.in_features, 0), blobs(200, rec.in_features, 1),
                      blobs(200, rec.in_features, 2))
    runs = mlp.study(data, rec, seeds=[0, 1, 2])
    assert len(runs) == 9 and set(runs["model"]) == set(mlp.MODELS)
    assert set(runs.columns) >= {"model", "seed", "params", "val_acc", "test_acc", "seconds"}
    assert (runs["test_acc"] > 50).all()  # well above chance (10%): the models learn
    table = mlp.summary(runs)
    assert list(table.index) == list(mlp.MODELS) and (table["n"] == 3).all()
    # deterministic: the same seed trains the same model to the same accuracy
    again = mlp.run(mlp.DYNAMIC, data, rec, 1)
    first = runs[(runs.model == mlp.DYNAMIC) & (runs.seed == 1)].iloc[0]
    assert again["test_acc"] == first["test_acc"] and again["val_acc"] == first["val_acc"]
    text = mlp.conclusion(runs)
    assert "Over 3 paired seeds" in text and "t-interval" in text


def fake_runs(static, dynamic, wide):
    rows = []
    for seed, accs in enumerate(zip(static, dynamic, wide)):
        for model, acc in zip(mlp.MODELS, accs):
            rows.append({"model": model, "seed": seed, "params": 100, "val_acc": acc - 1,
                         "test_acc": acc, "seconds": 1.0})
    return pd.DataFrame(rows)


def test_paired_interval_is_the_paired_t_test():
    static = [40.0, 41.0, 42.0, 43.0, 44.0]
    dynamic = [40.5, 41.1, 42.9, 43.2, 44.3]  # differences .5 .1 .9 .2 .3
    runs = fake_runs(static, dynamic, static)
    d = [b - a for a, b in zip(static, dynamic)]
    ci = mlp.paired_interval(runs, mlp.DYNAMIC, mlp.STATIC)
    mean, sd = sum(d) / 5, pd.Series(d).std()
    half = scipy.stats.t.ppf(0.975, 4) * sd / math.sqrt(5)
    assert ci.mean == pytest.approx(mean) and ci.low == pytest.approx(mean - half)
    assert ci.high == pytest.approx(mean + half) and ci.excludes_zero()
    table = mlp.comparison(runs)
    row = table.loc[f"{mlp.DYNAMIC} − {mlp.STATIC}"]
    assert row["n"] == 5 and row["seeds won"] == "5 of 5"
    assert row["95% t-interval"] == f"[{mean - half:+.2f}, {mean + half:+.2f}]"
    p = scipy.stats.ttest_rel(dynamic, static).pvalue
    assert row["p"] == pytest.approx(p)
    assert row["p, Holm (2 comparisons)"] == pytest.approx(min(1.0, 2 * p))  # equal p's
    assert mlp.conclusion(runs).count("excludes zero, but not after Holm's adjustment") == 2


def test_holm_keeps_a_clear_difference():
    static = [40.0, 41.0, 42.0, 43.0, 44.0]
    dynamic = [a + d for a, d in zip(static, [1.0, 1.1, 0.9, 1.05, 0.95])]
    table = mlp.comparison(fake_runs(static, dynamic, static))
    assert (table["p, Holm (2 comparisons)"] < 0.05).all()
    assert "excludes zero, also after Holm's adjustment" in mlp.conclusion(
        fake_runs(static, dynamic, static))


def test_conclusion_says_when_the_interval_includes_zero():
    static = [40.0, 41.0, 42.0, 43.0, 44.0]
    dynamic = [a + d for a, d in zip(static, [0.3, -0.3, 0.1, -0.2, 0.1])]
    wide = [a - d for a, d in zip(dynamic, [1.0, 1.2, 0.9, 1.1, 1.0])]
    text = mlp.conclusion(fake_runs(static, dynamic, wide))
    first, second = text.split("; against the widened one")
    assert "cannot tell the two apart" in first and "excludes zero" not in first
    assert "excludes zero" in second and "+1.04 points" in second
    assert "42.00 ± 1.58%" in text  # the static MLP's mean ± std over seeds


def test_paired_differences_need_both_models():
    runs = fake_runs([40.0, 41.0], [40.0, 41.0], [40.0, 41.0])
    with pytest.raises(ValueError, match="no runs of"):
        mlp.paired_differences(runs[runs.model != mlp.WIDE], mlp.DYNAMIC, mlp.WIDE)


def test_identical_runs_give_p_one_not_nan():
    same = [40.0, 41.0, 42.0]
    table = mlp.comparison(fake_runs(same, same, same))
    assert (table["p"] == 1.0).all() and (table["p, Holm (2 comparisons)"] == 1.0).all()
