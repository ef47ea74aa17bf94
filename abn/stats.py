"""Does a difference between two variants survive the seed-to-seed spread?

Input: result dicts as :func:`abn.train.summarize` writes them (``model``, ``seed``,
``final_test_acc``, ``final_val_acc``, ``best_test_acc``, ``params``, ``recipe``, ...).
What the book reports, and why:

* per variant the **final-epoch** test accuracy over seeds: n, mean, sample std. Picking
  the best epoch on the test set (the paper's "best accuracy") selects on noise, so
  that number is shown beside it, labelled, never instead of it;
* the **paired** difference to the baseline over the seeds both were trained with (a
  seed fixes the initialisation, the data order and every augmentation, so pairing
  removes the part of the spread the two runs share), with a 95% t-interval and a
  seeded percentile bootstrap for comparison;
* model choices on the held-out **validation** split (:func:`select_by_validation`);
  the test set is only reported.

No SciPy: the t quantile comes from the regularised incomplete beta function
(:func:`t_cdf`), inverted by bisection; tests check it against table values.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

Result = dict

BASELINE = "resnet_s"


# ----------------------------------------------------------------------------- t distribution
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), for 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):  # the continued fraction converges fast here
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"df must be positive, got {df}.")
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (e.g. ``t_quantile(0.975, 4)`` = 2.776)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p}.")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:  # bracket, then bisect: t_cdf is monotone
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


# ----------------------------------------------------------------------------- intervals
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

    def __str__(self) -> str:
        return f"{self.mean:+.2f} [{self.low:+.2f}, {self.high:+.2f}]"


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """mean ± t_{(1+c)/2, n-1} · s / √n: the interval for the mean of a normal sample."""
    n = len(values)
    if n < 2:
        raise ValueError(f"a t-interval needs at least 2 values, got {n}.")
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    half = t_quantile(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, confidence, "t")


def bootstrap_interval(values: Sequence[float], confidence: float = 0.95,
                       n_boot: int = 10_000, seed: int = 0) -> Interval:
    """Percentile bootstrap of the mean: resample the values with replacement ``n_boot``
    times (numpy generator seeded by ``seed``, so it is reproducible) and take the
    central ``confidence`` range of the resampled means. With few values it is too
    narrow (it cannot see spread the sample does not show); it is here for comparison."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        raise ValueError(f"a bootstrap needs at least 2 values, got {len(x)}.")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Interval(float(x.mean()), float(low), float(high), confidence, "bootstrap")


# ----------------------------------------------------------------------------- results
def label(result: Result) -> str:
    """The variant a result belongs to: its model name, plus any model kwargs
    (``resnet_dmb(num_biases=8)`` when K was set on the command line)."""
    kwargs = (result.get("recipe") or {}).get("model_kwargs") or {}
    extra = ",".join(f"{k}={v}" for k, v in sorted(kwargs.items()))
    return f"{result['model']}({extra})" if extra else result["model"]


def _check_comparable(results: Sequence[Result]) -> None:
    """Refuse to pool runs made at different scales (e.g. quick-mode and full-mode runs)."""
    keys = ("profile", "width", "epochs", "train_subset", "test_subset")
    setups = {tuple(r.get(k, (r.get("recipe") or {}).get(k)) for k in keys) for r in results}
    if len(setups) > 1:
        raise ValueError(f"results come from different setups {keys}: {sorted(map(str, setups))}; "
                         "analyse each setup separately.")


def by_variant(results: Iterable[Result]) -> dict[str, dict[int, Result]]:
    """variant label -> seed -> result, variants in first-seen order."""
    results = list(results)
    if not results:
        raise ValueError("no results to analyse.")
    _check_comparable(results)
    groups: dict[str, dict[int, Result]] = {}
    for r in results:
        seeds = groups.setdefault(label(r), {})
        if r["seed"] in seeds:
            raise ValueError(f"two results for {label(r)} with seed {r['seed']}.")
        seeds[r["seed"]] = r
    return groups


@dataclass(frozen=True)
class VariantSummary:
    """One variant over its seeds (accuracies in %)."""

    variant: str
    n: int
    mean: float  # final-epoch test accuracy
    std: float  # sample standard deviation over seeds (nan for n = 1)
    val_mean: float  # final-epoch validation accuracy: what model choices use
    best_mean: float  # the paper's "best": max test accuracy over epochs, mean over seeds
    params: int
    seeds: tuple[int, ...]


def summarize(results: Iterable[Result]) -> list[VariantSummary]:
    """n, mean and std of the final-epoch test accuracy per variant, with the validation
    mean and the paper-style best-over-epochs mean beside them."""
    out = []
    for name, seeds in by_variant(results).items():
        rs = [seeds[s] for s in sorted(seeds)]
        test = [r["final_test_acc"] for r in rs]
        val = [r["final_val_acc"] for r in rs if r.get("final_val_acc") is not None]
        out.append(VariantSummary(
            variant=name, n=len(rs), mean=statistics.fmean(test),
            std=statistics.stdev(test) if len(test) > 1 else math.nan,
            val_mean=statistics.fmean(val) if val else math.nan,
            best_mean=statistics.fmean(r["best_test_acc"] for r in rs),
            params=rs[0]["params"], seeds=tuple(sorted(seeds))))
    return out


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


def paired_difference(results: Iterable[Result], variant: str, baseline: str = BASELINE,
                      metric: str = "final_test_acc", confidence: float = 0.95,
                      n_boot: int = 10_000, seed: int = 0) -> PairedDifference:
    """The per-seed differences ``variant - baseline`` in ``metric``, their t-interval
    and bootstrap interval. Needs at least two shared seeds."""
    groups = by_variant(results)
    for name in (variant, baseline):
        if name not in groups:
            raise ValueError(f"no results for {name!r}; have {sorted(groups)}.")
    shared = sorted(set(groups[variant]) & set(groups[baseline]))
    if len(shared) < 2:
        raise ValueError(f"{variant} and {baseline} share {len(shared)} seed(s); need 2 or more.")
    diff = [groups[variant][s][metric] - groups[baseline][s][metric] for s in shared]
    best = [groups[variant][s]["best_test_acc"] - groups[baseline][s]["best_test_acc"] for s in shared]
    return PairedDifference(variant, baseline, len(shared), tuple(diff),
                            t_interval(diff, confidence),
                            bootstrap_interval(diff, confidence, n_boot, seed),
                            statistics.fmean(best))


def comparison_table(results: Sequence[Result], baseline: str = BASELINE,
                     confidence: float = 0.95) -> "pandas.DataFrame":  # noqa: F821
    """One row per variant: n, mean ± std of the final test accuracy, validation mean,
    paired difference to ``baseline`` with its t and bootstrap intervals, and the
    paper-style best-over-epochs mean. Missing pairs (fewer than 2 shared seeds) are NaN."""
    import pandas as pd

    rows = []
    for s in summarize(results):
        row = {"variant": s.variant, "params": s.params, "n": s.n, "mean": s.mean, "std": s.std,
               "val mean": s.val_mean, "best-epoch mean (paper-style)": s.best_mean}
        diff = None
        if s.variant != baseline:
            try:
                diff = paired_difference(results, s.variant, baseline, confidence=confidence)
            except ValueError:
                pass
        pct = f"{100 * confidence:g}%"
        row.update({
            f"Δ vs {baseline}": diff.t.mean if diff else math.nan,
            f"{pct} t-CI low": diff.t.low if diff else math.nan,
            f"{pct} t-CI high": diff.t.high if diff else math.nan,
            f"{pct} bootstrap low": diff.bootstrap.low if diff else math.nan,
            f"{pct} bootstrap high": diff.bootstrap.high if diff else math.nan,
        })
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant")


def select_by_validation(results: Iterable[Result]) -> VariantSummary:
    """The variant with the highest mean final validation accuracy: the honest choice
    (its test accuracy is then reported, not used to choose)."""
    summaries = [s for s in summarize(results) if not math.isnan(s.val_mean)]
    if not summaries:
        raise ValueError("no validation accuracies in these results (trained with val_size=0?).")
    return max(summaries, key=lambda s: s.val_mean)


def seed_plot(results: Sequence[Result], metric: str = "final_test_acc", title: str | None = None):
    """Every seed's accuracy per variant (points over a box), hover shows the seed.

    Returns a plotly figure; call ``.show()``.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, seeds in by_variant(results).items():
        ss = sorted(seeds)
        fig.add_trace(go.Box(y=[seeds[s][metric] for s in ss], name=name, boxpoints="all",
                             jitter=0.4, pointpos=0, customdata=ss, showlegend=False,
                             hovertemplate="%{x}<br>seed %{customdata}: %{y:.2f}%<extra></extra>"))
    fig.update_layout(title=title or f"{metric} per seed", yaxis_title="accuracy (%)", height=430)
    return fig


def load(folder: str | Path, profile: str | None = None) -> list[Result]:
    """Training results from ``folder/*.json``, optionally of one profile only (via
    :func:`abn.results.load_results`); [] when the folder does not exist."""
    from abn.results import load_results

    return load_results(folder, profile=profile) if Path(folder).is_dir() else []


def as_dicts(items: Iterable[object]) -> list[dict]:
    """Dataclass rows as plain dicts (for pandas or JSON)."""
    return [asdict(i) for i in items]
