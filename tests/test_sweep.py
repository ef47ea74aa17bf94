"""The sweep: paired seeds, skipping finished runs, and surviving a kill mid-run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from abn import sweep
from abn.sweep import ResultMismatch, checkpoint_file, is_done, run_name
from abn.train import Run, TrainConfig, config_dict

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
    assert names == ["resnet_dmb_seed0_3ep_quick.json", "resnet_s_seed0_3ep_quick.json"]
    assert not list(ref_ckpt.glob("*.pt"))  # checkpoints are removed once a result is written

    # Kill the sweep with SIGKILL in the middle of its second run (resnet_dmb, after epoch 1).
    out, ckpt = tmp_path / "cut", tmp_path / "cut_ckpt"
    victim = ckpt / "resnet_dmb_seed0_3ep_quick.pt"
    proc = subprocess.Popen(sweep_cmd(out, ckpt), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not victim.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert victim.exists() and not (out / "resnet_dmb_seed0_3ep_quick.json").exists(), "kill came too late"
    assert [p.name for p in out.glob("*.json")] == ["resnet_s_seed0_3ep_quick.json"]

    again = subprocess.run(sweep_cmd(out, ckpt), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("done, skipped") == 1 and "resumed resnet_dmb seed 0" in again.stdout
    for name in names:
        assert stable(out / name) == stable(ref_out / name), name


def test_run_names_keep_every_setting_apart():
    """Today's names stay; protocol, K, epochs and profile each get their own file."""
    def name(profile="full", **kw):
        return run_name(TrainConfig.from_profile(profile, **{"model": "resnet_s", "seed": 2, **kw}))

    assert name() == "resnet_s_seed2" and name("quick") == "resnet_s_seed2_quick"
    assert name(protocol="paper") == "resnet_s_seed2_paper"
    assert name(epochs=50) == "resnet_s_seed2_50ep"
    assert name("quick", epochs=1, protocol="paper") == "resnet_s_seed2_1ep_paper_quick"
    assert name(model="resnet_dmb", model_kwargs={"num_biases": 8}) == "resnet_dmb_seed2_num_biases8"
    assert name(model="resnet_dmb", model_kwargs={"num_biases": 4}) == "resnet_dmb_seed2_num_biases4"


def stored(cfg, **changes):
    """A result file's config fields as abn.train.result_record writes them, with ``changes``."""
    top = ("model", "seed", "width", "profile", "protocol")
    d = config_dict(cfg) | changes
    return {"kind": "train", **{k: d[k] for k in top},
            "recipe": {k: v for k, v in d.items() if k not in top} | {"amp": False}}


def test_a_result_of_another_config_is_an_error_not_a_skip(tmp_path, capsys):
    cfg = TrainConfig.from_profile("quick", model="resnet_s", seed=0)
    path = tmp_path / f"{run_name(cfg)}.json"
    assert not is_done(cfg, path)
    path.write_text(json.dumps(stored(cfg, compile=True)))  # speed only: the same run
    assert is_done(cfg, path)
    path.write_text(json.dumps(stored(cfg, lr=0.05)))
    with pytest.raises(ResultMismatch, match=f"{path.name} holds a run of another config.*'lr'"):
        is_done(cfg, path)
    with pytest.raises(SystemExit) as exit_:  # the CLI: one line, exit status 2, before training
        sweep.main(["--models", "resnet_s", "--seeds", "0", "--profile", "quick",
                    "--out", str(tmp_path), "--checkpoints", str(tmp_path / "ck")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("python -m abn.sweep: error: ") and path.name in err


def test_checkpoint_file_is_the_run_name_in_the_checkpoint_folder(monkeypatch, tmp_path):
    cfg = TrainConfig.from_profile("quick", model="resnet_dmb", seed=2)
    monkeypatch.delenv("ABN_CHECKPOINTS", raising=False)
    assert checkpoint_file(cfg, "../ck") == Path("../ck") / "resnet_dmb_seed2_quick.pt"
    monkeypatch.setenv("ABN_CHECKPOINTS", str(tmp_path))
    assert checkpoint_file(cfg, "../ck") == tmp_path / "resnet_dmb_seed2_quick.pt"
