"""What the gates of a model do on a set of images: numbers, no drawing.

:func:`gate_statistics` runs a model over images inside :func:`abn.gates.record_gates` and
returns a :class:`GateStats`: per gated layer the modulation m (images x channels) and the
bias-bank weights alpha (images x K), and what follows from them (class means, the
entropy of alpha, a per-layer summary, the channels each class turns down most).
:mod:`abn.figures` draws them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from abn.data import CLASSES, denormalize, normalize
from abn.gates import record_gates
from abn.models import evaluating

LOW, HIGH = 0.5, 1.5  # a channel is "turned down" below LOW and "turned up" above HIGH


def across_image_cv(m: torch.Tensor) -> torch.Tensor:
    """Per channel, the coefficient of variation of the gain over images: std / mean of
    each column of ``m`` (images x channels), std with Bessel's correction.

    This is the part of a DMB gain that reaches the block's output. ``bn2`` follows the
    modulated conv, and batch norm divides out any positive per-channel constant factor,
    so what is left of m_c is how it varies from image to image relative to its level:
    0 means a fixed gain per channel, which ``bn2`` erases; 0.1 means the gain typically
    moves by 10% of its mean between images. Gates after ``bn2`` (SE, SE-Var3, the
    query-key gate) also pass their level on, so for them this is only the dynamic part.
    """
    if m.dim() != 2 or len(m) < 2:
        raise ValueError(f"across_image_cv needs m as images x channels with 2 or more images, "
                         f"got shape {tuple(m.shape)}.")
    return m.std(dim=0) / m.mean(dim=0)


def cv_summary(m: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Per layer: the across-image CV of its channels (:func:`across_image_cv`) as the
    median, mean, 10th and 90th percentile over channels, and the largest."""
    rows = []
    for layer, mm in m.items():
        cv = across_image_cv(mm)
        q10, q50, q90 = torch.quantile(cv, torch.tensor([0.1, 0.5, 0.9])).tolist()
        rows.append(dict(layer=layer, channels=mm.shape[1], median_cv=q50, mean_cv=cv.mean().item(),
                         p10_cv=q10, p90_cv=q90, max_cv=cv.max().item()))
    return pd.DataFrame(rows).set_index("layer")


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of each row of a probability matrix; 0 log 0 = 0."""
    return -(p * p.clamp_min(1e-12).log()).sum(dim=-1)


@dataclass
class GateStats:
    """The gates of a model on a set of images (all tensors on the CPU, float32).

    ``m[layer]`` is images x channels, ``alpha[layer]`` images x K, ``class_mean[layer]``
    classes x channels (NaN for a class with no images), ``alpha_entropy[layer]`` the
    entropy of each image's alpha divided by log K (1: uniform mixing, 0: one bank entry).
    ``summary`` has one row per layer (see :func:`layer_summary`).
    """

    layers: list[str]
    m: dict[str, torch.Tensor]
    alpha: dict[str, torch.Tensor]
    images: torch.Tensor  # uint8, for display
    labels: torch.Tensor
    preds: torch.Tensor
    classes: tuple[str, ...]
    class_mean: dict[str, torch.Tensor]
    alpha_entropy: dict[str, torch.Tensor]
    summary: pd.DataFrame

    @property
    def accuracy(self) -> float:
        """Top-1 accuracy (%) of the model on these images."""
        return 100.0 * (self.preds == self.labels).float().mean().item()

    def suppressed(self, k: int = 3) -> pd.DataFrame:
        """For each class and layer, the ``k`` channels whose mean m falls furthest below
        their mean over all images (the channels this class turns down most).

        Columns: class, layer, channel, class_m (mean m over the class), all_m (mean m over
        all images), diff = class_m - all_m (negative: turned down for this class).
        """
        rows = []
        for layer in self.layers:
            all_m = self.m[layer].mean(dim=0)
            diff = self.class_mean[layer] - all_m
            for c, name in enumerate(self.classes):
                if torch.isnan(diff[c]).all():
                    continue
                for ch in torch.argsort(diff[c])[:k].tolist():
                    rows.append(dict(**{"class": name}, layer=layer, channel=ch,
                                     class_m=self.class_mean[layer][c, ch].item(),
                                     all_m=all_m[ch].item(), diff=diff[c, ch].item()))
        return pd.DataFrame(rows)


def layer_summary(m: dict[str, torch.Tensor], alpha: dict[str, torch.Tensor]) -> pd.DataFrame:
    """A table with one row per layer: how far m strays from 1 and how decisive alpha is.

    ``image_std`` is the standard deviation of a channel's m over images, averaged over
    channels: near 0, the gate is a fixed per-channel scale; larger, it depends on the input.
    ``image_cv`` is that standard deviation divided by the channel's mean m, averaged over
    channels (:func:`across_image_cv`): the part of a DMB gain that survives ``bn2``.
    """
    rows = []
    for layer, mm in m.items():
        a = alpha[layer]
        k = a.shape[1]
        rows.append(dict(
            layer=layer, channels=mm.shape[1], K=k,
            mean_m=mm.mean().item(), mean_abs_dev=(mm - 1).abs().mean().item(),
            share_below=(mm < LOW).float().mean().item(), share_above=(mm > HIGH).float().mean().item(),
            min_m=mm.min().item(), max_m=mm.max().item(),
            image_std=mm.std(dim=0).mean().item() if len(mm) > 1 else 0.0,
            image_cv=across_image_cv(mm).mean().item() if len(mm) > 1 else 0.0,
            alpha_entropy=(entropy(a) / math.log(k)).mean().item() if k > 1 else 0.0,
            alpha_max=a.max(dim=1).values.mean().item()))
    return pd.DataFrame(rows).set_index("layer")


@torch.no_grad()
def gate_statistics(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                    batch_size: int = 500, classes: tuple[str, ...] = CLASSES) -> GateStats:
    """Run ``model`` (in eval mode) over ``images`` and collect what its gates did.

    ``images`` are uint8 (N x 3 x 32 x 32, normalised here as in training) or float
    tensors already normalised. The model runs on its own device, in batches; its
    training mode is restored afterwards. Recording does not change the predictions.
    """
    device = next(model.parameters()).device
    preds = []
    with evaluating(model), record_gates(model) as record:
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size]
            x = normalize(x) if x.dtype == torch.uint8 else x.float()
            preds.append(model(x.to(device)).argmax(dim=1).cpu())
    m, alpha = record.modulation(), record.weights()
    layers = list(m)
    labels = labels.cpu()
    onehot = torch.nn.functional.one_hot(labels, len(classes)).float()  # N x classes
    counts = onehot.sum(dim=0)[:, None]
    class_mean = {n: torch.where(counts > 0, onehot.T @ m[n] / counts.clamp_min(1), torch.nan) for n in layers}
    alpha_entropy = {n: entropy(a) / math.log(a.shape[1]) if a.shape[1] > 1 else torch.zeros(len(a))
                     for n, a in alpha.items()}
    return GateStats(layers, m, alpha, denormalize(images.cpu()), labels, torch.cat(preds), tuple(classes),
                     class_mean, alpha_entropy, layer_summary(m, alpha))
