"""``abn.sweep`` under torchrun (2 processes, gloo on the CPU): every run done exactly once,
the same results as one process, nothing lost when a rank dies or a run fails."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_sweep import stable

MODELS, SEEDS = ["resnet_s", "resnet_dmb"], ["0", "1"]
TINY = ["--profile", "quick", "--width", "0.125", "--epochs", "1", "--batch-size", "64",
        "--train-subset", "256", "--val-size", "64", "--test-subset", "64", "--no-progress"]
NAMES = sorted(f"{m}_seed{s}_1ep_quick.json" for m in MODELS for s in SEEDS)
ENV = os.environ | {"OMP_NUM_THREADS": "1"}  # one thread per rank on the shared cores


def sweep_args(out: Path, models=MODELS, seeds=SEEDS) -> list[str]:
    return ["-m", "abn.sweep", "--models", *models, "--seeds", *seeds, "--out", str(out),
            "--checkpoints", str(out / "ckpt"), *TINY]


def torchrun(out: Path, **kw) -> list[str]:
    """The venv's own torchrun, 2 processes on this machine, over the tiny sweep."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            *sweep_args(out, **kw)]


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV)


def trained(stdout: str) -> list[str]:
    """The run names the processes trained, from their '[i/n] <name>: training' lines
    (searched, not split into lines: two processes' writes to one pipe can interleave)."""
    return sorted(re.findall(r"\[\d+/\d+\] (\w+): training", stdout))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The same four runs by one process (no torchrun)."""
    out = tmp_path_factory.mktemp("one_process")
    proc = run([sys.executable, *sweep_args(out)])
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.glob("*.json")) == NAMES
    return out


def test_two_ranks_do_every_run_once_with_the_same_results(tmp_path, reference):
    out = tmp_path / "out"
    proc = run(torchrun(out))
    assert proc.returncode == 0, proc.stderr
    assert trained(proc.stdout) == [n.removesuffix(".json") for n in NAMES]  # each once
    assert "[rank 0]" in proc.stdout and "[rank 1]" in proc.stdout  # both took a share
    assert sorted(p.name for p in out.glob("*.json")) == NAMES
    for name in NAMES:
        assert stable(out / name) == stable(reference / name), name
    assert proc.stdout.count("4 results in") == 1  # rank 0's summary only

    again = run(torchrun(out))
    assert again.returncode == 0, again.stderr
    assert trained(again.stdout) == [] and again.stdout.count("done, skipped") == 4


def workers(pid: int) -> list[int]:
    """The processes torchrun ``pid`` started (its children running abn.sweep)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"abn.sweep" in cmdline:
            found.append(int(stat.parent.name))
    return found


def test_a_killed_rank_loses_nothing_and_a_rerun_finishes_the_rest(tmp_path, reference):
    out = tmp_path / "out"
    launch = subprocess.Popen(torchrun(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=ENV)
    deadline = time.time() + 240
    while not list(out.glob("*.json")) and launch.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    ranks = workers(launch.pid)
    assert len(ranks) == 2, "torchrun's workers not found"
    os.kill(ranks[1], signal.SIGKILL)  # one rank dies mid-sweep; torchrun stops the other
    stdout, stderr = launch.communicate(timeout=120)
    assert launch.returncode != 0
    kept = {p.name: p.read_bytes() for p in out.glob("*.json")}
    assert 1 <= len(kept) < len(NAMES), f"the kill came too late: {sorted(kept)}"

    again = run(torchrun(out))
    assert again.returncode == 0, again.stderr
    missing = sorted(n.removesuffix(".json") for n in NAMES if n not in kept)
    assert trained(again.stdout) == missing, (sorted(kept), stdout, again.stdout)
    assert all((out / name).read_bytes() == data for name, data in kept.items())  # untouched
    for name in NAMES:
        assert stable(out / name) == stable(reference / name), name


def test_a_failing_run_is_reported_and_the_others_finish(tmp_path, reference):
    out = tmp_path / "out"
    broken = out / "ckpt" / "resnet_dmb_seed0_1ep_quick.pt"
    broken.parent.mkdir(parents=True)
    broken.write_text("not a checkpoint")  # resuming from it raises
    proc = run(torchrun(out, seeds=["0"]))
    assert proc.returncode == 1
    assert "1 run(s) failed" in proc.stderr
    assert "resnet_dmb_seed0_1ep_quick (resnet_dmb, seed 0, honest)" in proc.stderr
    assert sorted(p.name for p in out.glob("*.json")) == ["resnet_s_seed0_1ep_quick.json"]

    broken.unlink()
    again = run(torchrun(out, seeds=["0"]))
    assert again.returncode == 0, again.stderr
    assert trained(again.stdout) == ["resnet_dmb_seed0_1ep_quick"]
    for name in ("resnet_s_seed0_1ep_quick.json", "resnet_dmb_seed0_1ep_quick.json"):
        assert stable(out / name) == stable(reference / name), name
