"""The statistics of chapter 8 against values computed by hand and from tables."""

import json
import math

import numpy as np
import pytest

from abn import stats


@pytest.mark.parametrize("df, p, table", [
    (1, 0.975, 12.706), (2, 0.975, 4.303), (4, 0.975, 2.776), (9, 0.975, 2.262),
    (30, 0.975, 2.042), (4, 0.995, 4.604), (9, 0.95, 1.833), (1000, 0.975, 1.962),
])
def test_t_quantile_matches_tables(df, p, table):
    assert stats.t_quantile(p, df) == pytest.approx(table, abs=6e-4)
    assert stats.t_quantile(1 - p, df) == pytest.approx(-table, abs=6e-4)


def test_t_cdf_closed_forms():
    assert stats.t_cdf(0.0, 5) == pytest.approx(0.5)
    for t in (-2.0, -0.3, 0.7, 3.0):  # df = 1 is the Cauchy distribution
        assert stats.t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)
    with pytest.raises(ValueError):
        stats.t_quantile(1.0, 3)


def test_t_interval_by_hand():
    """d = 0.1, 0.3, -0.2, 0.4, 0.2: mean 0.16, s^2 = 0.053, s = 0.230217;
    half width = 2.776445 * 0.230217 / sqrt(5) = 0.285850."""
    iv = stats.t_interval([0.1, 0.3, -0.2, 0.4, 0.2])
    assert iv.mean == pytest.approx(0.16)
    assert (iv.low, iv.high) == pytest.approx((0.16 - 0.285850, 0.16 + 0.285850), abs=1e-5)
    assert not iv.excludes_zero()
    with pytest.raises(ValueError, match="at least 2"):
        stats.t_interval([1.0])


def test_bootstrap_is_seeded_and_close_to_t_on_a_normal_sample():
    x = np.random.default_rng(0).normal(0.2, 1.0, size=200).tolist()
    a, b = stats.bootstrap_interval(x, seed=3), stats.bootstrap_interval(x, seed=3)
    assert a == b
    assert stats.bootstrap_interval(x, seed=4) != a
    t = stats.t_interval(x)
    assert a.low == pytest.approx(t.low, abs=0.03) and a.high == pytest.approx(t.high, abs=0.03)


def fake(model, seed, test, val=None, best=None, **kw):
    """A result dict with the fields abn.train.summarize() writes that stats reads."""
    return {"kind": "train", "model": model, "variant": model, "seed": seed, "history": [],
            "provenance": {}, "final_test_acc": test,
            "final_val_acc": test - 1 if val is None else val,
            "best_test_acc": test + 0.5 if best is None else best, "params": 10,
            "profile": "quick", "width": 0.125, "recipe": {"epochs": 2, "model_kwargs": {}, **kw}}


RESULTS = ([fake("resnet_s", s, a) for s, a in enumerate([90.0, 90.4, 89.8, 90.2, 90.1])]
           + [fake("resnet_dmb", s, a) for s, a in enumerate([90.1, 90.7, 89.6, 90.6, 90.3])])


def test_summary_and_paired_difference():
    summary = {s.variant: s for s in stats.summarize(RESULTS)}
    s = summary["resnet_s"]
    assert (s.n, s.seeds) == (5, (0, 1, 2, 3, 4))
    assert s.mean == pytest.approx(90.1)
    assert s.std == pytest.approx(np.std([90.0, 90.4, 89.8, 90.2, 90.1], ddof=1))
    assert s.best_mean == pytest.approx(90.6) and s.val_mean == pytest.approx(89.1)
    d = stats.paired_difference(RESULTS, "resnet_dmb")
    assert d.differences == pytest.approx((0.1, 0.3, -0.2, 0.4, 0.2))
    assert (d.t.low, d.t.high) == pytest.approx((0.16 - 0.285850, 0.16 + 0.285850), abs=1e-5)
    assert d.bootstrap.low >= min(d.differences) and d.bootstrap.high <= max(d.differences)
    assert d.best_difference == pytest.approx(0.16)


def test_pairing_uses_shared_seeds_only():
    extra = RESULTS + [fake("resnet_dmb", 9, 99.0)]
    assert stats.paired_difference(extra, "resnet_dmb").n == 5
    with pytest.raises(ValueError, match="share 1 seed"):
        stats.paired_difference([fake("resnet_s", 0, 90), fake("resnet_qk", 0, 90),
                                 fake("resnet_qk", 1, 91)], "resnet_qk")


def test_table_selection_and_guards():
    table = stats.comparison_table(RESULTS)
    assert list(table.index) == ["resnet_s", "resnet_dmb"]
    assert math.isnan(table.loc["resnet_s", "Δ vs resnet_s"])
    assert table.loc["resnet_dmb", "Δ vs resnet_s"] == pytest.approx(0.16)
    assert stats.select_by_validation(RESULTS).variant == "resnet_dmb"
    with pytest.raises(ValueError, match="two results"):
        stats.summarize(RESULTS + [fake("resnet_s", 0, 1.0)])
    with pytest.raises(ValueError, match="different setups"):
        stats.summarize(RESULTS + [fake("resnet_qk", 0, 1.0, epochs=15)])
    k8 = fake("resnet_dmb", 0, 90.0, model_kwargs={"num_biases": 8})
    assert stats.label(k8) == "resnet_dmb(num_biases=8)"


def test_seed_plot_and_load(tmp_path):
    fig = stats.seed_plot(RESULTS)
    assert [t.name for t in fig.data] == ["resnet_s", "resnet_dmb"]
    assert list(fig.data[0].y) == [90.0, 90.4, 89.8, 90.2, 90.1]
    assert stats.load(tmp_path / "missing") == []
    (tmp_path / "a.json").write_text(json.dumps(RESULTS[0]))
    (tmp_path / "b.json").write_text(json.dumps(RESULTS[1] | {"profile": "full"}))
    loaded = stats.load(tmp_path, profile="quick")
    assert len(loaded) == 1 and loaded[0]["final_test_acc"] == 90.0
    assert len(stats.load(tmp_path)) == 2
