"""Causal tests of the DMB gates at test time: change each layer's gain m, see what follows.

Two questions, neither needing any retraining:

* **What does batch norm leave of m?** In a BasicBlock, ``bn2`` follows the modulated
  conv: ``bn2(Conv(x) * m(x))``. In train mode BatchNorm divides each channel by its own
  batch statistics, so multiplying m by a positive per-channel constant c changes
  nothing (exactly, up to BatchNorm's eps: BN(c z) = (z - mu) / sqrt(var + eps / c^2)).
  In eval mode BatchNorm uses running statistics; c is absorbed only if those statistics
  were gathered with the same c. :func:`constant_gain_effect` measures all of it on a
  real block.
* **Does the input-dependence of m matter?** :func:`causal_test` compares a trained
  model's test accuracy as trained, with each channel's gain frozen to its mean over the
  test images (a static per-channel gain), and with the gains shuffled across the images
  of each batch (each image gets another image's gains; the marginal distribution of
  m is kept); optionally also with frozen gains and the batch norms' running statistics
  re-estimated for them, so that a drop is not only a mismatch with the statistics
  gathered under the varying gains.

All of it works by :func:`replace_gains`, a context manager that hands every
:class:`~abn.layers.ModulatedConv2d`'s m through a function before it is applied. Inside
:func:`abn.gates.record_gates` the recorder sees the replaced m, the one actually used.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pandas as pd
import torch
from scipy.stats import binomtest
from torch import nn

from abn.data import normalize
from abn.gates import record_gates
from abn.layers import ModulatedConv2d
from abn.models import evaluating
from abn.stats import t_interval

GainFn = Callable[[str, torch.Tensor], torch.Tensor]  # (layer name, m: batch x C) -> new m

AS_TRAINED = "as trained"
STATIC = "static gain (per-channel mean)"
RECALIBRATED = "static gain, BN statistics re-estimated"
SHUFFLED = "gains shuffled across images"


def modulated_layers(model: nn.Module) -> dict[str, ModulatedConv2d]:
    """Every gain-modulated conv (DMB-conv, its K = 0 ablation) of ``model`` by name."""
    return {n: mod for n, mod in model.named_modules() if isinstance(mod, ModulatedConv2d)}


@contextmanager
def replace_gains(model: nn.Module, fn: GainFn) -> Iterator[nn.Module]:
    """Inside the block, every modulated conv of ``model`` scales its output by
    ``fn(name, m)`` instead of its own m (batch x channels). Restored afterwards.

    >>> with replace_gains(model, constant_gain(1.0)):   # every gain set to 1
    ...     logits = model(images)
    """
    layers = modulated_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no gain-modulated convolution to "
                         "intervene on; build it with the DMB modulator, e.g. abn.resnet_dmb().")
    previous = {name: mod.__dict__.get("modulation") for name, mod in layers.items()}
    for name, mod in layers.items():
        def patched(x: torch.Tensor, _own=mod.modulation, _name=name):
            m, alpha = _own(x)
            return fn(_name, m), alpha

        mod.modulation = patched  # an instance attribute shadows the class's method
    try:
        yield model
    finally:
        for name, mod in layers.items():  # nested replacements unwind one at a time
            if previous[name] is None:
                del mod.modulation
            else:
                mod.modulation = previous[name]


def constant_gain(value: float | torch.Tensor) -> GainFn:
    """m replaced by ``value`` for every image: a number, or one per channel (shape C)."""
    return lambda name, m: torch.as_tensor(value, dtype=m.dtype, device=m.device).expand_as(m)


def scaled_gain(factor: float | torch.Tensor) -> GainFn:
    """m multiplied by ``factor`` (a number, or one per channel): a constant change of level."""
    return lambda name, m: m * torch.as_tensor(factor, dtype=m.dtype, device=m.device)


def static_gain(means: dict[str, torch.Tensor]) -> GainFn:
    """m replaced by its per-channel mean ``means[layer]`` (shape C) for every image."""
    return lambda name, m: means[name].to(m).expand_as(m)


def shuffled_gains(seed: int = 0) -> GainFn:
    """m's rows permuted at random within each batch, independently per layer: each image
    gets the gains another image of the batch would have had there (a random permutation,
    so about one image per batch keeps its own). Deterministic for a given ``seed`` and
    order of calls."""
    generator = torch.Generator().manual_seed(seed)

    def shuffle(name: str, m: torch.Tensor) -> torch.Tensor:
        return m[torch.randperm(len(m), generator=generator).to(m.device)]

    return shuffle


def _batches(images: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """Normalised float batches (uint8 images are normalised as in training)."""
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        yield normalize(x) if x.dtype == torch.uint8 else x.float()


@torch.no_grad()
def predictions(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """The predicted class of every image (eval mode, float32, the model's own device)."""
    device = next(model.parameters()).device
    with evaluating(model):
        return torch.cat([model(x.to(device)).argmax(dim=1).cpu() for x in _batches(images, batch_size)])


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             batch_size: int = 500) -> float:
    """Top-1 test accuracy (%) of ``model`` in eval mode, in float32 on its own device."""
    return 100.0 * (predictions(model, images, batch_size) == labels.cpu()).float().mean().item()


@torch.no_grad()
def mean_gains(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> dict[str, torch.Tensor]:
    """Each modulated layer's mean m over ``images`` (eval mode), one value per channel."""
    device, layers = next(model.parameters()).device, modulated_layers(model)
    with evaluating(model), record_gates(model) as record:
        for x in _batches(images, batch_size):
            model(x.to(device))
    return {name: m.mean(dim=0) for name, m in record.modulation().items() if name in layers}


@dataclass(frozen=True)
class CausalTest:
    """Test accuracy (%) of one model as trained and under each intervention, and per
    intervention the images it turned from right to wrong (``lost``) and from wrong to
    right (``gained``) against the model as trained."""

    accuracy: dict[str, float]
    images: int
    seed: int
    lost: dict[str, int] = field(default_factory=dict)
    gained: dict[str, int] = field(default_factory=dict)

    def mcnemar_p(self, kind: str) -> float:
        """Exact McNemar test (two-sided binomial on the discordant images) that the
        intervention leaves this model's accuracy on these images unchanged."""
        lost, gained = self.lost[kind], self.gained[kind]
        return 1.0 if lost + gained == 0 else float(binomtest(lost, lost + gained, 0.5).pvalue)

    @property
    def drops(self) -> dict[str, float]:
        """Accuracy as trained minus accuracy under each intervention (points)."""
        base = self.accuracy[AS_TRAINED]
        return {k: base - v for k, v in self.accuracy.items() if k != AS_TRAINED}


def causal_test(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500,
                seed: int = 0, means: dict[str, torch.Tensor] | None = None,
                predicted: torch.Tensor | None = None,
                calibration: torch.Tensor | None = None) -> CausalTest:
    """Accuracy of ``model`` on ``images`` as trained, with every gain frozen to its
    per-channel mean over these images (``means``, computed in a first pass if not
    given), and with gains shuffled across the images of each batch (generator ``seed``).

    The batch norms' running statistics stay those the model was trained with, gathered
    with its own, varying gains. With ``calibration`` images (e.g. training images; no
    labels needed) a fourth condition re-estimates them under the static gains first (on
    a copy, :func:`recalibrate_bn`), so that a drop cannot come from statistics gathered
    with other gains. ``predicted``: the model's own predictions on ``images`` if already
    known (e.g. :attr:`abn.gate_stats.GateStats.preds`), which saves a pass.
    """
    if means is None:
        means = mean_gains(model, images, batch_size)
    labels = labels.cpu()
    own = predictions(model, images, batch_size) if predicted is None else predicted.cpu()
    right = own == labels
    result, lost, gained = {AS_TRAINED: 100.0 * right.float().mean().item()}, {}, {}

    def record(kind: str, net: nn.Module) -> None:
        now = predictions(net, images, batch_size) == labels
        result[kind] = 100.0 * now.float().mean().item()
        lost[kind], gained[kind] = int((right & ~now).sum()), int((~right & now).sum())

    with replace_gains(model, static_gain(means)):
        record(STATIC, model)
    if calibration is not None:
        device = next(model.parameters()).device
        calibrated = copy.deepcopy(model)
        with replace_gains(calibrated, static_gain(means)):
            recalibrate_bn(calibrated, (x.to(device) for x in _batches(calibration, batch_size)))
            record(RECALIBRATED, calibrated)
    with replace_gains(model, shuffled_gains(seed)):
        record(SHUFFLED, model)
    return CausalTest(result, len(labels), seed, lost, gained)


def causal_table(tests: dict[str, CausalTest], confidence: float = 0.95) -> pd.DataFrame:
    """One row per intervention: mean accuracy and mean drop over the models in ``tests``
    (e.g. one per seed), and, from two models up, the t interval of the drop. With one
    model there is no spread over seeds to estimate, so the interval columns are left
    out; instead the table has that model's images lost and gained and the McNemar p."""
    rows = []
    kinds = [k for k in (AS_TRAINED, STATIC, RECALIBRATED, SHUFFLED)
             if all(k in t.accuracy for t in tests.values())]
    for kind in kinds:
        accs = [t.accuracy[kind] for t in tests.values()]
        row = {"intervention": kind, "n models": len(accs), "accuracy": sum(accs) / len(accs)}
        if kind != AS_TRAINED:
            drops = [t.drops[kind] for t in tests.values()]
            row["drop"] = sum(drops) / len(drops)
            if len(tests) == 1 and (only := next(iter(tests.values()))).lost:
                row["images lost"], row["images gained"] = only.lost[kind], only.gained[kind]
                row["McNemar p"] = only.mcnemar_p(kind)
            if len(drops) >= 2:
                ci = t_interval(drops, confidence)
                row["drop CI low"], row["drop CI high"] = ci.low, ci.high
        rows.append(row)
    return pd.DataFrame(rows).set_index("intervention")


# ---------------------------------------------------------------- what bn2 leaves of m

@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """Re-estimate every BatchNorm's running mean and variance as the plain average over
    ``batches`` (momentum None), in train mode, without touching any weight. The model's
    mode and the momenta are restored. Returns ``model``."""
    norms = [mod for mod in model.modules() if isinstance(mod, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in norms]
    was_training = model.training
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average
    model.train()
    try:
        for x in batches:
            model(x)
    finally:
        for bn, momentum in zip(norms, momenta):
            bn.momentum = momentum
        model.train(was_training)
    return model


@torch.no_grad()
def _output(block: nn.Module, x: torch.Tensor, fn: GainFn, train: bool) -> torch.Tensor:
    block.train(train)
    with replace_gains(block, fn):
        return block(x)


@torch.no_grad()
def constant_gain_effect(block: nn.Module, x: torch.Tensor,
                         gain: float | torch.Tensor) -> dict[str, float]:
    """The largest change in ``block``'s output when its gain m is set to the positive
    per-channel constant ``gain`` instead of 1, or its own m is multiplied by ``gain``.
    ``block`` is a BasicBlock with a modulated conv2 (left unchanged: copies are used).

    Returns ``max |difference|`` in each of four cases: train mode (batch statistics), m = c
    against m = 1, and c * m(x) against m(x); eval mode with each model's running
    statistics gathered (on ``x``) with its own gain; and eval mode with the statistics
    gathered with m = 1 for both, which a constant c then does change.
    """
    one = constant_gain(1.0)
    c = constant_gain(gain)
    out = {
        "train mode: m = c vs m = 1":
            (_output(copy.deepcopy(block), x, c, True) - _output(copy.deepcopy(block), x, one, True)),
        "train mode: c·m(x) vs m(x)":
            (_output(copy.deepcopy(block), x, scaled_gain(gain), True)
             - _output(copy.deepcopy(block), x, lambda n, m: m, True)),
    }
    with_c, with_one = copy.deepcopy(block), copy.deepcopy(block)
    with replace_gains(with_c, c):
        recalibrate_bn(with_c, [x])
    with replace_gains(with_one, one):
        recalibrate_bn(with_one, [x])
    out["eval mode, statistics gathered with each gain: m = c vs m = 1"] = (
        _output(with_c, x, c, False) - _output(with_one, x, one, False))
    out["eval mode, statistics gathered with m = 1: m = c vs m = 1"] = (
        _output(with_one, x, c, False) - _output(with_one, x, one, False))
    return {k: v.abs().max().item() for k, v in out.items()}
