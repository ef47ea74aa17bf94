"""``python -m abn.campaign --smoke``: a GPU session's whole path, on synthetic images.

A drawn GPU has 15 minutes; a bug met there for the first time can spend them all. This
check runs, on random uint8 images in CIFAR-10's shapes (:func:`abn.data.synthetic_cifar10`,
so it needs no copy of CIFAR-10), everything the campaign does on the device: the
on-device loader, a few training steps of ResNet-S and ResNet-DMB with bf16 autocast
(where :func:`abn.train.default_amp` says the device has it) and channels-last,
evaluation, a checkpoint written and resumed from, the result JSON written and read back,
and two processes side by side through the campaign's own torchrun launch
(:func:`abn.campaign.torchrun_command`). One line per check (name, OK, seconds); the first
failure prints its traceback and the exit status is 1.

Everything is written to a fresh temporary folder that is deleted afterwards; training
on synthetic data refuses the repository's ``results/`` (:func:`abn.results.refuse_results_folder`),
and the last check confirms that ``results/`` is as it was. The nets are full width on
CUDA (a few steps cost nothing there) and an eighth wide elsewhere, so that CI runs it
on two CPU cores.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from abn.data import DeviceLoader, synthetic_cifar10
from abn.models import build_model, shared_tensors
from abn.provenance import device_name
from abn.results import RESULTS
from abn.train import TrainConfig, default_amp, default_device, train

PAIR = ("resnet_s", "resnet_dmb")
WORKER_SEED = 0  # the synthetic data set the torchrun workers train on


def sizes(device: torch.device) -> dict:
    """The smoke runs' sizes: full-width nets on CUDA, eighth-width ones elsewhere;
    2 epochs of a few steps, small validation and test splits."""
    cuda = device.type == "cuda"
    return dict(width=1.0 if cuda else 0.125, batch_size=128 if cuda else 64,
                train_subset=1024 if cuda else 128, val_size=256 if cuda else 64,
                test_subset=512 if cuda else 64)


def smoke_config(model: str, device: torch.device, epochs: int = 2) -> TrainConfig:
    """A smoke run of ``model``: the full profile's recipe at :func:`sizes`' sizes."""
    return TrainConfig.from_profile("full", model=model, seed=0, epochs=epochs, **sizes(device))


def smoke_data(device: torch.device, seed: int = 0):
    """Synthetic splits of the sizes the smoke configs ask for."""
    s = sizes(device)
    return synthetic_cifar10(s["train_subset"], s["val_size"], s["test_subset"], seed)


def results_snapshot() -> dict[str, tuple[int, int]]:
    """Every file under ``results/`` with its size and modification time (ns)."""
    if not RESULTS.exists():
        return {}
    return {str(p.relative_to(RESULTS)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(RESULTS.rglob("*")) if p.is_file()}


class Stop(Exception):
    """Raised after the first epoch to cut a run short, as a time limit would."""


class Smoke:
    """The checks, in order; each returns a short detail for its line or raises."""

    def __init__(self, device: torch.device, tmp: Path) -> None:
        self.device, self.tmp = device, tmp
        self.amp = default_amp(device)
        self.data = smoke_data(device)
        self.before = results_snapshot()

    def checks(self) -> list[tuple[str, Callable[[], str]]]:
        runs = [(f"{m}: train 1 epoch, checkpoint", lambda m=m: self.first_epoch(m)) for m in PAIR]
        resumes = [(f"{m}: resume, evaluate, JSON", lambda m=m: self.resume(m)) for m in PAIR]
        return [("device", self.device_check), ("synthetic data, DeviceLoader", self.loader),
                ("paired initialisation", self.pairing), *[c for pair in zip(runs, resumes)
                                                          for c in pair],
                ("torchrun, 2 processes side by side", self.torchrun),
                ("results/ untouched", self.results_untouched)]

    def device_check(self) -> str:
        if self.device.type == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeError("--device cuda, but torch.cuda.is_available() is False.")
            x = torch.randn(64, 64, device=self.device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
                y = x @ x
            assert y.dtype == (torch.bfloat16 if self.amp else torch.float32), y.dtype
            torch.cuda.synchronize(self.device)
        cuda = f", CUDA {torch.version.cuda}" if self.device.type == "cuda" else ""
        return (f"{device_name(self.device)}, torch {torch.__version__}{cuda}, "
                f"{'bf16 autocast' if self.amp else 'fp32 (no native bf16)'}")

    def loader(self) -> str:
        images, labels = self.data.train
        loaders = [DeviceLoader(images, labels, 64, train=True, seed=1, device=self.device,
                                channels_last=True) for _ in range(2)]
        (x, y), (x2, y2) = (next(iter(loader)) for loader in loaders)
        assert x.device.type == self.device.type and x.dtype == torch.float32, (x.device, x.dtype)
        assert x.shape == (64, 3, 32, 32) and x.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(x, x2) and torch.equal(y, y2), "same seed, other batches"
        assert torch.isfinite(x).all() and int(y.max()) < 10
        return f"{len(images)} images on {self.device.type}, channels-last"

    def pairing(self) -> str:
        width = sizes(self.device)["width"]
        s, d = (build_model(m, width, seed=0) for m in PAIR)
        names = shared_tensors(d, s)
        s_state, d_state = s.state_dict(), d.state_dict()
        assert len(names) == len(s_state), "ResNet-DMB lacks some of ResNet-S's tensors"
        assert all(torch.equal(s_state[k], d_state[k]) for k in names), "shared tensors differ"
        return f"{len(names)} shared tensors equal at width {width:g}"

    def paths(self, model: str) -> tuple[Path, Path]:
        return self.tmp / "ckpt" / f"{model}.pt", self.tmp / "out" / f"{model}.json"

    def first_epoch(self, model: str) -> str:
        ckpt, out = self.paths(model)

        def stop(run) -> None:
            raise Stop

        try:
            train(smoke_config(model, self.device), out=out, checkpoint=ckpt, device=self.device,
                  progress=False, on_epoch_end=stop, data=self.data)
        except Stop:
            pass
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        assert len(state["history"]) == 1 and not out.exists(), "the run was not cut after 1 epoch"
        loss = state["history"][0]["train_loss"]
        assert math.isfinite(loss), f"train loss {loss}"
        return f"loss {loss:.3f}, checkpoint {ckpt.stat().st_size / 2**20:.1f} MiB"

    def resume(self, model: str) -> str:
        ckpt, out = self.paths(model)
        first = torch.load(ckpt, map_location="cpu", weights_only=False)["history"]
        run = train(smoke_config(model, self.device), out=out, checkpoint=ckpt, device=self.device,
                    progress=False, data=self.data)
        result = json.loads(out.read_text())
        assert result == json.loads(json.dumps(run.result)), "the JSON differs from the run"
        assert [r["epoch"] for r in result["history"]] == [1, 2], "did not resume after epoch 1"
        assert result["history"][0] == first[0], "resuming changed the first epoch's record"
        assert result["recipe"]["amp"] == self.amp and result["recipe"]["channels_last"]
        assert result["provenance"]["device_type"] == self.device.type
        assert "determinism" in result["provenance"]
        assert all(0 <= r["test_acc"] <= 100 and math.isfinite(r["train_loss"])
                   for r in result["history"])
        return (f"test {result['final_test_acc']:.1f}% (chance: synthetic labels), "
                f"{result['train_images_per_s']:,.0f} img/s")

    def torchrun(self) -> str:
        from abn.campaign import torchrun_command  # the campaign's own launch

        out = self.tmp / "ranks"
        argv = ["--smoke-worker", str(out), "--device", self.device.type, "--no-progress",
                "--checkpoints", str(out / "ckpt")]
        env = os.environ | {"ABN_CHECKPOINTS": str(self.tmp / "ckpt")}
        proc = subprocess.run(torchrun_command(2, argv), capture_output=True, text=True,
                              timeout=300, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"torchrun exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        files = sorted(p.name for p in out.glob("*.json"))
        assert len(files) == 2, files
        assert "[rank 0]" in proc.stdout and "[rank 1]" in proc.stdout, proc.stdout
        return f"{', '.join(files)}"

    def results_untouched(self) -> str:
        after = results_snapshot()
        assert after == self.before, f"results/ changed: {set(after) ^ set(self.before) or 'sizes/times'}"
        return f"{len(after)} files as before"


def smoke(device: str | None = None) -> int:
    """Run every check in order, one line each; stop at the first failure with its
    traceback. Returns the exit status (0: all OK)."""
    dev = torch.device(device) if device else default_device()
    t_all = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="abn-smoke-"))
    threads = torch.get_num_threads()
    if dev.type == "cpu":  # tiny nets: one thread is faster, and kinder to a busy machine
        torch.set_num_threads(1)
    try:
        checks = Smoke(dev, tmp)
        for name, check in checks.checks():
            t0, said = time.perf_counter(), io.StringIO()
            try:
                with contextlib.redirect_stdout(said):  # the trainer's own lines ("resumed ...")
                    detail = check()
            except Exception:
                print(said.getvalue(), end="")
                print(f"{name:<38} FAILED {time.perf_counter() - t0:6.1f} s", flush=True)
                traceback.print_exc()
                return 1
            print(f"{name:<38} OK {time.perf_counter() - t0:6.1f} s  {detail}", flush=True)
    finally:
        torch.set_num_threads(threads)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"smoke check passed in {time.perf_counter() - t_all:.1f} s", flush=True)
    return 0


def worker(out: str | Path, parser, args) -> None:
    """One torchrun process of the smoke check: the campaign's sweep (:func:`abn.sweep.run_sweep`,
    joined to the other process) over the pair, one epoch each, on synthetic data."""
    from abn.sweep import run_sweep

    dev = torch.device(args.device) if args.device else default_device()
    configs = [smoke_config(m, dev, epochs=1) for m in PAIR]
    run_sweep(parser, args, configs, str(out), data=smoke_data(dev, WORKER_SEED))
