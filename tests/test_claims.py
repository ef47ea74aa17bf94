"""abn.claims: the paper's claims beside the stored evidence, computed."""

from abn import claims, models
from test_stats import fake


def _full(model, seed, acc):
    return fake(model, seed, acc, profile="full", width=1.0)


def _table(results):
    return claims.claims_table(results).set_index("the paper claims")


def test_nothing_stored_means_untested_and_the_counts_are_the_models():
    table = _table([])
    assert list(table.index)[0].startswith("consistent improvement")
    assert table.iloc[0]["verdict so far"].startswith("untested")
    assert table.loc['"less randomness"', "verdict so far"] == "untested here"
    size = table.loc["comparable parameter count", "the evidence here (computed)"]
    extra = models.count_parameters(models.resnet_dmb()) - models.count_parameters(models.resnet_s())
    assert f"+{extra:,} parameters" in size and "2,777,674" in size


def test_quick_runs_do_not_count():
    quick = [fake(m, s, 50.0 + s) for m in ("resnet_s", "resnet_dmb") for s in range(5)]
    assert _table(quick).iloc[0]["verdict so far"].startswith("untested")


def test_a_clear_gain_is_supported_and_spreads_are_reported_from_five_pairs():
    s_acc = [91.0, 91.2, 90.9, 91.1, 91.3]
    results = ([_full("resnet_s", i, a) for i, a in enumerate(s_acc)]
               + [_full("resnet_dmb", i, a + 0.5 + 0.01 * i) for i, a in enumerate(s_acc)])
    table = _table(results)
    row = table.iloc[0]
    assert row["verdict so far"] == "supported"
    assert "5 paired full-scale seeds" in row["the evidence here (computed)"]
    assert "ahead in 5 of 5" in row["the evidence here (computed)"]
    noise = table.loc['"less randomness"']
    assert "over 5 seeds" in noise["the evidence here (computed)"]


def test_a_gain_inside_the_noise_is_not_shown_and_few_pairs_give_no_spread():
    results = ([_full("resnet_s", i, a) for i, a in enumerate([91.0, 91.4, 90.8])]
               + [_full("resnet_dmb", i, a) for i, a in enumerate([91.3, 91.0, 91.1])])
    table = _table(results)
    assert table.iloc[0]["verdict so far"].startswith("not shown")
    assert table.loc['"less randomness"', "verdict so far"] == "untested here"


def test_a_gain_above_zero_that_one_seed_misses_is_not_called_consistent():
    s_acc = [91.0, 91.2, 90.9, 91.1, 91.3]
    d = [0.6, 0.7, 0.5, 0.8, -0.05]  # interval above 0, DMB behind in seed 4
    results = ([_full("resnet_s", i, a) for i, a in enumerate(s_acc)]
               + [_full("resnet_dmb", i, a + x) for i, (a, x) in enumerate(zip(s_acc, d))])
    verdict = _table(results).iloc[0]["verdict so far"]
    assert verdict.startswith("better on average, but not consistent"), verdict
    assert "1 of 5" in verdict


def test_a_clear_loss_is_a_contradiction():
    s_acc = [91.0, 91.2, 90.9, 91.1, 91.3]
    results = ([_full("resnet_s", i, a) for i, a in enumerate(s_acc)]
               + [_full("resnet_dmb", i, a - 0.5 - 0.01 * i) for i, a in enumerate(s_acc)])
    assert _table(results).iloc[0]["verdict so far"] == "contradicted: DMB is worse"
