"""The two layers of Adaptive Bias Networks (Tahir, 2025).

DynamicMultiBiasLinear (DMB) replaces a linear layer's one static bias by a bank of K
bias vectors mixed per input by a softmax gate::

    y = x W^T + softmax(x G^T + g) B^T        W: out x in, G: K x in, g: K, B: out x K

The mixing weights alpha = softmax(...) are shared by all output neurons; only the bank
B is per neuron. DynamicModulatedConv2d uses a DMB on the globally pooled input of a
convolution to scale each output channel by m = 1 + tanh(DMB(GAP(x))), a value in (0, 2).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from abn.gates import GateEmitter


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _check_input(x: torch.Tensor, rank: int, channels: int, what: str, layer: str) -> None:
    if x.dim() != rank:
        raise ValueError(
            f"{layer} expects a {rank}-D input ({what}), got shape {tuple(x.shape)}."
            + (" Add a batch dimension with x.unsqueeze(0)." if x.dim() == rank - 1 else "")
        )
    if x.shape[1] != channels:
        raise ValueError(
            f"{layer} was built for {channels} input features/channels, got {x.shape[1]} "
            f"(input shape {tuple(x.shape)}); build it with in_features/in_channels={x.shape[1]}."
        )


class DynamicMultiBiasLinear(nn.Module):
    """y = x W^T + softmax(x G^T + g) B^T: a linear layer with an input-dependent bias.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        num_biases: K, the number of bias vectors in the bank (at least 1).
    """

    def __init__(self, in_features: int, out_features: int, num_biases: int = 4) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features),
                            ("num_biases", num_biases)):
            _check_positive(name, value)
        self.in_features, self.out_features, self.num_biases = in_features, out_features, num_biases
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.gate = nn.Linear(in_features, num_biases)  # G and g
        self.bias_bank = nn.Parameter(torch.zeros(out_features, num_biases))  # B
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Same init as nn.Linear's weight; the bank starts at zero so that a fresh layer
        # is exactly a bias-free linear layer.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.gate.reset_parameters()
        nn.init.zeros_(self.bias_bank)

    def mixing_weights(self, x: torch.Tensor) -> torch.Tensor:
        """alpha = softmax(x G^T + g), shape (batch, K); each row sums to 1."""
        return torch.softmax(self.gate(x), dim=-1)

    def forward_with_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The output and the mixing weights alpha that produced its bias."""
        _check_input(x, 2, self.in_features, "batch x features", type(self).__name__)
        alpha = self.mixing_weights(x)
        return F.linear(x, self.weight) + alpha @ self.bias_bank.t(), alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_weights(x)[0]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, num_biases={self.num_biases}"


class ModulatedConv2d(nn.Conv2d, GateEmitter):
    """A Conv2d whose output channels are scaled per image by a gate of its input:
    ``y = Conv(x) * m(x)``. Subclasses define only :meth:`modulation`; the forward pass,
    the input check and the report to :func:`abn.gates.record_gates` live here once.
    Being a ``Conv2d`` lets it replace a block's convolution without renaming its weights.
    """

    def modulation(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """m, shape (batch, C_out), and the bias-bank weights alpha, shape (batch, K), or
        None for a gate without a bank."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, 4, self.in_channels, "batch x channels x height x width", type(self).__name__)
        m, alpha = self.modulation(x)
        self.emit(m, alpha)
        return super().forward(x) * m[:, :, None, None]


class DynamicModulatedConv2d(ModulatedConv2d):
    """A Conv2d whose output channels are scaled by m = 1 + tanh(DMB(GAP(x))).

    The gate reads the global average pool of this layer's *input* and so costs one
    C_in x C_out matrix-vector product per image. The convolution keeps PyTorch's default
    ``bias=True`` (the paper's parameter count depends on it). Extra keyword arguments
    (stride, padding, bias, ...) go to :class:`torch.nn.Conv2d`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 num_biases: int = 4, **conv_kwargs) -> None:
        _check_positive("num_biases", num_biases)
        super().__init__(in_channels, out_channels, kernel_size, **conv_kwargs)
        self.dmb = DynamicMultiBiasLinear(in_channels, out_channels, num_biases)

    def modulation(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """m in (0, 2), shape (batch, C_out), and alpha, shape (batch, K)."""
        pre, alpha = self.dmb.forward_with_weights(x.mean(dim=(2, 3)))
        return 1 + torch.tanh(pre), alpha
