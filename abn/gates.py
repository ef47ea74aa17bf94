"""Recording what the gates of a model do, without changing what the model computes.

Every module that modulates channels (DMB-conv now; SE, SE-Var3 and the query-key gate
later) inherits :class:`GateEmitter` and calls ``self.emit(m, alpha)`` in its forward with
the per-channel modulation ``m`` (batch x channels) and, where it has one, the bias-bank
mixing weights ``alpha`` (batch x K). Normally ``emit`` does nothing; inside
:func:`record_gates` it stores detached copies, keyed by the module's name in the model.
Nothing in the forward pass changes, so outputs stay bit-identical.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

Sink = Callable[["GateEmitter", torch.Tensor, "torch.Tensor | None"], None]


class GateEmitter(nn.Module):
    """Base for modules with a channel gate; ``emit`` reports it to a recorder if any."""

    _gate_sink: Sink | None = None

    def emit(self, m: torch.Tensor, alpha: torch.Tensor | None = None) -> None:
        if self._gate_sink is not None:
            self._gate_sink(self, m, alpha)


@dataclass
class LayerGates:
    """What one gated layer produced, batches concatenated in the order they ran."""

    m: list[torch.Tensor] = field(default_factory=list)
    alpha: list[torch.Tensor] = field(default_factory=list)

    @property
    def modulation(self) -> torch.Tensor:
        """The modulation m, batch x channels (float32, CPU)."""
        return torch.cat(self.m)

    @property
    def weights(self) -> torch.Tensor | None:
        """The bias-bank weights alpha, batch x K, or None for gates without a bank."""
        return torch.cat(self.alpha) if self.alpha else None


class GateRecord(dict[str, LayerGates]):
    """Layer name -> :class:`LayerGates`, in forward order."""

    def modulation(self) -> dict[str, torch.Tensor]:
        return {name: layer.modulation for name, layer in self.items()}

    def weights(self) -> dict[str, torch.Tensor]:
        return {n: w for n, layer in self.items() if (w := layer.weights) is not None}


def gated_layers(model: nn.Module) -> dict[str, GateEmitter]:
    """Every gated module of ``model`` by its qualified name."""
    return {name: mod for name, mod in model.named_modules() if isinstance(mod, GateEmitter)}


@contextmanager
def record_gates(model: nn.Module) -> Iterator[GateRecord]:
    """Record m and alpha of every gated layer for each forward pass inside the block.

    >>> with record_gates(model) as gates:
    ...     logits = model(images)
    >>> gates["layer1.0.conv2"].modulation.shape  # (batch, channels)
    """
    layers = gated_layers(model)
    if not layers:
        raise ValueError(
            f"{type(model).__name__} has no gated layers to record; build it with a "
            "modulator, e.g. abn.models.resnet_dmb()."
        )
    record = GateRecord()
    names = {id(mod): name for name, mod in layers.items()}

    def sink(module: GateEmitter, m: torch.Tensor, alpha: torch.Tensor | None) -> None:
        entry = record.setdefault(names[id(module)], LayerGates())
        entry.m.append(m.detach().float().cpu())
        if alpha is not None:
            entry.alpha.append(alpha.detach().float().cpu())

    for mod in layers.values():
        mod._gate_sink = sink
    try:
        yield record
    finally:
        for mod in layers.values():
            mod._gate_sink = None
