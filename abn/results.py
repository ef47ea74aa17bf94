"""Read and write stored results (``results/*.json``); every file abn writes goes through here.

Training results are the JSON files ``python -m abn.train`` and ``python -m abn.sweep``
write (``"kind": "train"``); benchmark results come from ``python -m abn.bench --out``
(``"kind": "bench"``). The schema is documented in results/README.md. Tables and
statistics over results are :mod:`abn.stats`'s job.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from abn.provenance import REPO

RESULTS = REPO / "results"  # this checkout's results/: where runs are written
# results/ as pip installs it with the package (pyproject.toml), for a copy of abn that
# has no checkout around it: a notebook opened in Colab reads the stored results here.
PACKAGED = Path(__file__).resolve().parent / "_stored"


def stored_results() -> Path:
    """The folder the stored results are read from: ``results/`` of this checkout, or,
    where abn was installed from the repository with pip (Colab), the copy of it that
    was installed with the package. Both hold the same files at the same commit."""
    return RESULTS if (REPO / "pyproject.toml").is_file() else PACKAGED


# A study run once on a CPU (too long for every build, too small to compare with the
# paper), in its own folder so that it never pools with full-scale runs; shown labelled
# with its scale (chapter 8, Appendix B).
CPU_RESULTS = stored_results() / "cpu"
REQUIRED = {"train": ("model", "variant", "seed", "profile", "history", "final_test_acc", "best_test_acc",
                      "final_val_acc", "params", "provenance"),
            "bench": ("model", "paper_loop_img_s", "abn_img_s", "ratio", "provenance")}


class ResultError(ValueError):
    """A result file that cannot be used, with the file's name in the message."""


def refuse_results_folder(path: str | Path | None) -> None:
    """Raise ValueError if ``path`` is the repository's ``results/`` or lies inside it:
    runs on anything but CIFAR-10 (the smoke check's synthetic images) write elsewhere,
    so that nothing but real results can ever land where the book reads them."""
    if path is not None and Path(path).resolve().is_relative_to(RESULTS.resolve()):
        raise ValueError(f"{path} is in {RESULTS}: runs on synthetic data never write there.")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary file beside ``path`` to write to; renamed over ``path`` when the block
    ends without an error, deleted when it raises. An interrupted write (a crash, a
    kill, a full disk) so never leaves half a file where a result or checkpoint was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(result: dict, path: str | Path) -> None:
    """Write ``result`` atomically as pretty JSON."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")


def load_results(folder: str | Path | None = None, kind: str = "train",
                 profile: str | None = None) -> list[dict]:
    """Every result of ``kind`` in ``folder`` (default :func:`stored_results`), sorted
    by file name, optionally of one profile; [] when the folder does not exist."""
    if kind not in REQUIRED:
        raise ValueError(f"kind must be one of {sorted(REQUIRED)}, got {kind!r}.")
    folder = stored_results() if folder is None else folder
    found = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            r = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ResultError(f"{path} is not valid JSON ({err}); delete or regenerate it.") from err
        if not isinstance(r, dict) or r.get("kind") != kind:
            continue
        missing = [k for k in REQUIRED[kind] if k not in r]
        if missing:
            raise ResultError(f"{path} lacks {missing} (see results/README.md for the schema).")
        if profile is None or r.get("profile") == profile:
            found.append(r | {"file": path.name})
    return found


def provenance_label(results: list[dict]) -> str:
    """"precomputed on <device>, <date>, commit <sha>" for a set of results (ranges if mixed)."""
    if not results:
        return "no precomputed results"
    prov = [r["provenance"] for r in results]
    devices = sorted({p.get("device", "?") for p in prov})
    dates = sorted(p.get("date_utc", "?")[:10] for p in prov)
    commits = sorted({(p.get("git_commit") or "unknown")[:7] for p in prov})
    date = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
    return f"precomputed on {', '.join(devices)}, {date}, commit {', '.join(commits)}"
