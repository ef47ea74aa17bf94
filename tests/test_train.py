"""The trainer: resumes exactly, writes results with provenance, refuses bad configs.

That the quick profile learns (>= 45% test accuracy) is checked on chapter 6's run of it
in the book build: tests/test_chapters.py::test_quick_profile_learns_far_above_chance.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from abn import profiles, provenance
from abn.data import CIFAR10_STD, OFTEN_COPIED_STD, load_splits
from abn.train import Run, TrainConfig, checkpoint_folder, config_dict, config_diff, result_record, train

TINY = dict(model="resnet_dmb", width=0.125, epochs=3, batch_size=64, train_subset=512, val_size=256,
            test_subset=256, profile="quick")
TIMING = {"seconds", "train_s", "images_per_s"}


def without_timing(history: list[dict]) -> list[dict]:
    """A run's history without the fields that differ between two identical runs."""
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


def test_interrupted_run_resumes_to_identical_weights_and_history(tmp_path):
    cfg = TrainConfig(**TINY)
    whole = train(cfg, checkpoint=tmp_path / "whole.pt", progress=False)

    def interrupt(run):
        if run.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, checkpoint=tmp_path / "cut.pt", progress=False, on_epoch_end=interrupt)
    assert torch.load(tmp_path / "cut.pt", weights_only=False)["history"][-1]["epoch"] == 1
    resumed = train(cfg, checkpoint=tmp_path / "cut.pt", progress=False, out=tmp_path / "cut.json")

    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert without_timing(whole.result["history"]) == without_timing(resumed.result["history"])
    assert json.loads((tmp_path / "cut.json").read_text())["final_test_acc"] == whole.result["final_test_acc"]


def test_checkpoint_of_another_config_is_refused(tmp_path):
    train(TrainConfig(**{**TINY, "epochs": 1}), checkpoint=tmp_path / "c.pt", progress=False)
    with pytest.raises(ValueError, match="different config.*seed"):
        train(TrainConfig(**{**TINY, "epochs": 1, "seed": 5}), checkpoint=tmp_path / "c.pt", progress=False)


def test_cli_writes_result_with_provenance(tmp_path):
    out = tmp_path / "r.json"
    cmd = [sys.executable, "-m", "abn.train", "--model", "resnet_s", "--profile", "quick", "--epochs", "1",
           "--width", "0.125", "--train-subset", "256", "--val-size", "128", "--test-subset", "128",
           "--seed", "3", "--out", str(out)]
    env = os.environ | {"ABN_CHECKPOINTS": str(tmp_path / "ck")}  # the default checkpoint folder
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "ck" / "r.pt").exists()
    r = json.loads(out.read_text())
    assert r["model"] == "resnet_s" and r["seed"] == 3 and r["profile"] == "quick" and r["width"] == 0.125
    assert r["recipe"]["lr"] == 0.1 and r["recipe"]["weight_decay"] == 5e-4 and r["recipe"]["batch_size"] == 128
    assert r["recipe"]["amp"] in (True, False) and r["recipe"]["train_subset"] == 256
    assert len(r["history"]) == 1 and r["best_test_acc"] == r["final_test_acc"]
    prov = r["provenance"]
    assert prov["device_type"] == "cpu" and prov["torch"] == torch.__version__
    assert prov["date_utc"].endswith("+00:00") and "abn.train" in prov["command"] and "--seed 3" in prov["command"]
    assert "git_commit" in prov and (prov["git_commit"] is None or len(prov["git_commit"]) >= 40)
    assert prov["determinism"] == {"cudnn_benchmark": False, "cudnn_deterministic": False,
                                   "deterministic_algorithms": False}  # PyTorch's defaults


def test_provenance_records_the_determinism_settings_in_force(monkeypatch):
    """Each setting is read when the provenance is made, not assumed."""
    assert provenance.provenance("cpu")["determinism"] == provenance.determinism()
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        assert provenance.provenance("cpu")["determinism"] == {
            "cudnn_benchmark": True, "cudnn_deterministic": True, "deterministic_algorithms": True}
    finally:
        torch.use_deterministic_algorithms(was)


def test_checkpoint_folder_is_abn_checkpoints_else_the_default(monkeypatch, tmp_path):
    monkeypatch.delenv("ABN_CHECKPOINTS", raising=False)
    assert checkpoint_folder() == Path("checkpoints") and checkpoint_folder("../ck") == Path("../ck")
    monkeypatch.setenv("ABN_CHECKPOINTS", str(tmp_path))
    assert checkpoint_folder("../ck") == tmp_path


@pytest.mark.parametrize("change, message", [
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"batch_size": -4}, "batch_size must be a positive integer"),
    ({"lr": 0.0}, "lr must be positive"),
    ({"width": -1.0}, "width must be positive"),
    ({"model": "resnet_x"}, "Unknown model 'resnet_x'; choose one of .*resnet_dmb"),
    ({"model": "resnet_s", "model_kwargs": {"num_biases": 8}}, "resnet_s does not take"),
    ({"model_kwargs": {"num_biases": -1}}, "num_biases must be a positive integer"),
    ({"train_subset": 50_000}, r"train_subset must be in \[1, 49744\]"),
    ({"test_subset": 0}, "test_subset must be in"),
    ({"protocol": "kaggle"}, "protocol must be one of"),
    ({"protocol": "paper"}, "protocol 'paper' holds out no validation split: val_size must be 0"),
])
def test_config_refuses_what_cannot_train(change, message):
    """Checked when the config is made, before any data is loaded or step is run."""
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{**TINY, **change})


def test_profiles(monkeypatch):
    monkeypatch.setenv("ABN_PROFILE", "full")
    assert profiles.resolve().name == "full" and profiles.resolve("quick").name == "quick"
    monkeypatch.setenv("ABN_PROFILE", "auto")
    assert profiles.resolve().name == ("full" if torch.cuda.is_available() else "quick")
    monkeypatch.setenv("ABN_PROFILE", "fast")
    with pytest.raises(ValueError, match="ABN_PROFILE must be one of"):
        profiles.resolve()
    cfg = TrainConfig.from_profile("full", model="resnet_s")
    assert (cfg.width, cfg.epochs, cfg.batch_size, cfg.val_size, cfg.train_subset) == (1.0, 15, 128, 5000, None)


def test_paper_protocol_no_validation_copied_std_cosine_per_epoch():
    """The authors' main.py: all training images (val_size 0; here a subset of them), the
    often-copied std, CosineAnnealingLR(T_max=epochs) stepped once per epoch, test
    accuracy after every epoch and "best" = the maximum over epochs."""
    sizes = dict(model="resnet_s", width=0.125, epochs=3, batch_size=64, train_subset=192,
                 test_subset=64, seed=1)
    full = TrainConfig.from_profile("full", model="resnet_s", protocol="paper")
    assert (full.val_size, full.train_subset) == (0, None)
    assert len(load_splits(full.train_subset, full.val_size, 10).train[0]) == 50_000
    paper = Run(TrainConfig.from_profile("quick", protocol="paper", **sizes), "cpu")
    honest = Run(TrainConfig.from_profile("quick", **sizes), "cpu")
    assert paper.cfg.val_size == 0 and paper.val_loader is None
    assert torch.equal(paper.train_loader.images, honest.train_loader.images)  # same first 192
    # Same crops and flips, normalised by another std: x * std agrees.
    (xp, _), (xh, _) = next(iter(paper.train_loader)), next(iter(honest.train_loader))
    std = {s: torch.tensor(s).view(1, 3, 1, 1) for s in (OFTEN_COPIED_STD, CIFAR10_STD)}
    torch.testing.assert_close(xp * std[OFTEN_COPIED_STD], xh * std[CIFAR10_STD])

    used = []  # the learning rate of every optimiser step, per epoch
    step = paper.train_step
    paper.train_step = lambda x, y: (used[-1].append(paper.optimizer.param_groups[0]["lr"]),
                                     step(x, y))[1]
    for _ in range(3):
        used.append([])
        paper.train_epoch()
    reference = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(reference, T_max=3)
    for epoch_lrs in used:
        assert len(epoch_lrs) == 3 and set(epoch_lrs) == {reference.param_groups[0]["lr"]}
        reference.step()
        cosine.step()
    assert used[0][0] == 0.1 and used[1][0] == pytest.approx(0.075) and used[2][0] == pytest.approx(0.025)

    r = result_record(paper, wall_s=1.0)
    assert r["protocol"] == r["recipe"]["protocol"] == "paper"
    assert r["recipe"]["normalize_std"] == list(OFTEN_COPIED_STD) and "per epoch" in r["recipe"]["schedule"]
    assert r["final_val_acc"] is None and all(row["val_acc"] is None for row in r["history"])
    assert [row["epoch"] for row in r["history"]] == [1, 2, 3]
    assert r["best_test_acc"] == max(row["test_acc"] for row in r["history"])


def test_honest_protocol_is_recorded():
    run = train(TrainConfig(**{**TINY, "epochs": 1}), progress=False)
    assert run.result["protocol"] == run.result["recipe"]["protocol"] == "honest"
    assert run.result["recipe"]["normalize_std"] == list(CIFAR10_STD)
    assert "per step" in run.result["recipe"]["schedule"] and run.result["final_val_acc"] is not None


def test_git_commit_falls_back_to_the_environment(monkeypatch):
    """A copy of the working tree without .git (a GPU machine) names its commit through
    $ABN_GIT_COMMIT; inside git, git's answer wins."""
    def no_git(*args):
        raise subprocess.CalledProcessError(128, ["git", *args])

    monkeypatch.setenv("ABN_GIT_COMMIT", "0123abc")
    inside = provenance.git_commit()
    assert inside is None or inside.split("-")[0] != "0123abc"
    monkeypatch.setattr(provenance, "_git", no_git)
    assert provenance.git_commit() == "0123abc"
    monkeypatch.delenv("ABN_GIT_COMMIT")
    assert provenance.git_commit() is None


def test_checkpoints_from_before_the_protocol_still_resume():
    """A config stored before `protocol` existed reads as honest: same run, no difference."""
    now = config_dict(TrainConfig(**TINY))
    old = {k: v for k, v in now.items() if k != "protocol"}
    assert config_diff(now, old) == {}
    paper = config_dict(TrainConfig(**{**TINY, "val_size": 0, "protocol": "paper"}))
    assert config_diff(paper, old) == {"protocol": ("paper", "honest"), "val_size": (0, 256)}


def test_a_pair_starts_from_the_same_backbone_and_sees_the_same_batches():
    """Two runs of one seed, ResNet-S and ResNet-DMB: every tensor they share starts equal,
    the first training batches (order and augmentation) are identical, and the global
    random state after building is the same, so nothing later depends on the variant."""
    runs, states = {}, {}
    for model in ("resnet_s", "resnet_dmb"):
        runs[model] = Run(TrainConfig(**{**TINY, "model": model, "seed": 5}), device="cpu")
        states[model] = torch.get_rng_state()
    s, d = (runs[m].model.state_dict() for m in ("resnet_s", "resnet_dmb"))
    assert all(torch.equal(v, d[k]) for k, v in s.items())  # every ResNet-S tensor is in DMB
    assert torch.equal(states["resnet_s"], states["resnet_dmb"])
    for run in runs.values():
        run.train_loader.set_epoch(1)
    batches = [next(iter(run.train_loader)) for run in runs.values()]
    assert torch.equal(batches[0][0], batches[1][0]) and torch.equal(batches[0][1], batches[1][1])
