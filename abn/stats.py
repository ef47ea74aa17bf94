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
  t-test and a seeded percentile bootstrap for comparison (both from :mod:`scipy.stats`);
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

Result = dict

BASELINE = "resnet_s"
DEFAULT_PROTOCOL = "honest"  # results written before the protocol was recorded


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


def t_interval(values: Sequence[float], confidence: float = 0.95, method: str = "t") -> Interval:
    """The mean of ``values`` with its Student-t interval (:func:`scipy.stats.ttest_1samp`).
    Of per-seed paired differences, this is the interval of a paired t-test. Needs two
    or more values."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        raise ValueError(f"a t interval needs 2 or more values, got {values.size}.")
    ci = scipy.stats.ttest_1samp(values, 0.0).confidence_interval(confidence)
    return Interval(float(values.mean()), float(ci.low), float(ci.high), confidence, method)


@dataclass(frozen=True)
class PairedDifference:
    """variant minus baseline over the seeds both have (points of accuracy)."""

    variant: str
    baseline: str
    n: int
    differences: tuple[float, ...]
    t: Interval
    bootstrap: Interval
    best_difference: float  # the same paired difference of the paper-style "best" numbers


def paired_difference(results: Sequence[Result], variant: str, baseline: str = BASELINE,
                      metric: str = "final_test_acc", confidence: float = 0.95,
                      n_boot: int = 10_000, seed: int = 0,
                      setup: Setup | None = None) -> PairedDifference:
    """The per-seed differences ``variant - baseline`` in ``metric`` within one setup
    (``setup``, or the only one in ``results``): the interval of a paired t-test
    (:func:`t_interval` of the differences) and a percentile bootstrap of the mean difference
    (:func:`scipy.stats.bootstrap`, ``n_boot`` resamples from a generator seeded by
    ``seed``, so it is reproducible). With few seeds the bootstrap is too narrow (it
    cannot see spread the sample does not show); it is there for comparison.
    Needs at least two shared seeds."""
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
    boot = scipy.stats.bootstrap((diff,), np.mean, n_resamples=n_boot, confidence_level=confidence,
                                 method="percentile", rng=np.random.default_rng(seed)).confidence_interval
    mean = float(diff.mean())
    return PairedDifference(
        variant, baseline, len(shared), tuple(diff.tolist()),
        t_interval(diff, confidence, method="paired t"),
        Interval(mean, float(boot.low), float(boot.high), confidence, "bootstrap"),
        statistics.fmean(vr["best_test_acc"] - br["best_test_acc"] for vr, br in runs))


def comparison_table(results: Sequence[Result], baseline: str = BASELINE,
                     confidence: float = 0.95) -> pd.DataFrame:
    """One row per variant (setup fields that differ come first in the index, the protocol
    is a column otherwise): n, mean ±
    std of the final test accuracy, validation mean, the paired difference to ``baseline``
    in the same setup with its t and bootstrap intervals, the paper-style best-over-epochs
    mean, and the training throughput. Missing pairs (fewer than 2 shared seeds) are NaN."""
    pct = f"{100 * confidence:g}%"
    rows = []
    for s in variant_summaries(results):
        diff = None
        if s.variant != baseline:
            try:
                diff = paired_difference(results, s.variant, baseline, confidence=confidence,
                                         setup=s.setup)
            except ValueError:
                pass
        rows.append({**s.setup._asdict(), "variant": s.variant, "params": s.params, "n": s.n,
                     "mean": s.mean, "std": s.std, "val mean": s.val_mean,
                     "best-epoch mean (paper-style)": s.best_mean,
                     f"Δ vs {baseline}": diff.t.mean if diff else math.nan,
                     f"{pct} t-CI low": diff.t.low if diff else math.nan,
                     f"{pct} t-CI high": diff.t.high if diff else math.nan,
                     f"{pct} bootstrap low": diff.bootstrap.low if diff else math.nan,
                     f"{pct} bootstrap high": diff.bootstrap.high if diff else math.nan,
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


def conclusions(results: Sequence[Result], where: str) -> str:
    """The findings of one setup's results as sentences computed from the numbers:
    the baseline's spread, ResNet-DMB's paired difference, which variants differ from the
    baseline with an interval that excludes zero, the validation choice, and the gain
    from picking epochs on test."""
    _one_setup(results, None)
    summary = {s.variant: s for s in variant_summaries(results)}
    base = summary[BASELINE]
    lines = [f"In the {where}, ResNet-S's final test accuracy is {base.mean:.2f}% "
             f"with a standard deviation of {base.std:.2f} points over {base.n} seeds."]
    if "resnet_dmb" in summary:
        d = paired_difference(results, "resnet_dmb")
        verdict = ("excludes zero" if d.t.excludes_zero() else
                   "includes zero: these runs cannot tell ResNet-DMB from ResNet-S")
        lines.append(f"ResNet-DMB minus ResNet-S, paired over {d.n} seeds: {d.t.mean:+.2f} points, "
                     f"95% t-interval [{d.t.low:+.2f}, {d.t.high:+.2f}] (bootstrap "
                     f"[{d.bootstrap.low:+.2f}, {d.bootstrap.high:+.2f}]); the t-interval {verdict}. "
                     f"The same difference of the paper-style best-over-epochs numbers is "
                     f"{d.best_difference:+.2f} points.")
    diffs = [paired_difference(results, v) for v in summary if v != BASELINE
             and len(set(summary[v].seeds) & set(base.seeds)) >= 2]
    up = [d.variant for d in diffs if d.t.low > 0]
    down = [d.variant for d in diffs if d.t.high < 0]
    lines.append(f"Of {len(diffs)} variants compared with ResNet-S, "
                 f"{len(up)} are better with a t-interval above zero ({', '.join(up) or 'none'}) and "
                 f"{len(down)} worse with one below zero ({', '.join(down) or 'none'}).")
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
