"""What a model costs per image: multiply-adds (counted) and CPU latency (measured).

Multiply-adds (MACs) are counted by :class:`torch.utils.flop_counter.FlopCounterMode`,
which sees every convolution and matrix product that runs (it reports FLOPs, counting
a multiply-add as two) and nothing else: batch norm, ReLU, pooling, softmax, tanh and
elementwise products are not in it. For a gated model the one elementwise product that
scales with the feature map, ``delta * m`` (one multiply per output value of every gated
layer), is counted separately by :func:`gate_multiplies`. Bias additions are not counted
either (the usual convention: a k x k conv from C_in to C_out channels on an H x W output
costs C_in * C_out * k^2 * H * W MACs).

    >>> count_macs(abn.resnet_s())            # per 32 x 32 image
    >>> cpu_latency(abn.resnet_s())           # {'median_ms': ..., 'iqr_ms': ..., ...}
    >>> compare_cpu_latency({"S": abn.resnet_s(), "DMB": abn.resnet_dmb()})
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from contextlib import ExitStack

import torch
from torch import nn
from torch.utils.benchmark import Measurement, Timer
from torch.utils.flop_counter import FlopCounterMode

from abn.gates import gated_layers
from abn.models import evaluating

InputSize = tuple[int, ...]


def _example(model: nn.Module, input_size: InputSize) -> torch.Tensor:
    """A zero input of ``input_size`` on the model's device and in its dtype."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    return torch.zeros(input_size, device=device, dtype=dtype)


def _flop_counts(model: nn.Module, input_size: InputSize) -> FlopCounterMode:
    with evaluating(model), torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(_example(model, input_size))
    return counter


def count_macs(model: nn.Module, input_size: InputSize = (1, 3, 32, 32)) -> int:
    """Multiply-adds of the convolutions and matrix products in one forward pass.

    With the default batch of 1 this is the cost per image. Elementwise work (batch norm,
    activations, the gate's ``delta * m``) is not included; see ``gate_multiplies``.
    """
    return _flop_counts(model, input_size).get_total_flops() // 2


def macs_by_module(model: nn.Module, input_size: InputSize = (1, 3, 32, 32)) -> dict[str, int]:
    """Multiply-adds per module, keyed by qualified name as in ``model.named_modules()``
    (``""`` is the whole model); a module's count includes its children's."""
    counts = _flop_counts(model, input_size).get_flop_counts()
    root = type(model).__name__
    out: dict[str, int] = {}
    for name, per_op in counts.items():
        if name == "Global":
            continue
        key = "" if name == root else name.removeprefix(root + ".")
        out[key] = sum(per_op.values()) // 2
    return out


def gate_multiplies(model: nn.Module, input_size: InputSize = (1, 3, 32, 32)) -> int:
    """Elementwise multiplies by the gates' modulation ``m``: one per output value of
    every gated layer (:class:`abn.gates.GateEmitter`), 0 for a model without gates."""
    total = 0

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel()

    handles = [mod.register_forward_hook(hook) for mod in gated_layers(model).values()]
    try:
        with evaluating(model), torch.inference_mode():
            model(_example(model, input_size))
    finally:
        for handle in handles:
            handle.remove()
    return total


def _check_latency_args(models: list[nn.Module], batch_size: int, repeats: int, warmup: int,
                        threads: int | None) -> None:
    if repeats < 1 or warmup < 0 or batch_size < 1:
        raise ValueError(f"need repeats >= 1, warmup >= 0, batch_size >= 1; got "
                         f"{repeats=}, {warmup=}, {batch_size=}.")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be positive or None, got {threads}.")
    for model in models:
        if any(p.device.type != "cpu" for p in model.parameters()):
            raise ValueError("cpu_latency times a model on the CPU; move it there with model.cpu().")


def _summary(passes: list[Measurement], batch_size: int, threads: int) -> dict[str, float]:
    """Median, quartiles and IQR (ms) of one model's timed passes, merged into one Measurement."""
    merged = Measurement.merge(passes)[0]
    times = [1e3 * t for t in merged.times]
    q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else times * 3
    return {"median_ms": 1e3 * merged.median, "q1_ms": q1, "q3_ms": q3, "iqr_ms": 1e3 * merged.iqr,
            "per_image_ms": 1e3 * merged.median / batch_size, "batch_size": batch_size,
            "repeats": len(times), "threads": threads}


def compare_cpu_latency(models: Mapping[str, nn.Module], batch_size: int = 1, repeats: int = 30,
                        warmup: int = 5, image_size: InputSize = (3, 32, 32),
                        threads: int | None = 1) -> dict[str, dict[str, float]]:
    """:func:`cpu_latency` of several models, timed in turns: pass 1 of every model, then
    pass 2 of every model, and so on. On a shared machine a burst of load from elsewhere
    then slows all models alike instead of whichever happened to be running.
    Returns ``{name: cpu_latency-style dict}``.

    Each pass is one ``torch.utils.benchmark.Timer.timeit(1)``: the Timer sets the thread
    count (and restores it), and runs two untimed passes of the same model right before
    the timed one, so every timed pass starts with that model's weights in the caches.
    """
    _check_latency_args(list(models.values()), batch_size, repeats, warmup, threads)
    x = torch.zeros((batch_size, *image_size))
    used_threads = torch.get_num_threads() if threads is None else threads
    timers = {name: Timer("model(x)", globals={"model": model, "x": x}, num_threads=used_threads,
                          description=name) for name, model in models.items()}
    passes: dict[str, list[Measurement]] = {name: [] for name in models}
    with ExitStack() as stack:
        for model in models.values():
            stack.enter_context(evaluating(model))
        stack.enter_context(torch.inference_mode())
        for timer in timers.values():
            if warmup:
                timer.timeit(warmup)
        for _ in range(repeats):
            for name, timer in timers.items():
                passes[name].append(timer.timeit(1))
    return {name: _summary(p, batch_size, used_threads) for name, p in passes.items()}


def cpu_latency(model: nn.Module, batch_size: int = 1, repeats: int = 30, warmup: int = 5,
                image_size: InputSize = (3, 32, 32), threads: int | None = 1) -> dict[str, float]:
    """Wall time of one forward pass on the CPU, in milliseconds, over ``repeats`` runs.

    The model runs in eval mode under :func:`torch.inference_mode` (its mode is restored
    afterwards) on a zero batch of ``batch_size`` images, after ``warmup`` untimed runs,
    with ``threads`` intra-op threads (restored afterwards; ``None`` keeps PyTorch's
    setting). One thread is the default because it is the stable measurement: on a
    machine whose cores are shared, OpenMP threads that wait for each other can make a
    multi-threaded batch-1 pass several times slower than a single-threaded one.
    Returns the median, the quartiles and the interquartile range (robust to the odd
    slow run), the per-image median, and the settings used. To compare models, use
    :func:`compare_cpu_latency`, which times them in turns.
    """
    return compare_cpu_latency({"model": model}, batch_size, repeats, warmup, image_size, threads)["model"]
