"""ResNet-S and ResNet-DMB from the paper, from one ResNet definition.

The paper's CIFAR-10 ResNet: a 3x3 stem of width 64, three stages of widths 64, 128, 256
(strides 1, 2, 2) with two BasicBlocks each, global average pooling, a linear classifier.
ResNet-DMB swaps the second conv of every block for a DynamicModulatedConv2d (K = 4).
``width`` scales every stage (quick mode trains narrow nets); ``modulator`` names the
gate of each block (see :mod:`abn.modulators`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from abn import modulators
from abn.modulators import Modulator, conv3x3

STAGE_WIDTHS = (64, 128, 256)
STAGE_STRIDES = (1, 2, 2)
BLOCKS_PER_STAGE = 2


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
        widths = [max(1, round(w * width)) for w in STAGE_WIDTHS]
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


MODELS: dict[str, Callable[..., ResNet]] = {"resnet_s": resnet_s, "resnet_dmb": resnet_dmb}


def build_model(name: str, width: float = 1.0, **kwargs) -> ResNet:
    """A model by its name in :data:`MODELS` (what the CLI's ``--model`` takes)."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; choose one of {sorted(MODELS)}.")
    return MODELS[name](width=width, **kwargs)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
