"""Read stored results (``results/*.json``) and summarise them for the chapters.

Training results are the JSON files ``python -m abn.train`` and ``python -m abn.sweep``
write (``"kind": "train"``); benchmark results come from ``python -m abn.bench --out``
(``"kind": "bench"``). The schema is documented in results/README.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from abn.provenance import REPO

RESULTS = REPO / "results"
REQUIRED = {"train": ("model", "variant", "seed", "profile", "history", "final_test_acc", "best_test_acc",
                      "final_val_acc", "params", "provenance"),
            "bench": ("model", "paper_loop_img_s", "abn_img_s", "ratio", "provenance")}


class ResultError(ValueError):
    """A result file that cannot be used, with the file's name in the message."""


def load_results(folder: str | Path = RESULTS, kind: str = "train", profile: str | None = None) -> list[dict]:
    """Every result of ``kind`` in ``folder`` (sorted by file name), optionally of one profile."""
    if kind not in REQUIRED:
        raise ValueError(f"kind must be one of {sorted(REQUIRED)}, got {kind!r}.")
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


def runs_table(results: list[dict]) -> pd.DataFrame:
    """One row per run: model, variant, seed, final/best test accuracy, validation, time."""
    rows = [{"model": r["model"], "variant": r["variant"], "seed": r["seed"], "params": r["params"],
             "final_test_acc": r["final_test_acc"], "best_test_acc": r["best_test_acc"],
             "best_epoch": r.get("best_epoch"), "final_val_acc": r["final_val_acc"],
             "wall_s": r.get("wall_s"), "train_images_per_s": r.get("train_images_per_s"),
             "device": r["provenance"].get("device")} for r in results]
    return pd.DataFrame(rows)


def aggregate(results: list[dict]) -> pd.DataFrame:
    """Per model: n, mean and std (n-1) of final-epoch test accuracy, beside the paper-style
    best-over-epochs mean, the validation mean, wall time and throughput."""
    table = runs_table(results)
    if table.empty:
        return table
    g = table.groupby("model", sort=False)
    out = pd.DataFrame({
        "variant": g["variant"].first(), "params": g["params"].first(), "n": g.size(),
        "final_test_mean": g["final_test_acc"].mean(), "final_test_std": g["final_test_acc"].std(ddof=1),
        "best_test_mean": g["best_test_acc"].mean(), "final_val_mean": g["final_val_acc"].mean(),
        "wall_s_mean": g["wall_s"].mean(), "images_per_s_mean": g["train_images_per_s"].mean(),
    })
    return out.reset_index()


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
