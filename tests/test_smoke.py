"""``python -m abn.campaign --smoke``: passes on the CPU, one line per check, leaves
``results/`` alone, stops at the first failure with its traceback; synthetic runs refuse
``results/``; the modules a GPU session runs import without the book's extras."""

import os
import re
import subprocess
import sys

import pytest
import torch

from abn import smoke
from abn.results import RESULTS
from abn.sweep import sweep
from abn.train import TrainConfig, train

CHECKS = ["device", "synthetic data, DeviceLoader", "paired initialisation",
          "resnet_s: train 1 epoch, checkpoint", "resnet_s: resume, evaluate, JSON",
          "resnet_dmb: train 1 epoch, checkpoint", "resnet_dmb: resume, evaluate, JSON",
          "torchrun, 2 processes side by side", "results/ untouched"]


def test_smoke_check_passes_on_the_cpu_and_leaves_results_alone(tmp_path):
    before = smoke.results_snapshot()
    env = os.environ | {"TMPDIR": str(tmp_path), "ABN_CHECKPOINTS": str(tmp_path / "ck")}
    proc = subprocess.run([sys.executable, "-m", "abn.campaign", "--smoke", "--device", "cpu"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    parsed = [re.fullmatch(r"(.+?) +(OK|FAILED) +([\d.]+) s  .+", line) for line in lines[:-1]]
    assert [m and m[1] for m in parsed] == CHECKS, lines  # one line per check, no more
    assert all(m[2] == "OK" for m in parsed)
    assert lines[-1].startswith("smoke check passed in ")
    assert smoke.results_snapshot() == before
    assert not list(tmp_path.glob("abn-smoke-*"))  # its temporary folder is gone


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_the_first_failure_stops_the_check_with_its_traceback(capsys):
    assert smoke.smoke("cuda") == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[0].split()[:2] == ["device", "FAILED"] and len(out.splitlines()) == 1
    assert "Traceback" in err and "torch.cuda.is_available() is False" in err


def test_runs_on_synthetic_data_refuse_results(tmp_path):
    cfg = smoke.smoke_config("resnet_s", torch.device("cpu"), epochs=1)
    data = smoke.smoke_data(torch.device("cpu"))
    for kwargs in ({"out": RESULTS / "x.json"}, {"checkpoint": RESULTS / "sub" / "x.pt"}):
        with pytest.raises(ValueError, match="never write there"):
            train(cfg, progress=False, data=data, **kwargs)
    with pytest.raises(ValueError, match="never write there"):
        sweep([cfg], RESULTS, tmp_path, progress=False, data=data)
    assert isinstance(cfg, TrainConfig) and not (RESULTS / "x.json").exists()


def test_what_a_gpu_session_runs_imports_without_the_books_extras():
    """The GPU machine has torch but no plotly, ipywidgets, IPython or Jupyter: the
    smoke check, the benchmark, the campaign and what they import must not need them."""
    blocked = ["plotly", "ipywidgets", "IPython", "jupyter_book", "nbformat", "nbclient",
               "myst_nb", "kaleido", "matplotlib"]
    code = (f"import sys\nfor name in {blocked!r}:\n    sys.modules[name] = None\n"
            "import abn.campaign, abn.bench, abn.smoke, abn.train, abn.sweep, abn.distributed\n"
            "import abn.checkpoints, abn.data, abn.stats\n"
            "from tqdm.auto import tqdm\nprint('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
