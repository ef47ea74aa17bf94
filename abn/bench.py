"""Training throughput: the authors' loop vs abn's trainer, same device, model and batch size.

(a) The authors' loop (their ``main.py``): ``torchvision.datasets.CIFAR10`` with PIL
    transforms (RandomCrop 32 with padding 4, RandomHorizontalFlip, ToTensor, Normalize),
    a ``DataLoader`` with two worker processes, fp32, eager PyTorch, SGD.
(b) abn's trainer (:class:`abn.train.Run`): the split held as uint8 on the device, crop
    and flip done there in batches, channels-last, bf16 autocast where the hardware has
    bf16 (a CPU without native bf16 trains in fp32: emulated bf16 is ~15x slower),
    optionally ``torch.compile``.

Both run the same number of optimiser steps after the same warm-up, timed by
``torch.utils.benchmark.Timer`` (which synchronises the GPU and keeps the thread count);
images/s counts the whole step, waiting for data included. Prints a table, then one
line of JSON. From the command line::

    python -m abn.bench --model resnet_s
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

from abn.data import (CIFAR10_MEAN, CIFAR10_STD, PAD, TEST_IMAGES, TRAIN_IMAGES, Cifar10,
                      data_root, load_cifar10, synthetic_cifar10)
from abn.models import build_model
from abn.provenance import device_name, provenance
from abn.results import write_json
from abn.train import Run, TrainConfig, default_amp, default_device
from abn._torchvision import import_torchvision


def seconds_per_step(step: Callable[[], None], warmup: int, steps: int) -> float:
    """Mean seconds of one call of ``step`` over ``steps`` timed calls, after ``warmup``
    untimed ones (the Timer adds two more). The Timer synchronises the GPU before reading
    the clock and runs with PyTorch's current thread count (its own default is one)."""
    for _ in range(warmup):
        step()
    timer = Timer("step()", globals={"step": step}, num_threads=torch.get_num_threads())
    return timer.timeit(steps).mean


def _forever(loader) -> Iterator:
    epoch = 0
    while True:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        yield from loader
        epoch += 1


class SyntheticPIL(torch.utils.data.Dataset):
    """Random images served as torchvision's ``CIFAR10`` serves its own: each a PIL image
    made from a 32 x 32 x 3 uint8 array, then ``transform``; the same work per image."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform) -> None:
        self.data, self.targets = images.permute(0, 2, 3, 1).numpy(), labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.data[i])), self.targets[i]


def synthetic_data() -> Cifar10:
    """Random images of CIFAR-10's sizes (45,000 / 5,000 / 10,000): throughput does not
    depend on the pixels, so a GPU session measures before CIFAR-10 has arrived."""
    return synthetic_cifar10(TRAIN_IMAGES - 5_000, 5_000, TEST_IMAGES)


def paper_loop_step(model_name: str, width: float, batch_size: int, device: torch.device,
                    workers: int = 2, synthetic: bool = False) -> Callable[[], None]:
    """One training step of the authors' loop, as a closure over its own DataLoader
    (over :func:`synthetic_data` if ``synthetic``)."""
    tv = import_torchvision()
    T = tv.transforms
    transform = T.Compose([T.RandomCrop(32, padding=PAD), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    if synthetic:
        dataset = SyntheticPIL(*synthetic_data().train, transform)
    else:
        load_cifar10(True)  # same error message as everywhere if the data is missing
        dataset = tv.datasets.CIFAR10(str(data_root()), train=True, download=False,
                                      transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                                         pin_memory=device.type == "cuda", drop_last=True,
                                         persistent_workers=workers > 0)
    torch.manual_seed(0)
    model = build_model(model_name, width, seed=0).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    batches = _forever(loader)

    def step() -> None:
        x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def abn_step(model_name: str, width: float, batch_size: int, device: torch.device,
             compile: bool | str = False, amp: bool | None = None,
             synthetic: bool = False) -> Callable[[], None]:
    """One training step of abn's trainer (the same code path as ``python -m abn.train``);
    ``amp`` None: bf16 autocast where the hardware has bf16 (:func:`abn.train.default_amp`);
    ``compile``: True or a torch.compile mode; ``synthetic``: on :func:`synthetic_data`."""
    cfg = TrainConfig(model=model_name, width=width, batch_size=batch_size, epochs=1, compile=compile,
                      amp=amp)
    run = Run(cfg, device, synthetic_data() if synthetic else None)
    run.model.train()
    batches = _forever(run.train_loader)

    def step() -> None:
        run.train_step(*next(batches))

    return step


def abn_images_per_second(model_name: str, width: float, device: torch.device, amp: bool | None = None,
                          batch_size: int = 64, steps: int = 4, warmup: int = 1) -> float:
    """Training images per second of abn's trainer for ``model_name`` at ``width`` on
    ``device``, with bf16 autocast on or off (``amp``): a few steps, for a quick look."""
    return batch_size / seconds_per_step(abn_step(model_name, width, batch_size, device, amp=amp),
                                         warmup, steps)


def _side_by_side_worker(i: int, model: str, width: float, batch_size: int, device: str,
                         threads: int, warmup: int, steps: int, barrier, rates,
                         compile: bool | str = False, synthetic: bool = False) -> None:
    """One of :func:`side_by_side_images_per_second`'s processes: warm up, wait for the
    others, then time ``steps`` steps of abn's trainer and store the images/s in ``rates[i]``."""
    torch.set_num_threads(threads)
    step = abn_step(model, width, batch_size, torch.device(device), compile, synthetic=synthetic)
    for _ in range(warmup):
        step()
    barrier.wait()  # all processes time the same stretch of wall-clock time
    rates[i] = batch_size / seconds_per_step(step, 0, steps)


def side_by_side_images_per_second(n: int, model: str = "resnet_s", width: float = 1.0,
                                   batch_size: int = 128, steps: int = 200, warmup: int = 20,
                                   device: str | None = None, compile: bool | str = False,
                                   synthetic: bool = False) -> dict:
    """Aggregate training images/s of ``n`` independent training runs side by side on one
    device: what running several sweep processes at once gains over one. Each of ``n``
    processes (spawned) runs abn's trainer; after ``warmup`` steps they start timing
    together and each times ``steps`` steps; the aggregate is the sum of their rates.
    On a CPU the cores are split between them. ``compile``: each process's torch.compile
    (True or a mode); ``synthetic``: random images instead of CIFAR-10 (same speed)."""
    dev = torch.device(device) if device else default_device()
    threads = max(1, (os.cpu_count() or 1) // n) if dev.type == "cpu" else 1
    ctx = torch.multiprocessing.get_context("spawn")  # CUDA cannot be forked
    barrier, rates = ctx.Barrier(n), ctx.Array("d", n)
    procs = [ctx.Process(target=_side_by_side_worker, args=(i, model, width, batch_size, str(dev),
                                                             threads, warmup, steps, barrier, rates,
                                                             compile, synthetic))
             for i in range(n)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    if failed := [proc.exitcode for proc in procs if proc.exitcode != 0]:
        raise RuntimeError(f"{len(failed)} of {n} side-by-side runs failed (exit codes {failed}).")
    return {"runs": n, "model": model, "width": width, "batch_size": batch_size, "steps": steps,
            "compile": compile, "data": "synthetic" if synthetic else "cifar10",
            "images_per_s": round(sum(rates), 1), "per_run_images_per_s": [round(r, 1) for r in rates]}


def check_settings(model: str, width: float, batch_size: int, steps: int | None,
                   warmup: int | None) -> None:
    """Raise ValueError, in one line, for settings that cannot run: the trainer's own
    checks of model, width and batch size, then steps >= 1 and warmup >= 0 (None: default)."""
    TrainConfig(model=model, width=width, batch_size=batch_size)
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}.")
    if warmup is not None and warmup < 0:
        raise ValueError(f"warmup must be a non-negative integer, got {warmup}.")


def default_warmup(device: torch.device) -> int:
    """Untimed steps before timing: enough for cuDNN autotuning and compilation on a GPU."""
    return 20 if device.type == "cuda" else 2


def bench(model: str = "resnet_s", width: float = 1.0, batch_size: int = 128, steps: int | None = None,
          warmup: int | None = None, device: str | None = None, compile: bool | str = False,
          synthetic: bool = False) -> dict:
    """Measure both loops; returns the summary dict printed as the JSON line. ``synthetic``:
    both loops on random images of CIFAR-10's sizes (:func:`synthetic_data`)."""
    dev = torch.device(device) if device else default_device()
    check_settings(model, width, batch_size, steps, warmup)
    steps = steps if steps is not None else 100 if dev.type == "cuda" else 8
    warmup = warmup if warmup is not None else default_warmup(dev)
    paper_s = seconds_per_step(paper_loop_step(model, width, batch_size, dev, synthetic=synthetic),
                               warmup, steps)
    abn_s = seconds_per_step(abn_step(model, width, batch_size, dev, compile, synthetic=synthetic),
                             warmup, steps)
    return {"device": device_name(dev), "model": model, "width": width, "batch_size": batch_size,
            "steps": steps, "warmup": warmup, "compile": compile, "abn_bf16": default_amp(dev),
            "data": "synthetic" if synthetic else "cifar10",
            "paper_loop_img_s": round(batch_size / paper_s, 1), "abn_img_s": round(batch_size / abn_s, 1),
            "ratio": round(paper_s / abn_s, 2)}


def save(result: dict, path: str, device: str | None = None) -> None:
    """Store a :func:`bench` result with its provenance (``"kind": "bench"``)."""
    dev = torch.device(device) if device else default_device()
    write_json({"kind": "bench", **result, "provenance": provenance(dev)}, path)


def main(argv: list[str] | None = None) -> None:
    """``python -m abn.bench``: time the authors' loop and abn's trainer, print both."""
    p = argparse.ArgumentParser(prog="python -m abn.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet_s", help="model name (python -m abn.models lists them)")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, help="timed steps (default 100 on CUDA, 8 on CPU)")
    p.add_argument("--warmup", type=int, help="untimed steps first (default 20 on CUDA, 2 on CPU)")
    p.add_argument("--device")
    p.add_argument("--compile", nargs="?", const=True, metavar="MODE",
                   help="torch.compile abn's model, in MODE if given")
    p.add_argument("--synthetic", action="store_true",
                   help="random images of CIFAR-10's sizes (no CIFAR-10 needed; same speed)")
    p.add_argument("--out", help="also write the result, with provenance, to this JSON file")
    a = p.parse_args(argv)
    try:  # bad input: one line and exit status 2, before anything runs
        check_settings(a.model, a.width, a.batch_size, a.steps, a.warmup)
    except ValueError as err:
        p.error(str(err))
    r = bench(a.model, a.width, a.batch_size, a.steps, a.warmup, a.device, a.compile or False,
              a.synthetic)
    print(f"{r['model']} (width {r['width']:g}), batch {r['batch_size']}, {r['steps']} steps after "
          f"{r['warmup']} warm-up, on {r['device']}")
    print(f"{'loop':<44}{'images/s':>10}")
    print(f"{'main.py: DataLoader(2 workers), PIL, fp32, eager':<44}{r['paper_loop_img_s']:>10.1f}")
    precision = "bf16 autocast" if r["abn_bf16"] else "fp32 (no native bf16)"
    print(f"{'abn: on-device data, channels-last, ' + precision:<44}{r['abn_img_s']:>10.1f}")
    print(f"{'ratio':<44}{r['ratio']:>10.2f}")
    if a.out:
        save(r, a.out, a.device)
    print(json.dumps(r))


if __name__ == "__main__":
    main()
