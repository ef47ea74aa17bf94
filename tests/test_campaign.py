"""The campaign at tiny scale: its plan, skipping what is done, runs side by side, the
model chapter 7 loads, and the preflight measurements."""

import argparse
import json
import os
import re
import subprocess
import sys

import pytest

from abn import campaign
from abn.checkpoints import checkpoint_path, load_trained
from abn.results import load_results
from abn.stats import summary_table
from abn.sweep import run_name
from abn.train import TrainConfig

TINY = ["--profile", "quick", "--width", "0.125", "--epochs", "1", "--train-subset", "128",
        "--val-size", "64", "--test-subset", "64", "--no-progress"]


def campaign_cmd(out, *extra):
    return [sys.executable, "-m", "abn.campaign", "--out", str(out), "--checkpoints",
            str(out / "ckpt"), *TINY, *extra]


def run(cmd):
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def plan_row(stdout: str, stage: int) -> list[str]:
    """The dry-run table's row of ``stage``, split into words."""
    return next(line.split() for line in stdout.splitlines() if line.startswith(f"{stage} "))


def test_stages_are_in_priority_order_and_seed_major():
    assert [s.number for s in campaign.STAGES] == [1, 2, 3, 4]
    args = argparse.Namespace(
        profile="full", epochs=None, width=None, train_subset=None, val_size=None,
        test_subset=None, compile=False)
    one, two, _, four = (campaign.stage_configs(s, args) for s in campaign.STAGES)
    assert [(c.model, c.seed) for c in one[:4]] == [("resnet_s", 0), ("resnet_dmb", 0),
                                                  ("resnet_s", 1), ("resnet_dmb", 1)]
    assert {c.protocol for c in two} == {"paper"} and {c.val_size for c in two} == {0}
    assert {c.epochs for c in four} == {50} and len(four) == 6
    # Stage 1 saves the model chapter 7 loads, under the name chapter 7 looks for.
    dmb0 = next(c for c in one if (c.model, c.seed) == ("resnet_dmb", 0))
    assert run_name(dmb0) == checkpoint_path("results").stem


def test_campaign_runs_stage_1_then_skips_it(tmp_path):
    out = tmp_path / "results"
    plan = run(campaign_cmd(out, "--dry-run"))
    assert plan.returncode == 0, plan.stderr
    assert plan_row(plan.stdout, 1)[-3:] == ["10", "0", "10"]  # runs, done, missing
    assert all(f"{stage} " in plan.stdout for stage in "1234") and "61 of 61 runs to go" in plan.stdout
    assert not out.exists()  # a dry run trains and writes nothing

    done = run(campaign_cmd(out, "--stages", "1"))
    assert done.returncode == 0, done.stderr
    runs = load_results(out)
    assert sorted((r["model"], r["seed"]) for r in runs) == sorted(
        (m, s) for m in campaign.PAIR for s in range(5))
    assert {r["protocol"] for r in runs} == {"honest"}
    model, prov = load_trained(out / "resnet_dmb_seed0_1ep_quick.pt")  # saved in fp16
    assert prov["config"]["model"] == "resnet_dmb" and prov["final_test_acc"] is not None
    assert list(out.glob("*.pt")) == [out / "resnet_dmb_seed0_1ep_quick.pt"]

    again = run(campaign_cmd(out, "--stages", "1"))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("done, skipped") == 10 and ": training" not in again.stdout
    plan = run(campaign_cmd(out, "--dry-run"))
    assert plan_row(plan.stdout, 1)[-3:] == ["10", "10", "0"]
    assert "51 of 61 runs to go" in plan.stdout


def test_campaign_side_by_side_with_the_paper_protocol(tmp_path):
    out = tmp_path / "results"
    proc = run(campaign_cmd(out, "--stages", "2", "--concurrency", "2"))
    assert proc.returncode == 0, proc.stderr
    assert "torch.distributed.run" in proc.stdout and "[rank 1]" in proc.stdout
    runs = load_results(out)
    assert len(runs) == 10 and {r["protocol"] for r in runs} == {"paper"}
    assert all(r["final_val_acc"] is None and r["recipe"]["val_size"] == 0 for r in runs)
    assert all(r["file"].endswith("_paper_quick.json") for r in runs)
    assert summary_table(runs)["protocol"].tolist() == ["paper", "paper"]

    again = run(campaign_cmd(out, "--stages", "2"))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("done, skipped") == 10 and ": training" not in again.stdout


def test_recommended_concurrency():
    side = [{"runs": 1, "images_per_s": 100.0}, {"runs": 2, "images_per_s": 190.0},
            {"runs": 4, "images_per_s": 300.0}, {"runs": 8, "images_per_s": 310.0}]
    assert campaign.recommended_concurrency(side) == 4
    assert campaign.recommended_concurrency(side[:2]) == 2


def test_preflight_writes_its_measurements(tmp_path):
    """The GPU session's first call, here at tiny width on the CPU: both benchmarks, the
    side-by-side throughput, one JSON with versions and the recommended concurrency."""
    r = campaign.preflight(tmp_path, "cpu", width=0.125, steps=2, compile_modes=(False,),
                           concurrency=(1, 2), models=("resnet_dmb",))
    stored = json.loads((tmp_path / "preflight_cpu.json").read_text())
    assert stored == json.loads(json.dumps(r)) and stored["kind"] == "preflight"
    assert stored["provenance"]["torch"] and stored["recommended_concurrency"] in (1, 2)
    assert [s["runs"] for s in stored["side_by_side"]] == [1, 2]
    assert all(s["images_per_s"] > 0 and len(s["per_run_images_per_s"]) == s["runs"]
               for s in stored["side_by_side"])
    benches = load_results(tmp_path, kind="bench")
    assert [b["file"] for b in benches] == ["bench_cpu_resnet_dmb.json"]
    assert stored["bench"][0]["model"] == "resnet_dmb" and not stored["bench"][0]["compile"]
    assert all(b["paper_loop_img_s"] > 0 and b["abn_img_s"] > 0 for b in benches)


@pytest.mark.parametrize("argv, message", [
    (["--stages", "5"], r"argument --stages: invalid choice: 5"),
    (["--concurrency", "0"], "concurrency must be a positive integer, got 0"),
    (["--width", "-1"], "width must be positive, got -1"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        campaign.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("python -m abn.campaign: error: ") and re.search(message, err[-1])
    assert "Traceback" not in "\n".join(err)


def test_a_stored_result_of_another_config_stops_the_campaign(tmp_path, capsys):
    cfg = TrainConfig.from_profile("quick", model="resnet_s", seed=0, width=0.125, epochs=1,
                                   train_subset=128, val_size=64, test_subset=64)
    path = tmp_path / f"{run_name(cfg)}.json"
    path.write_text(json.dumps({"kind": "train", "model": "resnet_s", "seed": 0, "width": 0.25,
                                "profile": "quick", "recipe": {}}))
    with pytest.raises(SystemExit) as exit_:
        campaign.main(["--dry-run", "--out", str(tmp_path), *TINY])
    assert exit_.value.code == 2 and path.name in capsys.readouterr().err


def test_fastest_prefers_the_simplest_setting_within_5_percent():
    side = [{"runs": 1, "images_per_s": 100.0, "mps": False, "compile": False},
            {"runs": 4, "images_per_s": 300.0, "mps": False, "compile": False},
            {"runs": 4, "images_per_s": 310.0, "mps": True, "compile": False},
            {"runs": 2, "mps": True, "compile": False, "error": "no MPS"},
            {"runs": 1, "images_per_s": 420.0, "mps": False, "compile": "reduce-overhead"}]
    assert campaign.fastest(side)["compile"] == "reduce-overhead"
    assert campaign.setting_line(campaign.fastest(side)) == "--concurrency 1 --compile reduce-overhead"
    assert campaign.fastest(side[:3]) == side[1]  # MPS's 3% is not worth a daemon
    assert campaign.setting_line(side[2]) == "--concurrency 4 (under CUDA MPS)"


def test_throughput_preflight_on_synthetic_data_and_the_campaign_takes_its_setting(
        tmp_path, monkeypatch):
    """Call 2 of the GPU session at tiny scale: side by side on synthetic images, a setting
    that cannot run (MPS on a machine without it) recorded and skipped, the fastest stored;
    ``--fastest`` then reads it (and falls back to 4 runs where none is stored)."""
    monkeypatch.setattr(campaign.shutil, "which", lambda name: None)  # no MPS here
    r = campaign.preflight(tmp_path, "cpu", width=0.125, steps=2, concurrency=(1,),
                           parts=("throughput",), synthetic=True, mps=(2,))
    stored = json.loads((tmp_path / "preflight_cpu_throughput.json").read_text())
    assert stored == json.loads(json.dumps(r)) and stored["data"] == "synthetic"
    assert [("error" in s, s["runs"], s["mps"]) for s in stored["side_by_side"]] == [
        (False, 1, False), (True, 2, True)]
    assert stored["fastest"]["runs"] == 1 and stored["bench"] == []
    args = argparse.Namespace(out=str(tmp_path), device="cpu", compile=None, concurrency=1)
    campaign.apply_fastest(args)
    assert args.concurrency == 1 and not args.compile
    args = argparse.Namespace(out=str(tmp_path / "none"), device="cpu", compile=None,
                              concurrency=1)
    campaign.apply_fastest(args)
    assert args.concurrency == 4
