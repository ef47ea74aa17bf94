"""The sweep: paired seeds, skipping finished runs, and surviving a kill mid-run."""

import json
import os
import signal
import subprocess
import sys
import time

import torch

from abn.sweep import run_name
from abn.train import Run, TrainConfig

TINY = ["--profile", "quick", "--width", "0.125", "--epochs", "3", "--batch-size", "64",
        "--train-subset", "768", "--val-size", "128", "--test-subset", "128", "--no-progress"]
VOLATILE = {"seconds", "train_s", "images_per_s", "wall_s", "train_images_per_s", "provenance"}


def sweep_cmd(out, ckpt, *extra):
    return [sys.executable, "-m", "abn.sweep", "--models", "resnet_s", "resnet_dmb", "--seeds", "0",
            "--out", str(out), "--checkpoints", str(ckpt), *TINY, *extra]


def stable(path):
    """A result without the fields that legitimately differ between two runs (timing, provenance)."""
    r = json.loads(path.read_text())
    r["history"] = [{k: v for k, v in row.items() if k not in VOLATILE} for row in r["history"]]
    return {k: v for k, v in r.items() if k not in VOLATILE}


def test_paired_seeds_give_both_models_identical_batches():
    def batches(model, seed, epoch=1):
        run = Run(TrainConfig(model=model, width=0.125, train_subset=300, val_size=0, test_subset=10,
                              seed=seed, profile="quick"), "cpu")
        run.train_loader.set_epoch(epoch)
        return list(run.train_loader)

    a, b, c = batches("resnet_s", 3), batches("resnet_dmb", 3), batches("resnet_dmb", 4)
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))
    assert not torch.equal(a[0][0], c[0][0])


def test_killed_sweep_resumes_to_the_same_results(tmp_path):
    ref_out, ref_ckpt = tmp_path / "ref", tmp_path / "ref_ckpt"
    done = subprocess.run(sweep_cmd(ref_out, ref_ckpt), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in ref_out.glob("*.json"))
    assert names == ["resnet_dmb_seed0_quick.json", "resnet_s_seed0_quick.json"]
    assert not list(ref_ckpt.glob("*.pt"))  # checkpoints are removed once a result is written

    # Kill the sweep with SIGKILL in the middle of its second run (resnet_dmb, after epoch 1).
    out, ckpt = tmp_path / "cut", tmp_path / "cut_ckpt"
    victim = ckpt / "resnet_dmb_seed0_quick.pt"
    proc = subprocess.Popen(sweep_cmd(out, ckpt), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not victim.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert victim.exists() and not (out / "resnet_dmb_seed0_quick.json").exists(), "kill came too late"
    assert [p.name for p in out.glob("*.json")] == ["resnet_s_seed0_quick.json"]

    again = subprocess.run(sweep_cmd(out, ckpt), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("done, skipped") == 1 and "resumed resnet_dmb seed 0" in again.stdout
    for name in names:
        assert stable(out / name) == stable(ref_out / name), name


def test_run_names_keep_quick_and_full_apart():
    assert run_name(TrainConfig(model="resnet_s", seed=2, profile="full")) == "resnet_s_seed2"
    assert run_name(TrainConfig(model="resnet_s", seed=2, profile="quick")) == "resnet_s_seed2_quick"
