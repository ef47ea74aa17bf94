"""Does a difference between two variants survive the seed-to-seed spread?

All aggregation of training results happens here, through one grouping
(:func:`group_runs`): runs are pooled only when they are the same **variant** (model name
and model kwargs, so K = 8 never pools with K = 4) trained in the same **setup**
(:class:`Setup`: protocol, profile, width, epochs and the sizes of the three splits).
Input: result dicts as :func:`abn.train.result_record` writes them. What the book
reports, and why:

* per variant the **final-epoch** test accuracy over seeds: n, mean, sample std. Picking
  the best epoch on the test set (the paper's "best accuracy") selects on noise, so
  that number is shown beside it, labelled, never instead of it;
* the **paired** difference to the baseline over the seeds both were trained with (a
  seed fixes the initialisation, the data order and every augmentation, so pairing
  removes the part of the spread the two runs share), with the 95% interval of a paired
  t-test and, from :data:`MIN_BOOTSTRAP_N` seeds on, a seeded percentile bootstrap for
  comparison (both from :mod:`scipy.stats`);
* several variants against one baseline are a **family** of tests: which of them differ
  is decided on Holm-adjusted p-values (:func:`holm`), not on each interval alone;
* how many paired seeds a difference needs (:func:`paired_power`, :func:`seeds_needed`);
* model choices on the held-out **validation** split (:func:`select_by_validation`);
  the test set is only reported.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.stats

from abn.results import provenance_label

Result = dict

BASELINE = "resnet_s"
DEFAULT_PROTOCOL = "honest"  # results written before the protocol was recorded
# The fewest values a percentile bootstrap interval is computed from. With n = 2 the
# resampled means are d1, d2 or their mean (probabilities 1/4, 1/4, 1/2), so the 95%
# interval is exactly [min d, max d]: it excludes zero whenever both differences have
# the same sign, half the time when there is no effect at all. Below 5 values only the
# t interval is reported (:func:`exclusion_rate_under_null` measures both).
MIN_BOOTSTRAP_N = 5
ALPHA = 0.05  # the familywise error rate of every verdict


# ----------------------------------------------------------------------------- grouping
class Setup(NamedTuple):
    """What must agree, besides the variant, for runs to be pooled."""

    protocol: str
    profile: str
    width: float
    epochs: int
    train_subset: int | None
    val_size: int | None
    test_subset: int | None


def _field(result: Result, key: str):
    """A result's ``key``, at its top level or else in its ``recipe``."""
    return result.get(key, (result.get("recipe") or {}).get(key))


def setup_of(result: Result) -> Setup:
    """The setup a result was trained in (protocol ``"honest"`` when it does not say)."""
    values = {f: _field(result, f) for f in Setup._fields}
    return Setup(**values | {"protocol": values["protocol"] or DEFAULT_PROTOCOL})


def variant_label(result: Result) -> str:
    """The variant a result belongs to: its model name, plus any model kwargs
    (``resnet_dmb(num_biases=8)`` when K was set on the command line)."""
    kwargs = _field(result, "model_kwargs") or {}
    extra = ",".join(f"{k}={v}" for k, v in sorted(kwargs.items()))
    return f"{result['model']}({extra})" if extra else result["model"]


def group_runs(results: Iterable[Result]) -> dict[tuple[Setup, str], dict[int, Result]]:
    """(setup, variant label) -> seed -> result, groups in first-seen order.

    The one grouping every table and test in this module uses; two results of one group
    with the same seed are an error (a run stored twice)."""
    groups: dict[tuple[Setup, str], dict[int, Result]] = {}
    for r in results:
        seeds = groups.setdefault((setup_of(r), variant_label(r)), {})
        if r["seed"] in seeds:
            raise ValueError(f"two results for {variant_label(r)} with seed {r['seed']} in one setup.")
        seeds[r["seed"]] = r
    if not groups:
        raise ValueError("no results to analyse.")
    return groups


def _one_setup(results: Sequence[Result], setup: Setup | None) -> Setup:
    """``setup`` if given, else the only setup in ``results`` (an error if there are several)."""
    if setup is not None:
        return setup
    setups = list(dict.fromkeys(setup_of(r) for r in results))
    if len(setups) != 1:
        raise ValueError(f"these results come from {len(setups)} setups; pass setup= one of {setups}.")
    return setups[0]


# ----------------------------------------------------------------------------- summaries
@dataclass(frozen=True)
class VariantSummary:
    """One variant in one setup, over its seeds (accuracies in %)."""

    variant: str
    setup: Setup
    modulator: str  # the block modulator the result names, e.g. "dmb(K=4)"
    n: int
    mean: float  # final-epoch test accuracy
    std: float  # sample standard deviation over seeds (nan for n = 1)
    val_mean: float  # final-epoch validation accuracy: what model choices use
    best_mean: float  # the paper's "best": max test accuracy over epochs, mean over seeds
    params: int
    seeds: tuple[int, ...]
    wall_s_mean: float
    images_per_s_mean: float


def _mean(values: Iterable[float | None]) -> float:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else math.nan


def variant_summaries(results: Iterable[Result]) -> list[VariantSummary]:
    """n, mean and std of the final-epoch test accuracy per (setup, variant), with the
    validation mean, the paper-style best-over-epochs mean, wall time and throughput."""
    out = []
    for (setup, name), seeds in group_runs(results).items():
        rs = [seeds[s] for s in sorted(seeds)]
        test = [r["final_test_acc"] for r in rs]
        out.append(VariantSummary(
            variant=name, setup=setup, modulator=rs[0].get("variant", ""), n=len(rs),
            mean=statistics.fmean(test), std=statistics.stdev(test) if len(test) > 1 else math.nan,
            val_mean=_mean(r.get("final_val_acc") for r in rs),
            best_mean=statistics.fmean(r["best_test_acc"] for r in rs),
            params=rs[0]["params"], seeds=tuple(sorted(seeds)),
            wall_s_mean=_mean(r.get("wall_s") for r in rs),
            images_per_s_mean=_mean(r.get("train_images_per_s") for r in rs)))
    return out


def _indexed(rows: list[dict], label: str) -> pd.DataFrame:
    """``rows`` indexed by ``label``, preceded by the setup fields that differ between rows
    (none when every run shares one setup). The protocol is always shown: as an index
    level when it differs, else as the first column."""
    table = pd.DataFrame(rows)
    varying = [f for f in Setup._fields if table[f].astype(str).nunique() > 1]
    keep = varying if "protocol" in varying else ["protocol", *varying]
    table = table.drop(columns=[f for f in Setup._fields if f not in keep])
    return table.set_index([*varying, label])


def summary_table(results: Iterable[Result]) -> pd.DataFrame:
    """One row per variant (index ``model``, the variant label; setup fields that differ
    come first in the index, the protocol is a column otherwise): n, mean and std (n-1) of the final-epoch test accuracy,
    the paper-style best-over-epochs mean, the validation mean, wall time, throughput."""
    rows = [{**s.setup._asdict(), "model": s.variant, "variant": s.modulator, "params": s.params,
             "n": s.n, "final_test_mean": s.mean, "final_test_std": s.std,
             "best_test_mean": s.best_mean, "final_val_mean": s.val_mean,
             "wall_s_mean": s.wall_s_mean, "images_per_s_mean": s.images_per_s_mean}
            for s in variant_summaries(results)]
    return _indexed(rows, "model")


# ----------------------------------------------------------------------------- paired differences
@dataclass(frozen=True)
class Interval:
    """A mean with a two-sided confidence interval."""

    mean: float
    low: float
    high: float
    confidence: float
    method: str

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def paired_p(differences: Sequence[float]) -> float:
    """The two-sided p-value of the paired t-test on per-seed ``differences``; 1 when every
    difference is zero (t is then 0/0 and SciPy returns nan)."""
    p = float(scipy.stats.ttest_1samp(np.asarray(differences, dtype=float), 0.0).pvalue)
    return 1.0 if math.isnan(p) and not np.any(differences) else p


def t_interval(values: Sequence[float], confidence: float = 0.95, method: str = "t") -> Interval:
    """The mean of ``values`` with its Student-t interval (:func:`scipy.stats.ttest_1samp`).
    Of per-seed paired differences, this is the interval of a paired t-test. Needs two
    or more values."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        raise ValueError(f"a t interval needs 2 or more values, got {values.size}.")
    ci = scipy.stats.ttest_1samp(values, 0.0).confidence_interval(confidence)
    return Interval(float(values.mean()), float(ci.low), float(ci.high), confidence, method)


def bootstrap_interval(values: Sequence[float], confidence: float = 0.95,
                       n_boot: int = 10_000, seed: int = 0) -> Interval:
    """The mean of ``values`` with a percentile bootstrap interval
    (:func:`scipy.stats.bootstrap`, ``n_boot`` resamples from a generator seeded by
    ``seed``). Refuses fewer than :data:`MIN_BOOTSTRAP_N` values: below that the interval
    is little more than the range of the sample (with two values exactly [min, max])."""
    values = np.asarray(values, dtype=float)
    if values.size < MIN_BOOTSTRAP_N:
        raise ValueError(f"a bootstrap interval needs {MIN_BOOTSTRAP_N} or more values, got "
                         f"{values.size}; use the t interval (t_interval) below that.")
    ci = scipy.stats.bootstrap((values,), np.mean, n_resamples=n_boot,
                               confidence_level=confidence, method="percentile",
                               rng=np.random.default_rng(seed)).confidence_interval
    return Interval(float(values.mean()), float(ci.low), float(ci.high), confidence, "bootstrap")


def exclusion_rate_under_null(n: int, trials: int = 2_000, n_boot: int = 2_000,
                              confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """How often a ``confidence`` interval of the mean excludes zero when there is no
    effect: ``trials`` samples of ``n`` standard-normal differences, each given the
    Student-t interval and a percentile bootstrap (the same method as
    :func:`bootstrap_interval`, vectorised here with numpy). A calibrated 95% interval
    excludes zero in 5% of trials; the percentile bootstrap with few values does so far
    more often (half the trials at n = 2)."""
    if n < 2:
        raise ValueError(f"n must be 2 or more, got {n}.")
    rng = np.random.default_rng(seed)
    samples = rng.standard_normal((trials, n))
    mean, sem = samples.mean(axis=1), samples.std(axis=1, ddof=1) / math.sqrt(n)
    half = scipy.stats.t.ppf((1 + confidence) / 2, n - 1) * sem
    t_rate = float(np.mean(np.abs(mean) > half))
    tail = 100 * (1 - confidence) / 2
    hits = 0
    for chunk in np.array_split(np.arange(trials), max(1, trials * n_boot * n // 20_000_000)):
        picks = rng.integers(0, n, size=(len(chunk), n_boot, n))
        means = np.take_along_axis(samples[chunk][:, None, :], picks, axis=2).mean(axis=2)
        low, high = np.percentile(means, [tail, 100 - tail], axis=1)
        hits += int(np.sum((low > 0) | (high < 0)))
    return {"t": t_rate, "bootstrap": hits / trials}


@dataclass(frozen=True)
class PairedDifference:
    """variant minus baseline over the seeds both have (points of accuracy)."""

    variant: str
    baseline: str
    n: int
    differences: tuple[float, ...]
    t: Interval
    bootstrap: Interval | None  # None below MIN_BOOTSTRAP_N shared seeds
    p_value: float  # two-sided p of the paired t-test (of this comparison alone)
    best_difference: float  # the same paired difference of the paper-style "best" numbers


def paired_difference(results: Sequence[Result], variant: str, baseline: str = BASELINE,
                      metric: str = "final_test_acc", confidence: float = 0.95,
                      n_boot: int = 10_000, seed: int = 0,
                      setup: Setup | None = None) -> PairedDifference:
    """The per-seed differences ``variant - baseline`` in ``metric`` within one setup
    (``setup``, or the only one in ``results``): the interval of a paired t-test
    (``t_interval`` of the differences) with its two-sided p-value, and from
    ``MIN_BOOTSTRAP_N`` shared seeds on a percentile bootstrap of the mean difference
    (``bootstrap_interval``, seeded, so it is reproducible; ``None`` below that). With
    few seeds the bootstrap is too narrow (it cannot see spread the sample does not
    show); it is there for comparison. Needs at least two shared seeds."""
    setup = _one_setup(results, setup)
    groups = {name: seeds for (s, name), seeds in group_runs(results).items() if s == setup}
    for name in (variant, baseline):
        if name not in groups:
            raise ValueError(f"no results for {name!r} in this setup; have {sorted(groups)}.")
    shared = sorted(set(groups[variant]) & set(groups[baseline]))
    if len(shared) < 2:
        raise ValueError(f"{variant} and {baseline} share {len(shared)} seed(s); need 2 or more.")
    runs = [(groups[variant][s], groups[baseline][s]) for s in shared]
    v, b = (np.array([pair[i][metric] for pair in runs]) for i in (0, 1))
    diff = v - b
    boot = (bootstrap_interval(diff, confidence, n_boot, seed)
            if diff.size >= MIN_BOOTSTRAP_N else None)
    return PairedDifference(
        variant, baseline, len(shared), tuple(diff.tolist()),
        t_interval(diff, confidence, method="paired t"), boot, paired_p(diff),
        statistics.fmean(vr["best_test_acc"] - br["best_test_acc"] for vr, br in runs))


# ----------------------------------------------------------------------------- power
@dataclass(frozen=True)
class PairSpread:
    """How a variant and the baseline scatter over the seeds they share (points)."""

    n: int
    sd_baseline: float
    sd_variant: float
    sd_difference: float  # of the per-seed differences: what a paired test sees
    correlation: float  # Pearson, of the two accuracies over seeds (nan if undefined)


def pair_spread(results: Sequence[Result], variant: str = "resnet_dmb",
                baseline: str = BASELINE, setup: Setup | None = None) -> PairSpread:
    """Sample standard deviations (n - 1) of the two models' final test accuracies over
    their shared seeds, of the per-seed differences, and the correlation between the
    two: pairing pays exactly when it is positive (sd_difference^2 = sd_b^2 + sd_v^2 -
    2 rho sd_b sd_v)."""
    setup = _one_setup(results, setup)
    d = paired_difference(results, variant, baseline, setup=setup)
    groups = {name: seeds for (s, name), seeds in group_runs(results).items() if s == setup}
    shared = sorted(set(groups[variant]) & set(groups[baseline]))
    b = np.array([groups[baseline][s]["final_test_acc"] for s in shared])
    v = np.array([groups[variant][s]["final_test_acc"] for s in shared])
    sd_b, sd_v = float(b.std(ddof=1)), float(v.std(ddof=1))
    corr = float(np.corrcoef(b, v)[0, 1]) if sd_b > 0 and sd_v > 0 else math.nan
    return PairSpread(d.n, sd_b, sd_v, float(np.std(d.differences, ddof=1)), corr)


def difference_sd(sd: float, correlation: float = 0.0) -> float:
    """The standard deviation of the difference of two runs whose accuracies each have
    standard deviation ``sd`` and correlate by ``correlation``: sqrt(2 (1 - rho)) sd. Two
    independent single runs (rho = 0) differ by sqrt(2) sd; pairing helps only as far as
    it makes rho positive."""
    if sd < 0 or not -1 <= correlation <= 1:
        raise ValueError(f"need sd >= 0 and -1 <= correlation <= 1, got {sd}, {correlation}.")
    return math.sqrt(2 * (1 - correlation)) * sd


def paired_power(n: float, delta: float, sd_diff: float, alpha: float = ALPHA) -> float:
    """The power of a two-sided paired t-test at level ``alpha`` with ``n`` pairs, when the
    true mean difference is ``delta`` and the per-pair differences have standard deviation
    ``sd_diff``: ``P(|T| > t_{1-alpha/2, n-1})`` for T noncentral t with n - 1 degrees of
    freedom and noncentrality delta / (sd_diff / sqrt(n)) (:data:`scipy.stats.nct`, exact,
    not the normal approximation). ``n`` may be fractional, as R's ``power.t.test``
    reports it."""
    if n < 2 or sd_diff <= 0:
        raise ValueError(f"need n >= 2 and sd_diff > 0, got n={n}, sd_diff={sd_diff}.")
    # The power is symmetric in the sign of delta. SciPy's noncentral t returns nan where
    # a tail underflows (large noncentrality): the far tail is then 0 to every digit.
    df, nc = n - 1, abs(delta) / (sd_diff / math.sqrt(n))
    crit = scipy.stats.t.ppf(1 - alpha / 2, df)
    near = scipy.stats.nct.sf(crit, df, nc)
    if math.isnan(near):
        near = 1.0 - scipy.stats.nct.cdf(crit, df, nc)
    far = scipy.stats.nct.cdf(-crit, df, nc)
    return float(near + (0.0 if math.isnan(far) else far))


def seeds_needed(delta: float, sd_diff: float, power: float = 0.8, alpha: float = ALPHA,
                 max_n: int = 1_000_000) -> int:
    """The fewest pairs (paired seeds, n >= 2) for which :func:`paired_power` reaches
    ``power``: how many seeds a paired study needs to detect a difference ``delta`` when
    the per-seed differences scatter by ``sd_diff``."""
    if delta == 0 or not 0 < power < 1:
        raise ValueError(f"need delta != 0 and 0 < power < 1, got {delta}, {power}.")
    def enough(n: int) -> bool:
        return paired_power(n, delta, sd_diff, alpha) >= power

    if enough(2):
        return 2
    low, high = 2, 4  # power grows with n: double until enough, then bisect
    while not enough(high):
        if high >= max_n:
            raise ValueError(f"more than {max_n:,} pairs needed for delta={delta}, sd_diff={sd_diff}.")
        low, high = high, 2 * high
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return high


# ----------------------------------------------------------------------------- families
def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of ``p_values`` (Holm 1979), in their order: sorted
    ascending, the i-th smallest (i from 1) is multiplied by m - i + 1, a running maximum
    keeps the order, and nothing exceeds 1. Rejecting where the adjusted p is below
    alpha keeps the probability of any false finding among the m tests at most alpha,
    whatever their dependence, and never rejects less than Bonferroni does."""
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise ValueError(f"p-values must be numbers in [0, 1], got {list(p_values)}.")
    order = np.argsort(p, kind="stable")
    m = p.size
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted.tolist()


def family_differences(results: Sequence[Result], baseline: str = BASELINE,
                       setup: Setup | None = None, confidence: float = 0.95
                       ) -> list[tuple[PairedDifference, float]]:
    """Every variant of one setup with 2 or more seeds shared with ``baseline``, as its
    :func:`paired_difference` and its Holm-adjusted p-value (:func:`holm` over this
    family of comparisons), in first-seen order."""
    setup = _one_setup(results, setup)
    summaries = [s for s in variant_summaries(results) if s.setup == setup]
    base = next((s for s in summaries if s.variant == baseline), None)
    if base is None:
        return []
    diffs = [paired_difference(results, s.variant, baseline, confidence=confidence, setup=setup)
             for s in summaries
             if s.variant != baseline and len(set(s.seeds) & set(base.seeds)) >= 2]
    return list(zip(diffs, holm([d.p_value for d in diffs]))) if diffs else []


def comparison_table(results: Sequence[Result], baseline: str = BASELINE,
                     confidence: float = 0.95) -> pd.DataFrame:
    """One row per variant (setup fields that differ come first in the index, the protocol
    is a column otherwise): n, mean ±
    std of the final test accuracy, validation mean, the paired difference to ``baseline``
    in the same setup with its t and bootstrap intervals, the paper-style best-over-epochs
    mean, and the training throughput. The p-value of each paired t-test is given as it
    is and Holm-adjusted over the variants compared with ``baseline`` in the same setup
    (column ``comparisons``: the size of that family). Missing pairs (fewer than 2
    shared seeds) are NaN, and so is the bootstrap below :data:`MIN_BOOTSTRAP_N`."""
    pct = f"{100 * confidence:g}%"
    families = {}
    for setup in dict.fromkeys(setup_of(r) for r in results):
        family = family_differences(results, baseline, setup, confidence)
        families |= {(setup, d.variant): (d, adj, len(family)) for d, adj in family}
    rows = []
    for s in variant_summaries(results):
        diff, holm_p, k = families.get((s.setup, s.variant), (None, math.nan, math.nan))
        boot = diff.bootstrap if diff else None
        rows.append({**s.setup._asdict(), "variant": s.variant, "params": s.params, "n": s.n,
                     "mean": s.mean, "std": s.std, "val mean": s.val_mean,
                     "best-epoch mean (paper-style)": s.best_mean,
                     f"Δ vs {baseline}": diff.t.mean if diff else math.nan,
                     f"{pct} t-CI low": diff.t.low if diff else math.nan,
                     f"{pct} t-CI high": diff.t.high if diff else math.nan,
                     f"{pct} bootstrap low": boot.low if boot else math.nan,
                     f"{pct} bootstrap high": boot.high if boot else math.nan,
                     "p (paired t)": diff.p_value if diff else math.nan,
                     "p (Holm)": holm_p, "comparisons": k,
                     "train images/s": s.images_per_s_mean})
    return _indexed(rows, "variant")


def select_by_validation(results: Sequence[Result], setup: Setup | None = None) -> VariantSummary:
    """The variant with the highest mean final validation accuracy in one setup: the
    honest choice (its test accuracy is then reported, not used to choose)."""
    setup = _one_setup(results, setup)
    summaries = [s for s in variant_summaries(results) if s.setup == setup and not math.isnan(s.val_mean)]
    if not summaries:
        raise ValueError("no validation accuracies in these results (trained with val_size=0?).")
    return max(summaries, key=lambda s: s.val_mean)


def best_epoch_gain(results: Sequence[Result]) -> float:
    """What picking the best epoch on the test set adds over taking the last one: the mean
    of ``best_test_acc - final_test_acc`` over all runs (points). The selection effect
    the paper's "best accuracy" contains."""
    return statistics.fmean(r["best_test_acc"] - r["final_test_acc"] for r in results)


def _names(names: list[str]) -> str:
    return ", ".join(names) or "none"


def conclusions(results: Sequence[Result], where: str) -> str:
    """The findings of one setup's results as sentences computed from the numbers:
    the baseline's spread, ResNet-DMB's paired difference (its t interval and p-value,
    the bootstrap from :data:`MIN_BOOTSTRAP_N` seeds on), which variants differ from the
    baseline after Holm's adjustment over all variants compared with it, the validation
    choice, and the gain from picking epochs on test."""
    setup = _one_setup(results, None)
    summary = {s.variant: s for s in variant_summaries(results)}
    base = summary[BASELINE]
    lines = [f"In the {where}, ResNet-S's final test accuracy is {base.mean:.2f}% "
             f"with a standard deviation of {base.std:.2f} points over {base.n} seeds."]
    family = family_differences(results, setup=setup)
    k = len(family)
    holm_note = f", Holm-adjusted over {k} comparisons p = {{:.3f}}" if k > 1 else ""
    for d, adjusted in family:
        if d.variant != "resnet_dmb":
            continue
        verdict = ("excludes zero" if d.t.excludes_zero() else
                   "includes zero: these runs cannot tell ResNet-DMB from ResNet-S")
        boot = (f"bootstrap [{d.bootstrap.low:+.2f}, {d.bootstrap.high:+.2f}]" if d.bootstrap
                else f"no bootstrap interval from {d.n} seeds, fewer than {MIN_BOOTSTRAP_N}")
        lines.append(f"ResNet-DMB minus ResNet-S, paired over {d.n} seeds: {d.t.mean:+.2f} points, "
                     f"95% t-interval [{d.t.low:+.2f}, {d.t.high:+.2f}] ({boot}; paired t-test "
                     f"p = {d.p_value:.3f}{holm_note.format(adjusted)}); the t-interval {verdict}. "
                     f"The same difference of the paper-style best-over-epochs numbers is "
                     f"{d.best_difference:+.2f} points.")
    up = [d.variant for d, adjusted in family if adjusted < ALPHA and d.t.mean > 0]
    down = [d.variant for d, adjusted in family if adjusted < ALPHA and d.t.mean < 0]
    adjustment = f" with Holm's adjustment for {k} comparisons" if k > 1 else ""
    lines.append(f"Of {k} variant{'s' if k != 1 else ''} compared with ResNet-S, judged on "
                 f"paired t-tests{adjustment} (familywise error {ALPHA:.0%}), {len(up)} "
                 f"{'is' if len(up) == 1 else 'are'} better ({_names(up)}) and {len(down)} "
                 f"worse ({_names(down)}).")
    try:
        pick = select_by_validation(results)
        lines.append(f"Chosen on the validation split, the best variant is `{pick.variant}` "
                     f"({pick.val_mean:.2f}% validation); its test accuracy, reported and not "
                     f"used to choose, is {pick.mean:.2f}%.")
    except ValueError:  # the paper protocol holds out no validation split
        lines.append("These runs hold out no validation split (the paper's protocol), so no "
                     "variant can be chosen without looking at the test set.")
    lines.append(f"Picking the best epoch on the test set instead of taking the last one "
                 f"adds {best_epoch_gain(results):.2f} points on average over all runs: the "
                 "selection effect the paper's numbers contain.")
    return " ".join(lines)


# ----------------------------------------------------------------------------- what is known
PAIR = ("resnet_s", "resnet_dmb")  # the paper's comparison
PROTOCOLS_REPORTED = ("honest", "paper")
MIN_PAIRS = 5  # the paired seeds a full-scale comparison is planned with


def full_scale_pairs(results: Iterable[Result]) -> dict[Setup, int]:
    """Per full-profile setup, how many seeds ResNet-S and ResNet-DMB share (their paired
    comparisons; 0 when one of them is missing)."""
    full = [r for r in results if r.get("profile") == "full"]
    seeds: dict[Setup, dict[str, set[int]]] = {}
    for (setup, name), runs in (group_runs(full).items() if full else ()):
        seeds.setdefault(setup, {})[name] = set(runs)
    return {setup: len(by_name.get(PAIR[0], set()) & by_name.get(PAIR[1], set()))
            for setup, by_name in seeds.items()}


def evidence_status(results: Sequence[Result]) -> str:
    """What the stored results can say about ResNet-DMB vs ResNet-S, as a MyST admonition
    (render it with ``IPython.display.Markdown`` in a cell whose ``mystnb`` metadata sets
    ``markdown_format: myst``): whether a full-scale comparison exists, its number of
    paired seeds per protocol, and, where it has 2 or more, the paired difference with
    its 95% t interval; where none does, that no conclusion can be drawn yet."""
    pairs = full_scale_pairs(results)
    counts = {f"{s.protocol} protocol, {s.epochs} epochs": n for s, n in pairs.items()}
    counts |= {f"{p} protocol": 0 for p in PROTOCOLS_REPORTED
               if not any(s.protocol == p for s in pairs)}
    listed = "; ".join(f"{where}: n = {n}" for where, n in counts.items())
    full = [r for r in results if r.get("profile") == "full"]
    found = []
    for setup, n in pairs.items():
        if n >= 2:
            runs = [r for r in full if setup_of(r) == setup]
            d = paired_difference(runs, PAIR[1], PAIR[0], setup=setup)
            found.append(f"{setup.protocol} protocol, {setup.epochs} epochs, {n} paired seeds: "
                         f"{d.t.mean:+.2f} points, 95% t-interval [{d.t.low:+.2f}, {d.t.high:+.2f}]")
    if not found:
        body = ("**No full-scale comparison of ResNet-DMB with ResNet-S is stored yet** "
                f"(paired full-scale seeds: {listed}). Until there is one, **no conclusion "
                "about DMB vs ResNet-S can be drawn** here: the paper's gain is one run per "
                "model, and everything this book trains on a CPU is small-scale and labelled "
                "so.")
        return f":::{{admonition}} What is known so far\n:class: warning\n{body}\n:::"
    short = [p for p, n in counts.items() if n < MIN_PAIRS]
    caveat = (f" Fewer than the planned {MIN_PAIRS} paired seeds under: {', '.join(short)}."
              if short else "")
    body = (f"**A full-scale comparison is stored** ({listed}; "
            f"{provenance_label(full)}). ResNet-DMB minus ResNet-S, final-epoch test "
            f"accuracy: " + "; ".join(found) + "." + caveat)
    return f":::{{admonition}} What is known so far\n:class: note\n{body}\n:::"
