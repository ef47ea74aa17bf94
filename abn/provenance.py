"""Where a number came from: device, software versions, commit, date, command."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


def device_name(device: torch.device | str) -> str:
    """A human-readable name of the device ("NVIDIA H100 80GB HBM3", "cpu: AMD EPYC (2 threads)")."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {model} ({torch.get_num_threads()} threads)"


def _git(*args: str) -> str:
    """The output of ``git <args>`` in this checkout (raises if git fails or is missing)."""
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=10, check=True).stdout.strip()


def git_commit() -> str | None:
    """The commit of this checkout, with '-dirty' if it has uncommitted changes.

    Outside git (a copy of the working tree without ``.git``, as a remote GPU machine
    gets it), ``$ABN_GIT_COMMIT``: set it to the commit the copy was made from. None if
    neither is there."""
    try:
        sha = _git("rev-parse", "HEAD")
        return sha + ("-dirty" if _git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("ABN_GIT_COMMIT") or None


def command_line() -> str:
    """How this process was started, as a user would type it (``python -m abn.train ...``)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    head = ["python", "-m", spec.name] if spec is not None and spec.name else ["python", sys.argv[0]]
    return shlex.join([*head, *sys.argv[1:]])


def determinism() -> dict:
    """The settings that decide whether GPU kernels are reproducible, as they are now:
    cuDNN's autotuner (``benchmark``: it may pick other kernels on another run), cuDNN's
    deterministic mode, and ``torch.use_deterministic_algorithms``. abn leaves PyTorch's
    defaults (no autotuner, nondeterministic kernels allowed): a seed fixes a run's
    initialisation and data, not the order of a GPU's floating-point atomics."""
    return {"cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}


def provenance(device: torch.device | str, command: str | None = None) -> dict:
    """The provenance block stored with every result."""
    return {
        "device": device_name(device),
        "device_type": torch.device(device).type,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "determinism": determinism(),
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command if command is not None else command_line(),
    }
