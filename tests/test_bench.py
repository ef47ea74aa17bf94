"""python -m abn.bench runs both loops and ends with one line of JSON (tiny settings here;
the real CPU and GPU figures are measured by hand and stored in results/)."""

import json
import subprocess
import sys
import time

import numpy as np
import torch

from abn.bench import abn_images_per_second, seconds_per_step


def test_bench_cli_prints_table_then_json():
    cmd = [sys.executable, "-m", "abn.bench", "--model", "resnet_dmb", "--width", "0.125",
           "--steps", "3", "--warmup", "1", "--batch-size", "32"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert "paper" in proc.stdout and "ratio" in proc.stdout
    r = json.loads(lines[-1])
    assert {"device", "model", "paper_loop_img_s", "abn_img_s", "ratio"} <= r.keys()
    assert r["model"] == "resnet_dmb" and r["paper_loop_img_s"] > 0 and r["abn_img_s"] > 0
    assert abs(r["ratio"] - r["abn_img_s"] / r["paper_loop_img_s"]) < 0.02 * r["ratio"] + 0.01


def test_seconds_per_step_times_only_the_timed_calls():
    calls = []

    def step():
        calls.append(1)
        time.sleep(0.005)

    seconds = seconds_per_step(step, warmup=1, steps=4)
    assert 0.005 <= seconds < 0.05
    assert len(calls) == 1 + 2 + 4  # our warm-up, the Timer's two, the timed steps


def test_abn_images_per_second():
    fp32 = abn_images_per_second("resnet_s", 0.125, torch.device("cpu"), amp=False, batch_size=16,
                                 steps=2, warmup=0)
    assert fp32 > 0


def test_synthetic_images_are_served_as_torchvision_serves_cifar10():
    """The paper loop on synthetic data does each image's work as torchvision's CIFAR10
    does: a PIL image from the H x W x C array, then the transform."""
    from abn.bench import SyntheticPIL
    from abn.data import synthetic_cifar10

    images, labels = synthetic_cifar10(4, 1, 1).train
    seen = []
    ds = SyntheticPIL(images, labels, lambda im: seen.append(im) or torch.from_numpy(np.array(im)))
    x, y = ds[2]
    assert len(ds) == 4 and y == int(labels[2]) and seen[0].size == (32, 32)
    assert torch.equal(x.permute(2, 0, 1), images[2])
