"""The statistics of chapter 8 against values computed by hand and from tables; the one
grouping that keeps runs of different setups and variants apart."""

import math

import numpy as np
import pytest

from abn import figures, stats


def fake(model, seed, test, val=None, best=None, protocol=None, **recipe):
    """A result dict with the fields abn.train.result_record() writes that stats reads."""
    r = {"kind": "train", "model": model, "variant": model, "seed": seed, "history": [],
         "provenance": {"device": "cpu"}, "final_test_acc": test,
         "final_val_acc": test - 1 if val is None else val,
         "best_test_acc": test + 0.5 if best is None else best, "params": 10,
         "train_images_per_s": 100.0 + seed, "wall_s": 5.0,
         "profile": recipe.pop("profile", "quick"), "width": recipe.pop("width", 0.125),
         "recipe": {"epochs": 2, "model_kwargs": {}, "train_subset": 1000, "val_size": 100,
                    "test_subset": 500, **recipe}}
    return r if protocol is None else r | {"protocol": protocol}


S_ACC = [90.0, 90.4, 89.8, 90.2, 90.1]
DMB_ACC = [90.1, 90.7, 89.6, 90.6, 90.3]  # differences 0.1, 0.3, -0.2, 0.4, 0.2
RESULTS = ([fake("resnet_s", s, a) for s, a in enumerate(S_ACC)]
           + [fake("resnet_dmb", s, a) for s, a in enumerate(DMB_ACC)])


def pairs_with(differences):
    """Results of resnet_s (all 90) and resnet_dmb (90 + d) over len(differences) seeds."""
    return ([fake("resnet_s", s, 90.0) for s in range(len(differences))]
            + [fake("resnet_dmb", s, 90.0 + d) for s, d in enumerate(differences)])


@pytest.mark.parametrize("n, confidence, table", [
    (2, 0.95, 12.706), (3, 0.95, 4.303), (5, 0.95, 2.776), (10, 0.95, 2.262),
    (31, 0.95, 2.042), (5, 0.99, 4.604), (10, 0.90, 1.833),
])
def test_t_interval_uses_the_table_quantile(n, confidence, table):
    """Half width / (s / sqrt(n)) is Student's t quantile t_{(1+c)/2, n-1}, from printed tables."""
    diffs = np.random.default_rng(n).normal(0.3, 0.2, size=n)
    d = stats.paired_difference(pairs_with(diffs), "resnet_dmb", confidence=confidence, n_boot=200)
    sem = np.std(diffs, ddof=1) / math.sqrt(n)
    assert (d.t.high - d.t.mean) / sem == pytest.approx(table, abs=6e-4)
    assert (d.t.mean - d.t.low) / sem == pytest.approx(table, abs=6e-4)


def test_paired_difference_by_hand():
    """d = 0.1, 0.3, -0.2, 0.4, 0.2: mean 0.16, s^2 = 0.053, s = 0.230217;
    half width = 2.776445 * 0.230217 / sqrt(5) = 0.285850."""
    d = stats.paired_difference(RESULTS, "resnet_dmb")
    assert d.n == 5 and d.differences == pytest.approx((0.1, 0.3, -0.2, 0.4, 0.2))
    assert d.t.mean == pytest.approx(0.16)
    assert (d.t.low, d.t.high) == pytest.approx((0.16 - 0.285850, 0.16 + 0.285850), abs=1e-5)
    assert not d.t.excludes_zero()
    assert min(d.differences) <= d.bootstrap.low < d.bootstrap.high <= max(d.differences)
    assert d.best_difference == pytest.approx(0.16)


def test_t_interval_of_differences_is_the_paired_interval():
    """stats.t_interval on the per-seed differences gives the paired t interval (the
    hand-computed one above); fewer than two values is an error, not a NaN."""
    ci = stats.t_interval([0.1, 0.3, -0.2, 0.4, 0.2])
    assert (ci.mean, ci.low, ci.high) == pytest.approx((0.16, 0.16 - 0.285850, 0.16 + 0.285850),
                                                      abs=1e-5)
    paired = stats.paired_difference(RESULTS, "resnet_dmb").t
    assert (paired.low, paired.high) == pytest.approx((ci.low, ci.high), abs=1e-12)
    with pytest.raises(ValueError, match="2 or more values"):
        stats.t_interval([0.3])


def test_bootstrap_is_seeded_and_close_to_t_on_a_normal_sample():
    results = pairs_with(np.random.default_rng(0).normal(0.2, 1.0, size=200))
    a, b = (stats.paired_difference(results, "resnet_dmb", seed=3) for _ in range(2))
    assert a.bootstrap == b.bootstrap
    assert stats.paired_difference(results, "resnet_dmb", seed=4).bootstrap != a.bootstrap
    assert a.bootstrap.low == pytest.approx(a.t.low, abs=0.03)
    assert a.bootstrap.high == pytest.approx(a.t.high, abs=0.03)


def test_variant_summaries():
    summary = {s.variant: s for s in stats.variant_summaries(RESULTS)}
    s = summary["resnet_s"]
    assert (s.n, s.seeds) == (5, (0, 1, 2, 3, 4))
    assert s.mean == pytest.approx(90.1) and s.std == pytest.approx(np.std(S_ACC, ddof=1))
    assert s.best_mean == pytest.approx(90.6) and s.val_mean == pytest.approx(89.1)
    assert s.images_per_s_mean == pytest.approx(102.0) and s.setup.protocol == "honest"


def test_pairing_uses_shared_seeds_only():
    extra = RESULTS + [fake("resnet_dmb", 9, 99.0)]
    assert stats.paired_difference(extra, "resnet_dmb").n == 5
    with pytest.raises(ValueError, match="share 1 seed"):
        stats.paired_difference([fake("resnet_s", 0, 90), fake("resnet_qk", 0, 90),
                                 fake("resnet_qk", 1, 91)], "resnet_qk")


@pytest.mark.parametrize("change", [
    {"protocol": "paper"}, {"model_kwargs": {"num_biases": 8}}, {"width": 0.25}, {"epochs": 15},
    {"profile": "full"}, {"train_subset": 2000}, {"val_size": 0}, {"test_subset": 1000},
])
def test_runs_pool_only_within_one_variant_and_setup(change):
    """Same model and seed, one setup field or a model kwarg changed: a separate group,
    never pooled (and never 'the same seed twice')."""
    other = [fake("resnet_dmb", s, 80.0, **change) for s in range(5)]
    groups = stats.group_runs(RESULTS + other)
    assert len(groups) == 3 and all(len(seeds) == 5 for seeds in groups.values())
    table = stats.summary_table(RESULTS + other)
    assert len(table) == 3 and sorted(table["final_test_mean"].round(2)) == [80.0, 90.1, 90.26]
    if "model_kwargs" in change:  # same setup, another variant: K = 8 is its own row
        assert stats.paired_difference(RESULTS + other, "resnet_dmb(num_biases=8)").t.mean == pytest.approx(80 - 90.1)
    else:
        with pytest.raises(ValueError, match="2 setups"):  # which setup? the caller must say
            stats.paired_difference(RESULTS + other, "resnet_dmb")


def test_protocol_defaults_to_honest():
    assert stats.setup_of(fake("resnet_s", 0, 90.0)).protocol == "honest"
    assert stats.setup_of(fake("resnet_s", 0, 90.0, protocol="paper")).protocol == "paper"
    mixed = RESULTS + [fake("resnet_s", s, a, protocol="honest") for s, a in enumerate(S_ACC)]
    with pytest.raises(ValueError, match="two results for resnet_s with seed 0"):
        stats.group_runs(mixed)  # "honest" written out pools with "honest" by default


def test_comparison_table_keeps_setups_apart():
    paper = [fake(m, s, a + 1, protocol="paper") for m, accs in (("resnet_s", S_ACC), ("resnet_dmb", DMB_ACC))
             for s, a in enumerate(accs)]
    table = stats.comparison_table(RESULTS + paper)
    assert table.index.names == ["protocol", "variant"]
    assert table.loc[("paper", "resnet_dmb"), "Δ vs resnet_s"] == pytest.approx(0.16)
    assert table.loc[("honest", "resnet_s"), "mean"] == pytest.approx(90.1)
    assert table.loc[("paper", "resnet_s"), "mean"] == pytest.approx(91.1)


def test_table_selection_and_guards():
    table = stats.comparison_table(RESULTS)
    assert list(table.index) == ["resnet_s", "resnet_dmb"]
    assert math.isnan(table.loc["resnet_s", "Δ vs resnet_s"])
    assert table.loc["resnet_dmb", "Δ vs resnet_s"] == pytest.approx(0.16)
    assert table.loc["resnet_dmb", "train images/s"] == pytest.approx(102.0)
    assert stats.select_by_validation(RESULTS).variant == "resnet_dmb"
    with pytest.raises(ValueError, match="two results"):
        stats.variant_summaries(RESULTS + [fake("resnet_s", 0, 1.0)])
    with pytest.raises(ValueError, match="no results"):
        stats.variant_summaries([])
    k8 = fake("resnet_dmb", 0, 90.0, model_kwargs={"num_biases": 8})
    assert stats.variant_label(k8) == "resnet_dmb(num_biases=8)"


def test_summary_table_matches_the_runs():
    table = stats.summary_table(RESULTS)
    assert table.index.name == "model" and list(table.index) == ["resnet_s", "resnet_dmb"]
    row = table.loc["resnet_dmb"]
    assert row["n"] == 5 and row["final_test_mean"] == pytest.approx(np.mean(DMB_ACC))
    assert row["final_test_std"] == pytest.approx(np.std(DMB_ACC, ddof=1))
    assert row["best_test_mean"] == pytest.approx(np.mean(DMB_ACC) + 0.5)


def test_best_epoch_gain_and_conclusions():
    assert stats.best_epoch_gain(RESULTS) == pytest.approx(0.5)
    text = stats.conclusions(RESULTS, "test study")
    assert "In the test study, ResNet-S's final test accuracy is 90.10%" in text
    assert "+0.16 points, 95% t-interval [-0.13, +0.45]" in text and "includes zero" in text
    assert "the best variant is `resnet_dmb` (89.26% validation)" in text and "is 90.26%." in text
    assert "adds 0.50 points" in text
    gain = [fake("resnet_s", s, 90.0 + s / 10) for s in range(3)] + [
        fake("resnet_qk", s, 91.0 + s / 10 + d) for s, d in enumerate((0.0, 0.1, -0.1))]
    assert "1 is better (resnet_qk)" in stats.conclusions(gain, "x")


def test_seed_plot():
    fig = figures.seed_plot(RESULTS)
    assert [t.name for t in fig.data] == ["resnet_s", "resnet_dmb"]
    assert list(fig.data[0].y) == S_ACC and list(fig.data[0].customdata) == [0, 1, 2, 3, 4]
    titled = figures.seed_plot(RESULTS, title="accuracy", subtitle="which runs").layout.title
    assert (titled.text, titled.subtitle.text) == ("accuracy", "which runs")
    long = figures.seed_plot(RESULTS, subtitle="word " * 40).layout.title.subtitle.text
    assert all(len(line) <= 55 for line in long.split("<br>")) and long.count("<br>") >= 2
    styled = figures.styled_table(stats.comparison_table(RESULTS), "caption").to_html()
    assert "<caption>caption</caption>" in styled and ">+0.16<" in styled
    assert ">90.26 ± 0.44<" in styled and ">[-0.13, +0.45]<" in styled  # DMB: mean ± std, t-CI
    assert ">90.10 ± 0.22<" in styled and ">–<" in styled  # the baseline has no difference
    assert "p, Holm-adjusted over 1 comparison<" in styled and ">0.195<" in styled


def test_protocol_is_always_in_the_tables():
    """One protocol: a column; several: the first index level (test_comparison_table_...)."""
    paper = [r | {"protocol": "paper", "final_val_acc": None} for r in RESULTS]
    for results, protocol in ((RESULTS, "honest"), (paper, "paper")):
        for table in (stats.summary_table(results), stats.comparison_table(results)):
            assert table.columns[0] == "protocol" and set(table["protocol"]) == {protocol}
    both = stats.summary_table(RESULTS + paper)
    assert both.index.names == ["protocol", "model"] and "protocol" not in both.columns
    figures.styled_table(stats.comparison_table(paper), "caption").to_html()  # formats a str column
    text = stats.conclusions(paper, "paper protocol")
    assert "no validation split" in text and "+0.16 points" in text


# ----------------------------------------------------------------------------- issue 20, item 4
def test_no_bootstrap_below_five_seeds():
    """Two values: a percentile bootstrap would be exactly [min d, max d]; abn computes
    none below stats.MIN_BOOTSTRAP_N, in the function, the paired difference, the
    tables and the conclusions."""
    assert stats.MIN_BOOTSTRAP_N == 5
    with pytest.raises(ValueError, match="5 or more values"):
        stats.bootstrap_interval([0.1, 0.3, -0.2, 0.4])
    assert stats.bootstrap_interval([0.1, 0.3, -0.2, 0.4, 0.2]).method == "bootstrap"
    four = pairs_with([0.1, 0.3, -0.2, 0.4])
    d = stats.paired_difference(four, "resnet_dmb")
    assert d.bootstrap is None and d.t.mean == pytest.approx(0.15)
    assert stats.paired_difference(pairs_with([0.1, 0.3, -0.2, 0.4, 0.2]), "resnet_dmb").bootstrap
    table = stats.comparison_table(four)
    assert math.isnan(table.loc["resnet_dmb", "95% bootstrap low"])
    assert not math.isnan(table.loc["resnet_dmb", "95% t-CI low"])
    styled = figures.styled_table(table, "c").to_html()
    assert styled.count(">–<") >= 2  # the baseline's and DMB's bootstrap cells
    text = stats.conclusions(four, "x")
    assert "no bootstrap interval from 4 seeds, fewer than 5" in text and "bootstrap [" not in text


def test_bootstrap_with_few_values_excludes_zero_too_often():
    """Under no effect a 95% t interval excludes zero in about 5% of samples; the
    percentile bootstrap of two values ([min, max]) whenever both have the same sign,
    half of them."""
    two = stats.exclusion_rate_under_null(2, trials=2_000, n_boot=200, seed=1)
    assert two["bootstrap"] == pytest.approx(0.5, abs=0.04)
    assert two["t"] == pytest.approx(0.05, abs=0.02)
    ten = stats.exclusion_rate_under_null(10, trials=1_000, n_boot=500, seed=2)
    assert ten["t"] == pytest.approx(0.05, abs=0.025) and ten["bootstrap"] < two["bootstrap"]
    with pytest.raises(ValueError, match="n must be 2"):
        stats.exclusion_rate_under_null(1)


def test_holm_on_a_worked_example():
    """Four tests, p = 0.01, 0.04, 0.03, 0.005 (Wikipedia's example of the Holm-Bonferroni
    method). By hand: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06,
    0.04; running maximum 0.02, 0.03, 0.06, 0.06; so at alpha = 0.05 the first and the
    fourth hypotheses are rejected, the other two are not (Bonferroni would reject only
    the fourth: 4 x 0.01 = 0.04 < 0.05 too, so both; but 4 x 0.03 = 0.12 not)."""
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [p < 0.05 for p in adjusted] == [True, False, False, True]
    assert stats.holm([0.2]) == [0.2]  # one test: nothing to adjust
    assert stats.holm([0.5, 0.6, 0.01]) == pytest.approx([1.0, 1.0, 0.03])  # capped at 1
    assert stats.holm([]) == []
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        stats.holm([0.5, 1.5])


def test_conclusions_and_table_adjust_the_family():
    """Three variants against ResNet-S: one with a raw p below 0.05 that Holm's
    adjustment (x 2 for the second smallest) lifts above it is not called different."""
    diffs = {"resnet_qk": (1.0, 1.1, 0.9, 1.05, 0.95),  # clear
             "resnet_se": (0.3, 0.05, 0.5, 0.1, 0.45),  # p = 0.036 alone, not after Holm
             "resnet_dmb": (0.2, -0.3, 0.1, -0.1, 0.0)}  # nothing
    results = [fake("resnet_s", s, 90.0) for s in range(5)] + [
        fake(name, s, 90.0 + d) for name, ds in diffs.items() for s, d in enumerate(ds)]
    raw = {v: stats.paired_difference(results, v).p_value for v in diffs}
    assert raw["resnet_qk"] < 0.01 and 0.025 < raw["resnet_se"] < 0.05 < raw["resnet_dmb"]
    table = stats.comparison_table(results)
    expected = dict(zip(diffs, stats.holm([raw[v] for v in diffs])))
    for variant, p in expected.items():
        assert table.loc[variant, "p (Holm)"] == pytest.approx(p)
        assert table.loc[variant, "p (paired t)"] == pytest.approx(raw[variant])
        assert table.loc[variant, "comparisons"] == 3
    assert expected["resnet_se"] > 0.05 and expected["resnet_qk"] < 0.05
    text = stats.conclusions(results, "x")
    assert "with Holm's adjustment for 3 comparisons" in text
    assert "1 is better (resnet_qk) and 0 worse (none)" in text
    assert f"Holm-adjusted over 3 comparisons p = {expected['resnet_dmb']:.3f}" in text
    assert "Holm-adjusted over 3 comparisons<" in figures.styled_table(table, "c").to_html()


def test_power_of_the_paired_t_test_against_r():
    """R's power.t.test(delta=0.5, sd=1, power=0.8, type="one.sample") gives n = 33.36713,
    and with delta = 1 n = 9.937864: at those n the power is 0.8 (a paired test is a
    one-sample test of the differences), so 34 and 10 pairs are needed. Checked here by
    simulation too: 200,000 samples of 10 N(1, 1) differences reject in 80.4%."""
    assert stats.paired_power(33.36713, 0.5, 1.0) == pytest.approx(0.8, abs=1e-4)
    assert stats.paired_power(9.937864, 1.0, 1.0) == pytest.approx(0.8, abs=1e-4)
    assert stats.seeds_needed(0.5, 1.0) == 34 and stats.seeds_needed(1.0, 1.0) == 10
    assert stats.seeds_needed(-1.0, 1.0) == 10  # two-sided: the sign does not matter
    assert stats.paired_power(5, 0.0, 1.0) == pytest.approx(0.05)  # no effect: alpha
    powers = [stats.paired_power(n, 0.3, 1.0) for n in (3, 10, 30, 100)]
    assert powers == sorted(powers)
    # Large noncentrality, where SciPy's far tail underflows to nan (n = 5 here): by
    # the near tail alone gives 0.359 with 2 pairs and 0.928 with 3.
    assert stats.paired_power(5, 0.37, 0.088) == pytest.approx(1.0, abs=1e-5)
    assert stats.paired_power(2, 0.37, 0.088) == pytest.approx(0.359, abs=1e-3)
    assert stats.seeds_needed(0.37, 0.088) == 3
    assert stats.difference_sd(0.16) == pytest.approx(0.16 * math.sqrt(2))
    assert stats.difference_sd(0.16, correlation=0.5) == pytest.approx(0.16)
    with pytest.raises(ValueError):
        stats.paired_power(1, 0.5, 1.0)


def test_evidence_status():
    """No full-scale pair: the box says no conclusion can be drawn, with n per protocol;
    with one: n per protocol and the paired difference with its t interval."""
    none = stats.evidence_status(RESULTS)  # quick-profile runs only
    assert none.startswith(":::{admonition} What is known so far\n:class: warning") and none.rstrip().endswith(":::")
    assert "no conclusion about DMB vs ResNet-S can be drawn" in none
    assert "honest protocol: n = 0; paper protocol: n = 0" in none
    full = [r | {"profile": "full", "provenance": {"device": "H200", "date_utc": "2026-01-02",
                                                   "git_commit": "abcdef0"}} for r in RESULTS]
    some = stats.evidence_status(full + [fake("resnet_s", 0, 90.0, profile="full",
                                              protocol="paper")])
    assert some.startswith(":::{admonition} What is known so far\n:class: note") and "no conclusion" not in some
    assert "honest protocol, 2 epochs: n = 5; paper protocol, 2 epochs: n = 0" in some
    assert "+0.16 points, 95% t-interval [-0.13, +0.45]" in some
    assert "Fewer than the planned 5 paired seeds under: paper protocol, 2 epochs" in some


def test_pair_spread_by_hand():
    """S = 90.0, 90.4, 89.8, 90.2, 90.1 and DMB = S + (0.1, 0.3, -0.2, 0.4, 0.2): the
    differences' variance is s_S^2 + s_D^2 - 2 rho s_S s_D (here s_d^2 = 0.053)."""
    spread = stats.pair_spread(RESULTS)
    assert spread.n == 5 and spread.sd_difference == pytest.approx(math.sqrt(0.053))
    assert spread.sd_baseline == pytest.approx(np.std(S_ACC, ddof=1))
    assert spread.sd_variant == pytest.approx(np.std(DMB_ACC, ddof=1))
    rebuilt = (spread.sd_baseline ** 2 + spread.sd_variant ** 2
               - 2 * spread.correlation * spread.sd_baseline * spread.sd_variant)
    assert rebuilt == pytest.approx(0.053)
    assert spread.correlation == pytest.approx(np.corrcoef(S_ACC, DMB_ACC)[0, 1])
