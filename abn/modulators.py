"""Channel modulators: the seam where a ResNet block's residual branch gets a gate.

A :class:`Modulator` says how to build two optional pieces of a BasicBlock of width P:

* ``conv2(P)``: the block's second 3x3 convolution. DMB replaces it with
  :class:`~abn.layers.DynamicModulatedConv2d`, whose gate reads the conv's *input*.
* ``gate(P)``: a module called as ``gate(h, delta)`` after the second BatchNorm, with ``h``
  the shortcut output and ``delta`` the residual branch; it returns the branch to add.
  Gates that read the branch's *output* (squeeze-and-excitation) or both streams
  (a query-key gate) plug in here.

Variants register a factory with :func:`register`; models look them up by name:

=========  ===================================================  =====================
name       what the block computes (h shortcut, delta branch)   extra params, width P
=========  ===================================================  =====================
none       h + delta (ResNet-S)                                 0
dmb K>=1   conv2 scaled by 1 + tanh(DMB_K(GAP(x)))              P^2 + P + 2KP + K
dmb K=0    conv2 scaled by 1 + tanh(W GAP(x)) (no bias bank)    P^2 + P
se         delta * sigmoid(W2 relu(W1 GAP(delta)))  (r = 16)    2Pr' + r' + P, r'=P//16
se_var3    delta * sigmoid(W GAP(delta) + b)  (no bottleneck)   P^2 + P
qk         g * delta, g = sigmoid(q(h) * k(delta) / tau)        2P^2 + 2P + 1
=========  ===================================================  =====================

Every gate inherits :class:`abn.gates.GateEmitter` and emits its per-channel
multiplier, so :func:`abn.gates.record_gates` sees all of them alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from abn.gates import GateEmitter
from abn.layers import DynamicModulatedConv2d, ModulatedConv2d, _check_positive


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
    """The registered modulator names, sorted."""
    return sorted(_REGISTRY)


@register("none")
def plain() -> Modulator:
    """No modulation: the baseline ResNet-S block."""
    return Modulator("none")


def _pool(x: torch.Tensor) -> torch.Tensor:
    """Global average pool of a feature map (B x C x H x W -> B x C); vectors pass through."""
    return x.mean(dim=(2, 3)) if x.dim() == 4 else x


def _scale(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """x * m with the per-channel multiplier m (B x C) broadcast over any spatial dims."""
    return x * m.view(*m.shape, *([1] * (x.dim() - 2)))


class GainModulatedConv2d(ModulatedConv2d):
    """The K = 0 ablation of DMB-conv: y = Conv(x) * (1 + tanh(W GAP(x))), no bias bank.

    DynamicMultiBiasLinear needs K >= 1 (a softmax over nothing is undefined), so the
    bank-free gate is its own small module. Everything else matches
    :class:`~abn.layers.DynamicModulatedConv2d`: the gate reads the conv's *input*, W is
    C_in x C_out with nn.Linear's init and no bias, and the conv keeps ``bias=True`` so that
    the only difference to DMB is the bank. Extra parameters: C_in * C_out + C_out.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 **conv_kwargs) -> None:
        super().__init__(in_channels, out_channels, kernel_size, **conv_kwargs)
        self.gain = nn.Linear(in_channels, out_channels, bias=False)  # W

    def modulation(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """m = 1 + tanh(W GAP(x)) in (0, 2), shape (batch, C_out); no bank, so no alpha."""
        return 1 + torch.tanh(self.gain(x.mean(dim=(2, 3)))), None


class SqueezeExcite(GateEmitter):
    """Squeeze-and-excitation on the residual branch, with or without a bottleneck.

    With ``reduction`` r (Hu et al., 2018; r = 16):
    ``gate(h, delta) = delta * sigmoid(W2 relu(W1 GAP(delta) + b1) + b2)``, a bottleneck of
    ``channels // r`` units (at least 1, so narrow quick-mode nets still get one);
    parameters 2 * C * r' + r' + C with r' the bottleneck width.

    With ``reduction=None``, ECA-Net's "SE-Var3": one full C x C layer,
    ``delta * sigmoid(W GAP(delta) + b)``; parameters C^2 + C (nn.Linear's bias included;
    the ECA paper counts the C^2 weights). It is the closest prior-art relative of
    DMB-conv's gate (also one C x C matrix on pooled features); it differs in where it
    reads (the branch's output, not conv2's input), in the range (0, 1) instead of
    (0, 2), and in having a static bias. (timm's ``SEModule`` makes the same choice with
    ``rd_channels``; there "no bottleneck" keeps two layers, here it is one, as in ECA.)

    ``h`` is ignored; it is in the signature because every block gate gets both streams.
    """

    def __init__(self, channels: int, reduction: int | None = 16) -> None:
        super().__init__()
        _check_positive("channels", channels)
        self.channels, self.reduction = channels, reduction
        if reduction is None:
            self.fc = nn.Linear(channels, channels)
        else:
            _check_positive("reduction", reduction)
            hidden = max(1, channels // reduction)
            self.fc1 = nn.Linear(channels, hidden)
            self.fc2 = nn.Linear(hidden, channels)

    def excitation(self, s: torch.Tensor) -> torch.Tensor:
        """The gate's logits from the pooled branch ``s`` (batch x C)."""
        if self.reduction is None:
            return self.fc(s)
        return self.fc2(torch.relu(self.fc1(s)))

    def forward(self, h: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        m = torch.sigmoid(self.excitation(_pool(delta)))
        self.emit(m, None)
        return _scale(delta, m)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}"


class QueryKeyGate(GateEmitter):
    """The query-key gate of Plastic Neural Networks (Choi, 2025) for a residual update.

    ``g = sigmoid((W_q h + b_q) * (W_k delta + b_k) / tau)`` and the caller adds
    ``g * delta`` to ``h`` (the gate returns the gated branch). The state ``h`` asks, the
    proposed update ``delta`` answers, and each coordinate of the update is let through as
    far as the two agree. ``tau`` is a learnable scalar initialised to sqrt(C).
    Parameters: 2 C^2 + 2 C + 1.

    What a coordinate is depends on the input's shape:

    * ``batch x C`` vectors or ``batch x length x C`` sequences (channels last): the gate
      is element-wise, one value per token and dimension, with no pooling. This is PNN's
      ``QueryKeyGate`` (later ``DeltaValidator``) in ``pnn/models/pnn.py``.
    * ``batch x C x H x W`` feature maps (a ResNet block, ``h`` the shortcut): ``h`` and
      ``delta`` are global-average-pooled first and the gate scales whole channels. This
      pooled channel gate is our adaptation, not PNN's.

    ``emit`` reports one row per vector, token or image: shape ``(rows, C)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        _check_positive("channels", channels)
        self.channels = channels
        self.query = nn.Linear(channels, channels)  # W_q, b_q
        self.key = nn.Linear(channels, channels)  # W_k, b_k
        self.tau = nn.Parameter(torch.tensor(math.sqrt(channels)))

    def gate_values(self, h: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """g in (0, 1): ``h``'s shape for vectors and sequences, ``batch x C`` for maps."""
        return torch.sigmoid(self.query(_pool(h)) * self.key(_pool(delta)) / self.tau)

    def forward(self, h: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        self._check(h, delta)
        g = self.gate_values(h, delta)
        self.emit(g.reshape(-1, self.channels), None)
        return _scale(delta, g) if delta.dim() == 4 else g * delta

    def _check(self, h: torch.Tensor, delta: torch.Tensor) -> None:
        """One clear line for inputs the gate cannot read."""
        name = type(self).__name__
        if h.shape != delta.shape:
            raise ValueError(f"{name} needs h and delta of one shape, got {tuple(h.shape)} "
                             f"and {tuple(delta.shape)}.")
        if h.dim() not in (2, 3, 4):
            raise ValueError(f"{name} reads batch x C, batch x length x C or batch x C x H x W "
                             f"inputs, got shape {tuple(h.shape)}.")
        channels = h.shape[1] if h.dim() == 4 else h.shape[-1]
        if channels != self.channels:
            raise ValueError(f"{name} was built for {self.channels} channels, got {channels} "
                             f"(shape {tuple(h.shape)}); build it with channels={channels}.")


@register("dmb")
def dmb(num_biases: int = 4) -> Modulator:
    """The authors' DMB-conv as the block's second convolution (conv keeps bias=True).

    ``num_biases=0`` gives the bank-free ablation ``GainModulatedConv2d``.
    ``num_biases=1`` keeps ``DynamicMultiBiasLinear`` with a bank of one:
    softmax over one logit is 1, so the gate is the closed form 1 + tanh(W GAP(x) + B[:, 0])
    (a static bias), computed by the same code as K = 4. Its gate row G, g (C_in + 1
    parameters a block) then receives no gradient; it is kept, and counted, so that K = 1
    is exactly "the authors' layer with K = 1".
    """
    if num_biases == 0:
        return Modulator("dmb(K=0)", conv2=lambda p: GainModulatedConv2d(p, p, 3, padding=1))
    return Modulator(
        f"dmb(K={num_biases})",
        conv2=lambda p: DynamicModulatedConv2d(p, p, 3, num_biases=num_biases, padding=1),
    )


@register("se")
def se(reduction: int = 16) -> Modulator:
    """Squeeze-and-excitation on the residual branch, bottleneck ``reduction`` (Hu et al.: 16)."""
    return Modulator(f"se(r={reduction})", gate=lambda p: SqueezeExcite(p, reduction))


@register("se_var3")
def se_var3() -> Modulator:
    """ECA-Net's SE-Var3: squeeze-and-excitation without a bottleneck (one C x C layer)."""
    return Modulator("se_var3", gate=lambda p: SqueezeExcite(p, reduction=None))


@register("qk")
def qk() -> Modulator:
    """The PNN query-key gate between the shortcut h and the residual branch delta."""
    return Modulator("qk", gate=QueryKeyGate)
