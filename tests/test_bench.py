"""python -m abn.bench runs both loops and ends with one line of JSON (tiny settings here;
the real CPU and GPU figures are measured by hand and stored in results/)."""

import json
import subprocess
import sys


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
