"""Channel modulators: the seam where a ResNet block's residual branch gets a gate.

A :class:`Modulator` says how to build two optional pieces of a BasicBlock of width P:

* ``conv2(P)``: the block's second 3x3 convolution. DMB replaces it with
  :class:`~abn.layers.DynamicModulatedConv2d`, whose gate reads the conv's *input*.
* ``gate(P)``: a module called as ``gate(h, delta)`` after the second BatchNorm, with ``h``
  the shortcut output and ``delta`` the residual branch; it returns the branch to add.
  Gates that read the branch's *output* (squeeze-and-excitation) or both streams
  (a query-key gate) plug in here.

Variants register a factory with :func:`register`; models look them up by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from abn.layers import DynamicModulatedConv2d


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """The plain 3x3 convolution of a BasicBlock (no bias: BatchNorm follows)."""
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


@dataclass(frozen=True)
class Modulator:
    """How one block's residual branch is modulated; None means 'leave it plain'."""

    name: str
    conv2: Callable[[int], nn.Module] | None = None
    gate: Callable[[int], nn.Module] | None = None

    def build_conv2(self, planes: int) -> nn.Module:
        return self.conv2(planes) if self.conv2 else conv3x3(planes, planes)

    def build_gate(self, planes: int) -> nn.Module | None:
        return self.gate(planes) if self.gate else None


_REGISTRY: dict[str, Callable[..., Modulator]] = {}


def register(name: str) -> Callable[[Callable[..., Modulator]], Callable[..., Modulator]]:
    """Decorator: make a modulator factory available as ``get(name, **kwargs)``."""

    def wrap(factory: Callable[..., Modulator]) -> Callable[..., Modulator]:
        _REGISTRY[name] = factory
        return factory

    return wrap


def get(name: str, **kwargs) -> Modulator:
    """The modulator registered as ``name``, built with ``kwargs``."""
    if name not in _REGISTRY:
        raise ValueError(f"Unknown modulator {name!r}; choose one of {sorted(_REGISTRY)}.")
    return _REGISTRY[name](**kwargs)


def names() -> list[str]:
    return sorted(_REGISTRY)


@register("none")
def plain() -> Modulator:
    """No modulation: the baseline ResNet-S block."""
    return Modulator("none")


@register("dmb")
def dmb(num_biases: int = 4) -> Modulator:
    """The paper's DMB-conv as the block's second convolution (conv keeps bias=True)."""
    return Modulator(
        f"dmb(K={num_biases})",
        conv2=lambda p: DynamicModulatedConv2d(p, p, 3, num_biases=num_biases, padding=1),
    )
