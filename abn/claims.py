"""The paper's claims beside the evidence the book has for each, computed from what is
stored (chapter 0's table).

The paper (Tahir, 2025) claims that ResNet-DMB gives a *consistent improvement* over
ResNet-S at a *comparable parameter count*, that adaptive biases mean *less randomness*,
and that each neuron's gate makes the network more *interpretable*. :func:`claims_table`
puts each claim beside what would test it and what ``results/`` (via :mod:`abn.stats`)
and the models themselves (via :mod:`abn.models`) can say about it today. Every number
in it is computed when it is called; a statistic is only reported at a sample size where
it means something (:data:`abn.stats.MIN_PAIRS` paired seeds for a spread).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch

from abn import models, stats

PAPER_GAIN = 0.37  # points, ResNet-DMB minus ResNet-S, one run each (quoted from the paper)


def _counts() -> tuple[int, int]:
    """Parameters of ResNet-S and ResNet-DMB at full width (built on the meta device)."""
    with torch.device("meta"):
        return (models.count_parameters(models.resnet_s()),
                models.count_parameters(models.resnet_dmb()))


def _best_setup(results: Sequence[dict]) -> tuple[stats.Setup | None, int]:
    """The full-scale setup with the most paired seeds of the paper's pair, and that count."""
    pairs = stats.full_scale_pairs(results)
    if not pairs:
        return None, 0
    setup = max(pairs, key=pairs.get)
    return setup, pairs[setup]


def _gain_verdict(t: stats.Interval, positive: int, n: int) -> str:
    """The verdict on "consistent improvement" from the paired t interval of DMB minus
    ResNet-S and the number of seeds (of ``n``) in which DMB is ahead."""
    if t.high < 0:
        return "contradicted: DMB is worse"
    if t.low <= 0:
        return "not shown: the interval includes 0"
    if positive < n:
        return f"better on average, but not consistent: behind or equal in {n - positive} of {n} seeds"
    return "supported"


def claims_table(results: Sequence[dict]) -> pd.DataFrame:
    """One row per claim of the paper: the claim, what would test it, the evidence the
    stored ``results`` (training runs, any profile; only full-profile runs count) and the
    models give, and the verdict so far."""
    n_s, n_dmb = _counts()
    setup, n = _best_setup(results)
    full = [r for r in results if r.get("profile") == "full"]
    runs = [r for r in full if setup is not None and stats.setup_of(r) == setup]
    where = f"{setup.protocol} protocol, {setup.epochs} epochs" if setup else ""

    if n >= 2:
        d = stats.paired_difference(runs, "resnet_dmb", "resnet_s", setup=setup)
        positive = sum(x > 0 for x in d.differences)
        gain = (f"{n} paired full-scale seeds ({where}): {d.t.mean:+.2f} points, 95% "
                f"t-interval [{d.t.low:+.2f}, {d.t.high:+.2f}]; DMB ahead in {positive} "
                f"of {n} seeds")
        gain_verdict = _gain_verdict(d.t, positive, n)
    else:
        gain = (f"{n} paired full-scale seed(s) stored; the paper's own evidence is one run "
                f"per model, best epoch picked on the test set ({PAPER_GAIN:+.2f} points)")
        gain_verdict = "untested here: needs at least 2 paired full-scale seeds"

    extra = n_dmb - n_s
    size = (f"ResNet-S {n_s:,}, ResNet-DMB {n_dmb:,}: +{extra:,} parameters "
            f"(+{100 * extra / n_s:.1f}%); a plain ResNet-S widened x"
            f"{models.matched_width():.3f} has as many")
    size_verdict = ("reproduced exactly; +{:.1f}% is enough to need a parameter-matched "
                    "baseline (chapter 8)".format(100 * extra / n_s))

    if n >= stats.MIN_PAIRS:
        spread = stats.pair_spread(runs, "resnet_dmb", "resnet_s", setup=setup)
        noise = (f"seed-to-seed sd of the final accuracy over {n} seeds: ResNet-S "
                 f"{spread.sd_baseline:.2f}, ResNet-DMB {spread.sd_variant:.2f} points")
        noise_verdict = ("smaller for DMB, by this measure" if spread.sd_variant < spread.sd_baseline
                         else "not shown: DMB scatters as much or more")
    else:
        noise = (f"{n} paired full-scale seed(s); comparing two spreads needs at least "
                 f"{stats.MIN_PAIRS}")
        noise_verdict = "untested here"

    gates = ("the gains and mixing weights of trained gates, per image, layer and class, "
             "and whether freezing or shuffling them changes accuracy (chapter 7)")
    gates_verdict = "not a measurable claim as stated; the book measures what the gates do"

    rows = [
        ("consistent improvement over ResNet-S",
         "several paired seeds, final-epoch accuracy, an interval", gain, gain_verdict),
        ("comparable parameter count", "the counts; a parameter-matched baseline",
         size, size_verdict),
        ('"less randomness"', "the seed-to-seed spread of each model", noise, noise_verdict),
        ("neurons that reason about the input (interpretability)",
         "how input-dependent the gates are, and whether that matters", gates, gates_verdict),
    ]
    return pd.DataFrame(rows, columns=["the paper claims", "what would test it",
                                       "the evidence here (computed)", "verdict so far"])
