"""Bad input to the command-line tools: one line naming the problem, exit status 2, no
traceback, before any data is loaded or anything is trained."""

import re
import subprocess
import sys

import pytest

from abn import bench, models, sweep, train

CLIS = {"train": train.main, "sweep": sweep.main, "bench": bench.main, "models": models.main}
CASES = [
    ("train", ["--model", "resnet_x"], "Unknown model 'resnet_x'; choose one of .*resnet_s"),
    ("train", ["--epochs", "0"], "epochs must be a positive integer, got 0"),
    ("train", ["--width", "-1"], "width must be positive, got -1"),
    ("train", ["--batch-size", "-8"], "batch_size must be a positive integer, got -8"),
    ("train", ["--train-subset", "-5"], r"train_subset must be in \[1, \d+\].*got -5"),
    ("train", ["--val-size", "-1"], r"val_size must be in \[0, 49999\].*got -1"),
    ("train", ["--test-subset", "-1"], r"test_subset must be in \[1, 10000\].*got -1"),
    ("train", ["--train-subset", "60000"], r"train_subset must be in \[1, \d+\].*got 60000"),
    ("train", ["--test-subset", "20000"], r"test_subset must be in \[1, 10000\].*got 20000"),
    ("train", ["--val-size", "50000"], r"val_size must be in \[0, 49999\]"),
    ("train", ["--num-biases", "-2"], "num_biases must be a positive integer"),
    ("sweep", ["--models", "resnet_s", "resnet_x"], "Unknown model 'resnet_x'; choose one of"),
    ("sweep", ["--epochs", "0"], "epochs must be a positive integer, got 0"),
    ("bench", ["--model", "resnet_x"], "Unknown model 'resnet_x'; choose one of"),
    ("bench", ["--width", "-0.5"], "width must be positive, got -0.5"),
    ("bench", ["--batch-size", "0"], "batch_size must be a positive integer, got 0"),
    ("bench", ["--steps", "0"], "steps must be a positive integer, got 0"),
    ("bench", ["--warmup", "-1"], "warmup must be a non-negative integer, got -1"),
    ("models", ["--width", "-1"], "width must be positive, got -1"),
]


@pytest.mark.parametrize("cli, argv, message", CASES, ids=[f"{c}{' '.join(a)}" for c, a, _ in CASES])
def test_bad_input_is_one_line_and_exit_2(cli, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        CLIS[cli](argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith(f"python -m abn.{cli}: error: ")
    assert err.rstrip("\n").endswith(errors[0])  # the last line (argparse's usage above it)
    assert re.search(message, errors[0]), errors[0]
    assert "Traceback" not in err


def test_bad_input_from_a_shell():
    """The same as a user sees it: exit status 2, no traceback, the last line names it."""
    proc = subprocess.run([sys.executable, "-m", "abn.train", "--epochs", "0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == ("python -m abn.train: error: epochs must be a "
                                            "positive integer, got 0.")
