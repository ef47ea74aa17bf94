"""Run the recipe for every (model, seed) pair; one JSON each; skip what is done, resume the rest.

    python -m abn.sweep --models resnet_s resnet_dmb --seeds 0 1 2 3 4 --out results/

Each run writes ``<out>/<model>_seed<seed>.json`` (quick-profile runs get a ``_quick``
suffix so they never mix with full-scale results). A run whose JSON exists is skipped; a
run that was interrupted resumes from ``<checkpoints>/<same name>.pt``, which is deleted
once its JSON is written. Seeds are paired: the data order and every augmentation depend
on the seed alone (:func:`abn.data.epoch_generator`), so ``resnet_s`` and ``resnet_dmb``
with the same seed see identical batches.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from abn.models import MODELS
from abn.train import TrainConfig, add_config_args, configs_from_args, train


def run_name(cfg: TrainConfig) -> str:
    """The file stem of a run's result and checkpoint."""
    suffix = "" if cfg.profile == "full" else f"_{cfg.profile}"
    return f"{cfg.model}_seed{cfg.seed}{suffix}"


def sweep(configs: list[TrainConfig], out: str | Path, checkpoints: str | Path = "checkpoints",
          device: str | None = None, progress: bool = True, keep_checkpoints: bool = False) -> list[Path]:
    """Train every config not yet done; returns the result paths (existing and new)."""
    out, checkpoints = Path(out), Path(checkpoints)
    paths = []
    for i, cfg in enumerate(configs, 1):
        name = run_name(cfg)
        path, ckpt = out / f"{name}.json", checkpoints / f"{name}.pt"
        if path.exists():
            print(f"[{i}/{len(configs)}] {name}: done, skipped ({path})", flush=True)
        else:
            print(f"[{i}/{len(configs)}] {name}: training", flush=True)
            train(cfg, out=path, checkpoint=ckpt, device=device, progress=progress)
            if not keep_checkpoints:
                ckpt.unlink(missing_ok=True)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    """``python -m abn.sweep``: train every (model, seed) pair not already in ``--out``."""
    p = argparse.ArgumentParser(prog="python -m abn.sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["resnet_s", "resnet_dmb"],
                   help=f"model names, any of: {', '.join(sorted(MODELS))}")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--out", default="results", help="folder for the result JSONs")
    p.add_argument("--checkpoints", default="checkpoints", help="folder for per-epoch checkpoints")
    p.add_argument("--keep-checkpoints", action="store_true")
    add_config_args(p)
    args = p.parse_args(argv)
    # Seed-major order: after an interruption, the finished seeds are complete pairs.
    configs = configs_from_args(p, args, args.models, args.seeds)
    paths = sweep(configs, args.out, args.checkpoints, args.device, not args.no_progress,
                  args.keep_checkpoints)
    print(f"{len(paths)} results in {args.out}")


if __name__ == "__main__":
    main()
