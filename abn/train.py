"""Train a ResNet on CIFAR-10 with the authors' recipe; checkpoints, resume, JSON results.

Recipe (the defaults): SGD, lr 0.1, momentum 0.9, weight decay 5e-4, cosine annealing
to zero over all training steps (updated every step, so even a 3-epoch quick run ends at
lr 0 rather than at a quarter of the peak), batch 128, random crop with 4-pixel zero
padding + horizontal flip, CIFAR-10's true per-channel normalisation, 15 epochs.

Two protocols (:data:`PROTOCOLS`, ``--protocol``): ``honest`` is the recipe above with the
last ``val_size`` training images held out for choices; ``paper`` follows the authors'
``main.py`` (github.com/zorino96/Adaptive-Bias-Networks at commit 09f6851) in data,
normalisation and schedule: all 50,000 training images (no validation split), the
often-copied std (0.2023, 0.1994, 0.2010), and the cosine schedule stepped once per epoch
(``CosineAnnealingLR(T_max=epochs)``). Both record the test accuracy after every epoch.

What differs from ``main.py``'s loop, under either protocol: data and augmentation live
on the device (:class:`abn.data.DeviceLoader`, whose seeded generator draws its own crops
and flips instead of torchvision's per-image transforms), the forward/backward pass runs
under bf16 autocast where the hardware has it (:func:`default_amp`) with channels-last
tensors, and ``compile=True`` adds ``torch.compile``. These change the arithmetic and the
random stream, not the recipe: a ``paper`` run is the authors' recipe, not a rerun of
their script.
A checkpoint is written after every epoch; rerunning the same command resumes from it.
From the command line::

    python -m abn.train --model resnet_dmb --epochs 15 --seed 0 --out results/dmb_s0.json
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm  # a widget in Jupyter/Colab, text in a terminal

from abn import profiles
from abn.data import (CIFAR10_STD, OFTEN_COPIED_STD, Cifar10, DeviceLoader, check_split_sizes,
                      load_splits)
from abn.models import build_model, count_parameters, evaluating
from abn.provenance import provenance
from abn.results import atomic_path, refuse_results_folder, write_json

SCHEMA_VERSION = 1
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class Protocol:
    """How a run is trained and evaluated, beside its sizes (those are a profile's job)."""

    name: str
    std: tuple[float, float, float]  # normalisation std (the mean is CIFAR-10's in both)
    per_epoch_schedule: bool  # cosine stepped once per epoch (T_max = epochs), else per step
    validation: bool  # hold out the last val_size training images for choices
    schedule: str  # how the result's recipe describes the schedule


PROTOCOLS = {
    "honest": Protocol("honest", CIFAR10_STD, per_epoch_schedule=False, validation=True,
                       schedule="cosine to 0, per step"),
    "paper": Protocol("paper", OFTEN_COPIED_STD, per_epoch_schedule=True, validation=False,
                      schedule="cosine to 0, per epoch (CosineAnnealingLR(T_max=epochs))"),
}


@dataclass
class TrainConfig:
    """Everything that determines a run's result (the device aside)."""

    model: str = "resnet_dmb"
    model_kwargs: dict = field(default_factory=dict)  # e.g. {"num_biases": 8}
    width: float = 1.0
    epochs: int = 15
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    train_subset: int | None = None
    val_size: int = 5_000
    test_subset: int | None = None
    amp: bool | None = None  # bf16 autocast; None: where the hardware has bf16 (see default_amp)
    channels_last: bool = True
    compile: bool | str = False  # True, or a torch.compile mode such as "reduce-overhead"
    profile: str = "full"
    protocol: str = "honest"  # a key of PROTOCOLS

    @classmethod
    def from_profile(cls, profile: str | None = None, **overrides) -> "TrainConfig":
        """The config a profile implies (see :mod:`abn.profiles`), with overrides applied
        (None: not overridden). Under ``protocol="paper"`` no validation split is held out."""
        p = profiles.resolve(profile)
        paper = overrides.get("protocol") == "paper"
        base = dict(width=p.width, epochs=p.epochs, batch_size=p.batch_size,
                    train_subset=p.train_subset, val_size=0 if paper else p.val_size,
                    test_subset=p.test_subset, profile=p.name)
        return cls(**{**base, **{k: v for k, v in overrides.items() if v is not None}})

    def __post_init__(self) -> None:
        """Refuse settings that cannot train, with one line naming the field (the CLIs
        show it as their error): epochs, batch size and learning rate must be positive,
        the split sizes must fit CIFAR-10, and the model must build (a known name, a
        positive width, valid model kwargs; built on the meta device, so it costs nothing)."""
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}.")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}.")
        if isinstance(self.compile, str) and self.compile not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {COMPILE_MODES}, got {self.compile!r}.")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}, got {self.protocol!r}.")
        if not PROTOCOLS[self.protocol].validation and self.val_size:
            raise ValueError(f"protocol {self.protocol!r} holds out no validation split: val_size "
                             f"must be 0, got {self.val_size}.")
        check_split_sizes(self.train_subset, self.val_size, self.test_subset)
        try:
            with torch.device("meta"):
                build_model(self.model, self.width, **self.model_kwargs)
        except TypeError as err:  # model kwargs the model does not take
            raise ValueError(f"{self.model} does not take {sorted(self.model_kwargs)} ({err}).") from err


def default_device() -> torch.device:
    """CUDA when a GPU is present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_amp(device: torch.device) -> bool:
    """bf16 autocast on CUDA, and on CPUs with native bf16 (AVX512-BF16/AMX) only.

    Without native support, oneDNN emulates bf16 and a training step gets ~15x slower
    (measured on this project's AVX2 CI machine), so fp32 is the fast choice there.
    """
    if device.type == "cuda":
        return True
    try:
        return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a private op: absent in some builds
        return False


def autocast(device: torch.device, enabled: bool) -> torch.autocast:
    """bf16 autocast on ``device`` when ``enabled``, a no-op context otherwise."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DeviceLoader, amp: bool = True) -> float:
    """Top-1 accuracy (%) of ``model`` over ``loader`` (in eval mode; the mode is restored)."""
    correct = total = 0
    with evaluating(model), autocast(loader.device, amp):
        for x, y in loader:
            correct += (model(x).argmax(dim=1) == y).sum().item()
            total += len(y)
    return 100.0 * correct / total


def config_dict(cfg: TrainConfig) -> dict:
    """``cfg`` as a plain dict: what a checkpoint stores to recognise its run."""
    return dataclasses.asdict(cfg)


def config_diff(now: dict, then: dict, ignore: tuple[str, ...] = ()) -> dict:
    """The fields where config dict ``then`` (stored earlier) differs from ``now``, as
    {field: (now, then)}. Fields ``then`` lacks, because it was written before they
    existed, count as their defaults (a checkpoint without ``protocol`` is ``honest``)."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)
                if f.default is not dataclasses.MISSING}
    then = defaults | then
    return {k: (v, then.get(k)) for k, v in now.items() if k not in ignore and then.get(k) != v}


class Run:
    """The state of one training run: model, optimiser, schedule, data, history."""

    def __init__(self, cfg: TrainConfig, device: torch.device | str | None = None,
                 data: Cifar10 | None = None) -> None:
        """``data``: the splits to train on instead of CIFAR-10's (the smoke check's
        synthetic images, :func:`abn.data.synthetic_cifar10`); None reads CIFAR-10."""
        self.cfg, self.device = cfg, torch.device(device) if device else default_device()
        self.amp = default_amp(self.device) if cfg.amp is None else cfg.amp
        self.protocol = PROTOCOLS[cfg.protocol]
        data = data or load_splits(cfg.train_subset, cfg.val_size, cfg.test_subset)
        self.train_loader = self._loader(data.train, train=True)
        self.val_loader = self._loader(data.val, train=False) if cfg.val_size else None
        self.test_loader = self._loader(data.test, train=False)
        # The initialisation depends on the seed alone and pairs across variants (every
        # tensor shared with ResNet-S starts equal); the data order and augmentation come
        # from the loaders' own (seed, epoch) generators; the global stream is seeded too,
        # so anything that draws from it later does so alike for every variant.
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model, cfg.width, seed=cfg.seed,
                                 **cfg.model_kwargs).to(self.device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                         weight_decay=cfg.weight_decay)
        per_epoch = self.protocol.per_epoch_schedule
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=cfg.epochs * (1 if per_epoch else len(self.train_loader)))
        mode = cfg.compile if isinstance(cfg.compile, str) else None
        self.forward = torch.compile(self.model, mode=mode) if cfg.compile else self.model
        self.history: list[dict] = []
        self.result: dict | None = None  # set by train() when the run is finished

    def _loader(self, split: tuple[torch.Tensor, torch.Tensor], train: bool) -> DeviceLoader:
        """A loader of ``split`` on the run's device: shuffled and augmented for training,
        in order and in batches of 500 for evaluation."""
        return DeviceLoader(*split, batch_size=self.cfg.batch_size if train else 500, train=train,
                            seed=self.cfg.seed, device=self.device, channels_last=self.cfg.channels_last,
                            std=self.protocol.std)

    @property
    def epoch(self) -> int:
        """Number of completed epochs."""
        return len(self.history)

    def state_dict(self) -> dict:
        return {"config": config_dict(self.cfg), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        if diff := config_diff(config_dict(self.cfg), state["config"]):
            raise ValueError(f"Checkpoint was written by a different config (now, then): {diff}. "
                             "Delete the checkpoint or rerun with the same settings.")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.history = state["history"]

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step on a batch (and one step of a per-step schedule); returns loss and logits."""
        with autocast(self.device, self.amp):
            logits = self.forward(x)
            loss = F.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if not self.protocol.per_epoch_schedule:
            self.scheduler.step()
        return loss, logits

    def train_epoch(self, bar: tqdm | None = None) -> dict:
        """One epoch of SGD, then validation and test accuracy; returns its history row.

        ``bar``, if given, advances by one per step (one bar spans the whole run, so a
        notebook shows a single bar rather than one per epoch)."""
        loader = self.train_loader
        loader.set_epoch(self.epoch)
        self.model.train()
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        for x, y in loader:
            loss, logits = self.train_step(x, y)
            if bar is not None:
                bar.update()
            # Accumulate on the device: a .item() per step would stall a GPU every batch.
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(dim=1) == y).sum()
        if self.protocol.per_epoch_schedule:
            self.scheduler.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        train_s = time.perf_counter() - t0
        lr = self.optimizer.param_groups[0]["lr"]  # at the end of the epoch
        n = len(loader.images)
        row = {"epoch": self.epoch + 1, "lr": lr, "train_loss": loss_sum.item() / n,
               "train_acc": 100.0 * correct.item() / n,
               "val_acc": evaluate(self.model, self.val_loader, self.amp) if self.val_loader else None,
               "test_acc": evaluate(self.model, self.test_loader, self.amp)}
        row.update(train_s=train_s, seconds=time.perf_counter() - t0, images_per_s=n / train_s)
        self.history.append(row)
        return row


def result_record(run: Run, wall_s: float, command: str | None = None) -> dict:
    """The JSON-able result record of a finished run (schema: results/README.md)."""
    cfg, hist = run.cfg, run.history
    best = max(hist, key=lambda r: r["test_acc"])
    train_s = sum(r["train_s"] for r in hist)
    return {
        "schema": SCHEMA_VERSION,
        "kind": "train",
        "model": cfg.model,
        "variant": run.model.modulator_name,
        "width": cfg.width,
        "params": count_parameters(run.model),
        "seed": cfg.seed,
        "profile": cfg.profile,
        "protocol": cfg.protocol,
        "recipe": {k: v for k, v in config_dict(cfg).items() if k not in ("model", "seed", "width", "profile")}
        | {"amp": run.amp, "optimizer": "SGD", "schedule": run.protocol.schedule,
           "augment": "crop 32, pad 4 + hflip", "normalize_std": list(run.protocol.std)},
        "history": hist,
        "final_test_acc": hist[-1]["test_acc"],
        "final_val_acc": hist[-1]["val_acc"],  # None without a validation split
        "best_test_acc": best["test_acc"],  # the paper's "best": max over epochs, on test
        "best_epoch": best["epoch"],
        "wall_s": wall_s,
        "train_images_per_s": len(run.train_loader.images) * len(hist) / train_s,
        "provenance": provenance(run.device, command),
    }


def checkpoint_folder(default: str | Path = "checkpoints") -> Path:
    """Where training checkpoints go: ``$ABN_CHECKPOINTS`` when it is set, else ``default``.

    The tests give each book build a fresh folder this way, so a chapter never resumes a
    run that an earlier build (of other code) left behind."""
    return Path(os.environ.get("ABN_CHECKPOINTS") or default)


def _tqdm_disabled() -> bool:
    """True when ``$TQDM_DISABLE`` asks for no progress bar (set and not 0 or false)."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false")


def train(cfg: TrainConfig, out: str | Path | None = None, checkpoint: str | Path | None = None,
          device: torch.device | str | None = None, progress: bool = True,
          on_epoch_end: Callable[[Run], None] | None = None, command: str | None = None,
          data: Cifar10 | None = None) -> Run:
    """Train per ``cfg``; resume from ``checkpoint`` if it exists; write ``out`` as JSON.

    Returns the finished :class:`Run`: ``run.model`` is the trained model and
    ``run.result`` the result dict that ``out`` receives.

    ``on_epoch_end(run)`` is called after each epoch's checkpoint is on disk (it may raise
    to stop the run; rerunning then resumes where it stopped).

    ``data``: splits to train on instead of CIFAR-10 (see :class:`Run`); such a run may
    not write into the repository's ``results/`` (:func:`abn.results.refuse_results_folder`).
    """
    if data is not None:
        for path in (out, checkpoint):
            refuse_results_folder(path)
    run = Run(cfg, device, data)
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt and ckpt.exists():
        run.load_state_dict(torch.load(ckpt, map_location=run.device, weights_only=False))
        print(f"resumed {cfg.model} seed {cfg.seed} from {ckpt.name} after epoch {run.epoch}", flush=True)
    t0 = time.perf_counter() - sum(r["seconds"] for r in run.history)
    steps = len(run.train_loader)
    # The printed line per epoch stays; the live bar goes where no one can watch it: the
    # book build sets TQDM_DISABLE=1 (book/_ext/offline_book.py), since in a static page
    # the bar is a frozen widget. (tqdm's own reading of the variable misses the widget.)
    bar = tqdm(total=cfg.epochs * steps, initial=run.epoch * steps, unit="step", mininterval=1.0,
               desc=f"{cfg.model} seed {cfg.seed}", disable=_tqdm_disabled()) if progress else None
    while run.epoch < cfg.epochs:
        row = run.train_epoch(bar)
        if bar is not None:
            bar.set_postfix(epoch=row["epoch"], test=f"{row['test_acc']:.1f}%", refresh=False)
            val = f"val {row['val_acc']:.2f}%  " if row["val_acc"] is not None else ""
            bar.write(f"{cfg.model} epoch {row['epoch']:>2}/{cfg.epochs}  loss {row['train_loss']:.3f}  "
                      f"{val}test {row['test_acc']:.2f}%  {row['images_per_s']:.0f} img/s  "
                      f"{row['seconds']:.1f}s")
        if ckpt:
            with atomic_path(ckpt) as tmp:
                torch.save(run.state_dict(), tmp)
        if on_epoch_end:
            on_epoch_end(run)
    if bar is not None:
        bar.close()
    run.result = result_record(run, time.perf_counter() - t0, command)
    if out:
        write_json(run.result, out)
    return run


def add_config_args(p: argparse.ArgumentParser) -> None:
    """The flags that set a :class:`TrainConfig` (shared with ``python -m abn.sweep``)."""
    p.add_argument("--num-biases", type=int, help="K of the DMB bias bank (resnet_dmb)")
    p.add_argument("--profile", choices=profiles.PROFILES, help="quick | full | auto (default: $ABN_PROFILE or auto)")
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), default="honest",
                   help="honest (default): 5,000 images held out, true std, per-step cosine; "
                        "paper: the authors' main.py (all 50,000, often-copied std, per-epoch cosine)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--width", type=float, help="width multiplier (1 = the paper's nets)")
    p.add_argument("--train-subset", type=int, help="train on the first N training images")
    p.add_argument("--val-size", type=int, help="hold out the last N training images (honest protocol)")
    p.add_argument("--test-subset", type=int, help="evaluate on the first N test images")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--no-amp", action="store_true", help="train in fp32 instead of bf16 autocast")
    p.add_argument("--compile", nargs="?", const=True, metavar="MODE",
                   help="use torch.compile, in MODE if given (reduce-overhead: CUDA graphs)")
    p.add_argument("--device", help="cuda | cpu (default: cuda if available)")
    p.add_argument("--no-progress", action="store_true")


def config_from_args(args: argparse.Namespace, model: str, seed: int) -> TrainConfig:
    """The :class:`TrainConfig` the flags of :func:`add_config_args` set (ValueError if invalid)."""
    kwargs = {"num_biases": args.num_biases} if args.num_biases is not None else {}
    return TrainConfig.from_profile(
        args.profile, model=model, model_kwargs=kwargs, epochs=args.epochs, seed=seed,
        width=args.width, train_subset=args.train_subset, val_size=args.val_size,
        test_subset=args.test_subset, batch_size=args.batch_size, lr=args.lr,
        amp=False if args.no_amp else None, compile=args.compile or None, protocol=args.protocol)


def configs_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace,
                      models: list[str], seeds: list[int]) -> list[TrainConfig]:
    """One config per (seed, model), seed-major. Settings that cannot train (an unknown
    model, ``--epochs 0``, a negative size, a subset larger than its split) end the program
    through ``parser.error``: one line naming the problem, exit status 2, no traceback."""
    try:
        return [config_from_args(args, model, seed) for seed in seeds for model in models]
    except ValueError as err:
        parser.error(str(err))


def main(argv: list[str] | None = None) -> None:
    """``python -m abn.train``: one training run, resumable, written to ``--out``."""
    p = argparse.ArgumentParser(prog="python -m abn.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet_dmb", help="model name (python -m abn.models lists them)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the result JSON here")
    p.add_argument("--checkpoint", help="checkpoint path (default: <$ABN_CHECKPOINTS or "
                                        "checkpoints>/<out name>.pt)")
    add_config_args(p)
    args = p.parse_args(argv)
    cfg, = configs_from_args(p, args, [args.model], [args.seed])
    ckpt = args.checkpoint or (checkpoint_folder() / f"{Path(args.out).stem}.pt" if args.out else None)
    result = train(cfg, out=args.out, checkpoint=ckpt, device=args.device,
                   progress=not args.no_progress).result
    print(f"{cfg.model}: {result['params']:,} parameters, final test accuracy "
          f"{result['final_test_acc']:.2f}% (best over epochs {result['best_test_acc']:.2f}%), "
          f"{result['wall_s']:.1f}s" + (f"; wrote {args.out}" if args.out else ""))


if __name__ == "__main__":
    main()
