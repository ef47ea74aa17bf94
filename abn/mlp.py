"""The title idea, trained: an MLP whose hidden layers have a dynamic bias, not a static one.

The paper's title and the authors' README are about replacing a layer's static bias by
an input-dependent one, yet in ResNet-DMB :class:`abn.layers.DynamicMultiBiasLinear` only
ever sits inside the convolution's gate. Here it does the job its name says: the hidden
layers of a two-hidden-layer MLP on CIFAR-10 pixels are either ``nn.Linear`` (one static
bias per neuron) or DMB layers (a bank of K biases per neuron, mixed per input), and a
third MLP of plain layers is widened to the DMB MLP's parameter count, so that a gain
cannot come from the extra parameters alone.

Pairing: one seed gives all three models the same data order, and gives the static and
the DMB MLP the same initial weights. The static hidden biases start at zero, like DMB's
bank, so at initialisation those two compute the same function and differ only in what
the dynamic bias learns. The widened MLP's weights have other shapes; they are drawn from
the same seed, so only its data order is shared. Accuracy is read once, after the last
epoch, on the validation split (for choices) and on the test split (reported).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from abn import profiles
from abn.data import Cifar10, load_splits, normalize
from abn.layers import DynamicMultiBiasLinear
from abn.stats import Interval, holm, paired_p, t_interval

STATIC, DYNAMIC, WIDE = "static bias", "dynamic bias (DMB)", "static bias, widened"
MODELS = (STATIC, DYNAMIC, WIDE)
CLASSES = 10


# ----------------------------------------------------------------------------- models
def mlp(in_features: int, hidden: int, dynamic: bool, num_biases: int = 4,
        classes: int = CLASSES) -> nn.Sequential:
    """in -> hidden -> hidden -> classes with ReLUs; the two hidden layers are
    :class:`DynamicMultiBiasLinear` (K = ``num_biases``) if ``dynamic``, else ``nn.Linear``
    with its bias started at zero. The output layer is a plain ``nn.Linear`` in both."""
    def hidden_layer(n_in: int) -> nn.Module:
        if dynamic:
            return DynamicMultiBiasLinear(n_in, hidden, num_biases)
        layer = nn.Linear(n_in, hidden)
        nn.init.zeros_(layer.bias)  # as DMB's bank: the same function at initialisation
        return layer

    return nn.Sequential(hidden_layer(in_features), nn.ReLU(), hidden_layer(hidden), nn.ReLU(),
                         nn.Linear(hidden, classes))


def mlp_parameters(in_features: int, hidden: int, dynamic: bool, num_biases: int = 4,
                   classes: int = CLASSES) -> int:
    """The parameter count of :func:`mlp`, in closed form: the static MLP has
    ``D h + h + h h + h + h C + C``; DMB swaps each hidden layer's h biases for a gate
    (``K n_in + K``) and a bank (``h K``), so it has ``K (D + 3h + 2) - 2h`` more."""
    static = in_features * hidden + hidden + hidden * hidden + hidden + hidden * classes + classes
    if not dynamic:
        return static
    return static - 2 * hidden + num_biases * (in_features + 3 * hidden + 2)


def matched_width(in_features: int, hidden: int, num_biases: int = 4,
                  classes: int = CLASSES) -> int:
    """The width of the static MLP whose parameter count is closest to that of the DMB
    MLP of width ``hidden`` (the smaller width on a tie)."""
    target = mlp_parameters(in_features, hidden, True, num_biases, classes)
    width = hidden
    while mlp_parameters(in_features, width + 1, False, classes=classes) <= target:
        width += 1
    below, above = (mlp_parameters(in_features, w, False, classes=classes) for w in (width, width + 1))
    return width if target - below <= above - target else width + 1


def build(model: str, in_features: int, hidden: int, num_biases: int, seed: int) -> nn.Sequential:
    """One of :data:`MODELS`, initialised from ``seed``. The DMB MLP takes its weights W
    and its output layer from the static MLP of the same seed (its gates are its own), so
    a seed gives the two the same initial function."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}.")
    torch.manual_seed(seed)
    if model == WIDE:
        return mlp(in_features, matched_width(in_features, hidden, num_biases), dynamic=False)
    static = mlp(in_features, hidden, dynamic=False)
    if model == STATIC:
        return static
    dmb = mlp(in_features, hidden, dynamic=True, num_biases=num_biases)
    with torch.no_grad():
        for i in (0, 2):  # the hidden layers: W from the static MLP
            dmb[i].weight.copy_(static[i].weight)
        dmb[4].load_state_dict(static[4].state_dict())  # the output layer
    return dmb


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Recipe:
    """Data, model and training of the MLP study (see :data:`QUICK` and :data:`FULL`).

    Pixels are normalised (:func:`abn.data.normalize`), average-pooled by ``pool`` and
    flattened: ``3 * (32 // pool) ** 2`` inputs. SGD with Nesterov momentum, cosine to 0
    per step, no augmentation. The learning rate was chosen on the validation split
    (:func:`lr_sweep`, seed 100, outside the study's seeds).
    """

    profile: str
    pool: int
    hidden: int
    num_biases: int
    epochs: int
    seeds: int
    train_subset: int | None
    val_size: int
    test_subset: int | None
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4

    @property
    def in_features(self) -> int:
        return 3 * (32 // self.pool) ** 2

    @property
    def label(self) -> str:
        """A caption fragment that says what the numbers come from."""
        data = "all" if self.train_subset is None else f"{self.train_subset:,}"
        return (f"{self.profile} mode: {data} training images at "
                f"{32 // self.pool}×{32 // self.pool} pixels, width {self.hidden}, "
                f"K = {self.num_biases}, {self.epochs} epochs, {self.seeds} seeds")


QUICK = Recipe("quick", pool=2, hidden=128, num_biases=4, epochs=8, seeds=5,
               train_subset=profiles.QUICK.train_subset, val_size=profiles.QUICK.val_size,
               test_subset=profiles.QUICK.test_subset)
FULL = Recipe("full", pool=1, hidden=512, num_biases=4, epochs=30, seeds=10,
              train_subset=profiles.FULL.train_subset, val_size=profiles.FULL.val_size,
              test_subset=profiles.FULL.test_subset)


def recipe(profile: str | None = None) -> Recipe:
    """The recipe of a profile (``None``: ``$ABN_PROFILE``, see :mod:`abn.profiles`)."""
    return QUICK if profiles.resolve(profile).name == "quick" else FULL


def pixel_features(images: torch.Tensor, pool: int) -> torch.Tensor:
    """uint8 images N x 3 x 32 x 32 -> float32 N x (3 * (32 // pool)^2): normalised,
    average-pooled ``pool`` x ``pool``, flattened. Computed once per split."""
    if pool < 1 or 32 % pool:
        raise ValueError(f"pool must divide 32, got {pool}.")
    x = normalize(images)
    return (F.avg_pool2d(x, pool) if pool > 1 else x).flatten(1)


Split = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Pixels:
    """The three splits as feature tensors (N x D, float32) and labels."""

    train: Split
    val: Split
    test: Split


def pixels(splits: Cifar10, pool: int, device: str | torch.device = "cpu") -> Pixels:
    """:func:`pixel_features` of each split of ``splits``, on ``device``."""
    def one(split: Split) -> Split:
        return pixel_features(split[0], pool).to(device), split[1].to(device)

    return Pixels(one(splits.train), one(splits.val), one(splits.test))


def load_pixels(rec: Recipe, device: str | torch.device = "cpu") -> Pixels:
    """CIFAR-10 (:func:`abn.data.load_splits`, the recipe's sizes) as pixel features."""
    return pixels(load_splits(rec.train_subset, rec.val_size, rec.test_subset), rec.pool, device)


# ----------------------------------------------------------------------------- training
@torch.no_grad()
def accuracy(model: nn.Module, split: Split, batch_size: int = 5_000) -> float:
    """Top-1 accuracy (%) of ``model`` on a split."""
    x, y = split
    correct = sum((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum().item()
                  for i in range(0, len(x), batch_size))
    return 100.0 * correct / len(y)


def fit(model: nn.Module, train: Split, rec: Recipe, seed: int, lr: float | None = None) -> nn.Module:
    """Train ``model`` for ``rec.epochs`` epochs of SGD (lr ``lr`` or the recipe's);
    ``seed`` alone fixes the order of the batches."""
    x, y = train
    lr = rec.lr if lr is None else lr
    steps = rec.epochs * -(-len(x) // rec.batch_size)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=rec.momentum, nesterov=True,
                          weight_decay=rec.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(rec.epochs):
        order = torch.randperm(len(x), generator=g).to(x.device)
        for i in range(0, len(x), rec.batch_size):
            idx = order[i:i + rec.batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def run(model_name: str, data: Pixels, rec: Recipe, seed: int, lr: float | None = None) -> dict:
    """Build, train and read one model: its final-epoch validation and test accuracy (%),
    parameter count and the seconds it took."""
    t0 = time.perf_counter()
    in_features = data.train[0].shape[1]
    model = build(model_name, in_features, rec.hidden, rec.num_biases, seed).to(data.train[0].device)
    fit(model, data.train, rec, seed, lr)
    return {"model": model_name, "seed": seed, "params": sum(p.numel() for p in model.parameters()),
            "val_acc": accuracy(model, data.val), "test_acc": accuracy(model, data.test),
            "seconds": time.perf_counter() - t0}


def study(data: Pixels, rec: Recipe, seeds: Iterable[int] | None = None,
          models: Iterable[str] = MODELS) -> pd.DataFrame:
    """Every model trained from every seed (default ``range(rec.seeds)``): one row per
    (model, seed) with ``val_acc``, ``test_acc``, ``params`` and ``seconds``."""
    seeds = range(rec.seeds) if seeds is None else seeds
    return pd.DataFrame([run(m, data, rec, s) for s in seeds for m in models])


def lr_sweep(data: Pixels, rec: Recipe, lrs: Iterable[float], seed: int = 100,
             models: Iterable[str] = (STATIC, DYNAMIC)) -> pd.DataFrame:
    """Validation accuracy per learning rate (rows) and model (columns), from one seed
    outside the study's: how the recipe's learning rate was chosen, never on test."""
    rows = [run(m, data, rec, seed, lr) | {"lr": lr} for lr in lrs for m in models]
    return pd.DataFrame(rows).pivot(index="lr", columns="model", values="val_acc")


# ----------------------------------------------------------------------------- analysis
def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per model (in :data:`MODELS` order): parameters, n, the mean validation accuracy,
    and the mean and sample std of the final-epoch test accuracy."""
    order = [m for m in MODELS if m in set(runs["model"])]
    g = runs.groupby("model")
    table = pd.DataFrame({"params": g["params"].first(), "n": g.size(),
                          "val mean": g["val_acc"].mean(), "test mean": g["test_acc"].mean(),
                          "test std": g["test_acc"].std()})
    return table.loc[order]


def paired_differences(runs: pd.DataFrame, model: str, baseline: str,
                       column: str = "test_acc") -> pd.Series:
    """``model - baseline`` in ``column``, one value per seed both were trained with."""
    wide = runs.pivot(index="seed", columns="model", values=column)
    for name in (model, baseline):
        if name not in wide:
            raise ValueError(f"no runs of {name!r}; have {sorted(wide.columns)}.")
    return (wide[model] - wide[baseline]).dropna()


def paired_interval(runs: pd.DataFrame, model: str, baseline: str,
                    confidence: float = 0.95) -> Interval:
    """The mean paired difference ``model - baseline`` in test accuracy with the interval
    of a paired t-test (:func:`abn.stats.t_interval`; needs two or more shared seeds)."""
    return t_interval(paired_differences(runs, model, baseline).tolist(), confidence, "paired t")


def comparison(runs: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """The DMB MLP against each static MLP: n, the mean paired difference in final test
    accuracy (points), its paired-t interval, how many seeds DMB won, and the paired
    t-test's two-sided p-value, alone and Holm-adjusted over the two comparisons
    (:func:`abn.stats.holm`), since the DMB MLP is tested twice."""
    rows = []
    for baseline in (STATIC, WIDE):
        d = paired_differences(runs, DYNAMIC, baseline)
        ci = t_interval(d.tolist(), confidence, "paired t")
        rows.append({"comparison": f"{DYNAMIC} − {baseline}", "n": len(d),
                     "mean difference": ci.mean,
                     f"{100 * confidence:g}% t-interval": f"[{ci.low:+.2f}, {ci.high:+.2f}]",
                     "seeds won": f"{int((d > 0).sum())} of {len(d)}",
                     "p": paired_p(d.tolist())})
    table = pd.DataFrame(rows).set_index("comparison")
    table[f"p, Holm ({len(table)} comparisons)"] = holm(table["p"].tolist())
    return table


def conclusion(runs: pd.DataFrame, confidence: float = 0.95) -> str:
    """The study's finding in sentences computed from ``runs``."""
    s = summary(runs)

    def acc(model: str) -> str:
        row = s.loc[model]
        return f"{row['test mean']:.2f} ± {row['test std']:.2f}% ({int(row['params']):,} parameters)"

    table = comparison(runs, confidence)
    holm_p = table[table.columns[-1]]
    parts = []
    for baseline, name in ((STATIC, "the static-bias MLP"), (WIDE, "the widened one")):
        ci = paired_interval(runs, DYNAMIC, baseline, confidence)
        p = holm_p[f"{DYNAMIC} − {baseline}"]
        if not ci.excludes_zero():
            verdict = "includes zero: these runs cannot tell the two apart"
        elif p < 1 - confidence:
            verdict = f"excludes zero, also after Holm's adjustment (p = {p:.2g})"
        else:
            verdict = (f"excludes zero, but not after Holm's adjustment for the two "
                       f"comparisons (p = {p:.2g})")
        parts.append(f"against {name} the paired difference is {ci.mean:+.2f} points "
                     f"({100 * confidence:g}% t-interval [{ci.low:+.2f}, {ci.high:+.2f}], "
                     f"which {verdict})")
    return (f"Over {int(s.loc[DYNAMIC, 'n'])} paired seeds, the final test accuracy (mean ± "
            f"std over seeds) is {acc(DYNAMIC)} for the MLP with dynamic biases, "
            f"{acc(STATIC)} with static biases, and {acc(WIDE)} with static biases and "
            f"wider hidden layers. A" + "; ".join(parts)[1:] + ".")


def mean_seconds(runs: pd.DataFrame) -> float:
    """Mean wall-clock seconds of one run."""
    return statistics.fmean(runs["seconds"])
