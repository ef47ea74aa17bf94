"""ResNet-S and ResNet-DMB from the paper, from one ResNet definition.

The paper's CIFAR-10 ResNet: a 3x3 stem of width 64, three stages of widths 64, 128, 256
(strides 1, 2, 2) with two BasicBlocks each, global average pooling, a linear classifier.
ResNet-DMB swaps the second conv of every block for a DynamicModulatedConv2d (K = 4).
``width`` scales every stage (quick mode trains narrow nets); ``modulator`` names the
gate of each block (see :mod:`abn.modulators`).

Every variant of the book is in :data:`MODELS` (what ``python -m abn.train --model``
takes); ``python -m abn.models`` prints each one's parameter count.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from abn import modulators
from abn.modulators import Modulator, conv3x3

STAGE_WIDTHS = (64, 128, 256)
STAGE_STRIDES = (1, 2, 2)
BLOCKS_PER_STAGE = 2


def stage_widths(width: float) -> tuple[int, ...]:
    """The integer stage widths a width multiplier gives (at least one channel each)."""
    return tuple(max(1, round(w * width)) for w in STAGE_WIDTHS)


class BasicBlock(nn.Module):
    """conv-BN-ReLU, conv-BN (optionally modulated), plus a shortcut, then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int, modulator: Modulator) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = modulator.build_conv2(planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.gate = modulator.build_gate(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:  # 1x1 conv + BN when the shape changes
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delta = F.relu(self.bn1(self.conv1(x)))
        delta = self.bn2(self.conv2(delta))
        h = self.shortcut(x)
        if self.gate is not None:
            delta = self.gate(h, delta)
        return F.relu(h + delta)


class ResNet(nn.Module):
    """The paper's small CIFAR ResNet with a width multiplier and a pluggable modulator."""

    def __init__(self, width: float = 1.0, modulator: Modulator | None = None,
                 num_classes: int = 10) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}.")
        modulator = modulator or modulators.get("none")
        widths = stage_widths(width)
        self.width, self.modulator_name = width, modulator.name
        self.stem = nn.Sequential(conv3x3(3, widths[0]), nn.BatchNorm2d(widths[0]), nn.ReLU())
        stages, in_planes = [], widths[0]
        for planes, stride in zip(widths, STAGE_STRIDES):
            blocks = []
            for i in range(BLOCKS_PER_STAGE):
                blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1, modulator))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"ResNet expects images of shape (batch, 3, H, W), got {tuple(x.shape)}.")
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def resnet_s(width: float = 1.0, num_classes: int = 10) -> ResNet:
    """The paper's baseline ResNet-S: 2,777,674 parameters at width 1."""
    return ResNet(width, modulators.get("none"), num_classes)


def resnet_dmb(num_biases: int = 4, width: float = 1.0, num_classes: int = 10) -> ResNet:
    """ResNet-DMB: every block's second conv is DMB-modulated; 2,957,794 parameters at width 1."""
    return ResNet(width, modulators.get("dmb", num_biases=num_biases), num_classes)


def _dmb_k(k: int) -> Callable[..., ResNet]:
    def factory(width: float = 1.0, num_classes: int = 10) -> ResNet:
        return resnet_dmb(k, width, num_classes)

    factory.__name__ = f"resnet_dmb_k{k}"
    factory.__doc__ = f"ResNet-DMB with a bank of K = {k} biases (an ablation of the authors' K = 4)."
    return factory


def resnet_se(width: float = 1.0, num_classes: int = 10, reduction: int = 16) -> ResNet:
    """Squeeze-and-excitation (r = 16) on every block's residual branch."""
    return ResNet(width, modulators.get("se", reduction=reduction), num_classes)


def resnet_se_var3(width: float = 1.0, num_classes: int = 10) -> ResNet:
    """ECA-Net's SE-Var3 (one C x C layer) on every block's residual branch."""
    return ResNet(width, modulators.get("se_var3"), num_classes)


def resnet_qk(width: float = 1.0, num_classes: int = 10) -> ResNet:
    """The PNN query-key gate between shortcut and residual branch in every block."""
    return ResNet(width, modulators.get("qk"), num_classes)


def plain_parameter_count(widths: tuple[int, ...], num_classes: int = 10) -> int:
    """Parameters of a plain ResNet-S with these stage widths, by formula.

    stem 27a + 2a; a block from ``i`` to ``p`` channels 9ip + 9p^2 + 4p (two 3x3 convs and
    two BNs), plus ip + 2p for a 1x1 shortcut with BN when the shape changes; the
    classifier (c + 1) * num_classes. tests/test_modulators.py checks it against real models.
    """
    total, prev = 27 * widths[0] + 2 * widths[0], widths[0]
    for planes, stride in zip(widths, STAGE_STRIDES):
        for i in range(BLOCKS_PER_STAGE):
            total += 9 * prev * planes + 9 * planes * planes + 4 * planes
            if (stride if i == 0 else 1) != 1 or prev != planes:
                total += prev * planes + 2 * planes
            prev = planes
    return total + (prev + 1) * num_classes


@functools.lru_cache(maxsize=32)
def matched_width(width: float = 1.0, num_biases: int = 4) -> float:
    """The width multiplier of a plain ResNet-S whose parameter count is closest to
    ResNet-DMB's (K = ``num_biases``) at ``width``.

    Stage widths are rounded to integers, so only some counts are reachable: we scan
    multipliers from ``width`` to 1.4 x ``width`` in steps of 0.1%, keep the first that
    gives each distinct set of stage widths, and take the closest count. At width 1 this
    is 1.03 (stages 66, 132, 264: 2,953,708 parameters, 0.14% below ResNet-DMB's
    2,957,794); at quick mode's 0.125 it is 0.129 (8, 17, 33), 0.99% below.
    """
    with torch.device("meta"):  # no memory, no initialisation
        target = count_parameters(resnet_dmb(num_biases, width))
    first: dict[tuple[int, ...], float] = {}
    for i in range(401):
        first.setdefault(stage_widths(width * (1 + i / 1000)), width * (1 + i / 1000))
    best = min(first, key=lambda widths: abs(plain_parameter_count(widths) - target))
    return first[best]


def resnet_s_wide(width: float = 1.0, num_classes: int = 10) -> ResNet:
    """ResNet-S widened to ResNet-DMB's parameter count (see :func:`matched_width`):
    the baseline that tells "more parameters" apart from "a gate"."""
    model = ResNet(matched_width(width), modulators.get("none"), num_classes)
    model.modulator_name = f"none(wide x{matched_width(width) / width:.3f})"
    return model


MODELS: dict[str, Callable[..., ResNet]] = {
    "resnet_s": resnet_s,
    "resnet_dmb": resnet_dmb,  # K from num_biases (the CLI's --num-biases), default 4
    **{f"resnet_dmb_k{k}": _dmb_k(k) for k in (0, 1, 8)},
    "resnet_se": resnet_se,
    "resnet_se_var3": resnet_se_var3,
    "resnet_qk": resnet_qk,
    "resnet_s_wide": resnet_s_wide,
}


def build_model(name: str, width: float = 1.0, seed: int | None = None, **kwargs) -> ResNet:
    """A model by its name in :data:`MODELS` (what the CLI's ``--model`` takes).

    With ``seed``, the initialisation depends on the seed alone and *pairs* across
    variants: every tensor (parameter or buffer) the model shares with ResNet-S at the
    same width, by name and shape, starts as ResNet-S's does for that seed (see
    :func:`adopt_shared`); only the modulator's own tensors are drawn apart. Without
    this, the gate's parameters draw from the same random stream as the backbone, and
    every conv after the first gate would start differently in ResNet-S and ResNet-DMB.
    The global random state is left as it was, so nothing after the build depends on the
    variant. Without ``seed`` the model is drawn from the global stream, as before.
    """
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; choose one of {sorted(MODELS)}.")
    if seed is None:
        return MODELS[name](width=width, **kwargs)
    # Initialisation draws from the CPU generator (models are built on the CPU, then
    # moved); it is seeded inside a fork, so the caller's CPU and GPU streams are untouched.
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        model = MODELS[name](width=width, **kwargs)
        if name != "resnet_s":
            torch.default_generator.manual_seed(seed)
            num_classes = kwargs.get("num_classes", 10)
            adopt_shared(model, resnet_s(width, num_classes=num_classes))
    return model


def shared_tensors(model: nn.Module, base: nn.Module) -> list[str]:
    """Names of the state-dict tensors (parameters and buffers) of ``model`` that ``base``
    has too, with the same shape: what a paired variant shares with ResNet-S."""
    own, other = model.state_dict(), base.state_dict()
    return [k for k, v in own.items() if k in other and other[k].shape == v.shape]


@torch.no_grad()
def adopt_shared(model: nn.Module, base: nn.Module) -> list[str]:
    """Copy into ``model`` every tensor it shares with ``base`` (:func:`shared_tensors`);
    returns their names. Both are built with PyTorch's default initialisation, whose
    distribution depends on a tensor's shape only, so a copied tensor is a draw from
    the distribution it would have had anyway. (One exception: ``resnet_s_wide`` shares
    only the classifier's bias, whose default bound is 1/sqrt(fan-in): its copy is drawn
    within ResNet-S's 1/sqrt(256) instead of 1/sqrt(264).)"""
    names = shared_tensors(model, base)
    state = base.state_dict()
    model.load_state_dict({k: state[k] for k in names}, strict=False)
    return names


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode for the block; its previous mode is restored afterwards
    (also when the block raises), so a caller's training run is never left in eval mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def parameter_table(width: float = 1.0) -> list[dict]:
    """Every model of :data:`MODELS` at ``width``: name, variant, parameters, and the
    difference to ResNet-S. Built on the meta device, so it is instant even at width 1."""
    with torch.device("meta"):
        built = {name: build_model(name, width) for name in MODELS}
    base = count_parameters(built["resnet_s"])
    return [{"model": name, "variant": m.modulator_name, "params": count_parameters(m),
             "extra": count_parameters(m) - base} for name, m in built.items()]


def main(argv: list[str] | None = None) -> None:
    """``python -m abn.models [--width W]``: print every variant's parameter count."""
    p = argparse.ArgumentParser(prog="python -m abn.models", description=main.__doc__)
    p.add_argument("--width", type=float, default=1.0, help="width multiplier (1 = the paper's nets)")
    args = p.parse_args(argv)
    try:
        table = parameter_table(args.width)
    except ValueError as err:  # a width <= 0: one line, exit status 2
        p.error(str(err))
    print(f"{'model':<16}{'variant':<22}{'parameters':>12}{'vs resnet_s':>14}")
    for row in table:
        print(f"{row['model']:<16}{row['variant']:<22}{row['params']:>12,}{row['extra']:>+14,}")


if __name__ == "__main__":
    main()
