"""Run the recipe for every (model, seed) pair; one JSON each; skip what is done, resume the rest.

::

    python -m abn.sweep --models resnet_s resnet_dmb --seeds 0 1 2 3 4 --out results/
    torchrun --nproc-per-node 8 -m abn.sweep --models resnet_s resnet_dmb --seeds 0 1 2 3 4

Each run writes ``<out>/<name>.json``, its name made by :func:`run_name`
(``resnet_s_seed0.json``; the paper protocol, a model kwarg such as K, epochs other than
the profile's and the quick profile each add a suffix, so such runs never share a file).
A run whose JSON exists is skipped, if it was trained with the same config (if not, the
sweep stops and names the file); a run that was interrupted resumes from
``<checkpoints>/<same name>.pt``, which is deleted once its JSON is written. Seeds are
paired: the data order and every augmentation depend on the seed alone
(:func:`abn.data.epoch_generator`), so ``resnet_s`` and ``resnet_dmb`` with the same seed
see identical batches.

Started by ``torchrun`` (:mod:`abn.distributed`), every process takes its share of the
runs still missing, one GPU each; a run that fails is reported with its model and seed
while the others go on, and the command exits non-zero; rerunning it finishes only what
is missing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import traceback
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from abn import profiles
from abn.checkpoints import save_trained
from abn.distributed import World, world
from abn.models import MODELS
from abn.data import Cifar10
from abn.results import refuse_results_folder, write_json
from abn.stats import summary_table
from abn.train import (TrainConfig, add_config_args, checkpoint_folder, config_dict, config_diff,
                       configs_from_args, train)

# Settings that change how fast a run goes, not what it computes: a result made with or
# without them counts as done.
SPEED_ONLY = ("compile",)


def run_name(cfg: TrainConfig) -> str:
    """The file stem of a run's result and checkpoint: ``<model>_seed<seed>``, then the
    model kwargs (``_num_biases8``), ``_<n>ep`` for epochs other than the profile's,
    ``_paper`` for the paper protocol and ``_<profile>`` unless it is full."""
    parts = [cfg.model, f"seed{cfg.seed}"]
    parts += [f"{k}{v}" for k, v in sorted(cfg.model_kwargs.items())]
    if cfg.epochs != profiles.resolve(cfg.profile).epochs:
        parts.append(f"{cfg.epochs}ep")
    if cfg.protocol != "honest":
        parts.append(cfg.protocol)
    if cfg.profile != "full":
        parts.append(cfg.profile)
    return "_".join(parts)


def checkpoint_file(cfg: TrainConfig, default_folder: str | Path = "checkpoints") -> Path:
    """The training checkpoint of ``cfg``'s run under the name a sweep gives it,
    ``<folder>/<run_name>.pt``, in :func:`abn.train.checkpoint_folder` (``$ABN_CHECKPOINTS``,
    else ``default_folder``): chapter 7 finds chapter 6's run this way."""
    return checkpoint_folder(default_folder) / f"{run_name(cfg)}.pt"


def recorded_config(result: dict) -> dict:
    """The config dict (as :func:`abn.train.config_dict` makes it) a result was trained with."""
    recipe = result.get("recipe") or {}
    cfg = {k: result[k] for k in ("model", "seed", "width", "profile", "protocol") if k in result}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return {k: v for k, v in recipe.items() if k in fields} | cfg


class SweepError(RuntimeError):
    """Runs that failed."""


class ResultMismatch(SweepError):
    """A stored result under a run's name that another config produced."""


def is_done(cfg: TrainConfig, path: Path) -> bool:
    """Whether ``path`` holds ``cfg``'s result. A result of another config under the same
    name raises :class:`ResultMismatch` naming the file: skipping it would report the wrong
    run, and overwriting it would lose one."""
    if not path.exists():
        return False
    now = config_dict(cfg)
    ignore = SPEED_ONLY + (("amp",) if cfg.amp is None else ())  # None: the device's default
    if diff := config_diff(now, recorded_config(json.loads(path.read_text())), ignore):
        raise ResultMismatch(f"{path} holds a run of another config (now, then): {diff}. Move it "
                         "away, or run with the settings it records.")
    return True


@dataclass(frozen=True)
class Failure:
    """A run that raised: which one, and the error's last line."""

    name: str
    model: str
    seed: int
    protocol: str
    error: str

    def __str__(self) -> str:
        return f"{self.name} ({self.model}, seed {self.seed}, {self.protocol}): {self.error}"


def run_one(cfg: TrainConfig, path: Path, ckpt: Path, device, progress: bool,
            keep_checkpoints: bool, save: bool, data: Cifar10 | None = None) -> None:
    """Train ``cfg`` (resuming from ``ckpt``), save the trained model in fp16 beside its
    JSON if ``save`` (``<name>.pt``, :func:`abn.checkpoints.save_trained`; for a full-scale
    honest run that is the :func:`abn.checkpoints.checkpoint_path` chapter 7 loads), then
    write the JSON last: a result on disk means the run, and its saved model, are complete."""
    run = train(cfg, checkpoint=ckpt, device=device, progress=progress, data=data)
    if save:
        save_trained(run, path.with_suffix(".pt"))
    write_json(run.result, path)
    if not keep_checkpoints:
        ckpt.unlink(missing_ok=True)


def sweep(configs: list[TrainConfig], out: str | Path, checkpoints: str | Path = "checkpoints",
          device: str | None = None, progress: bool = True, keep_checkpoints: bool = False,
          save_trained: Collection[str] = (), world: World | None = None,
          data: Cifar10 | None = None) -> list[Path]:
    """Train every config not yet done; returns the result paths of all ``configs``.

    ``save_trained``: run names whose trained model is also saved (fp16, with provenance)
    as ``<out>/<name>.pt``. ``world`` (under torchrun): every process reads
    what is done, then takes its share of the rest; a failing run is recorded and the
    others go on, and once all processes are through, :class:`SweepError` lists the
    failures (on every process). Alone, a failing run raises at once, as it always did.
    ``data``: splits to train on instead of CIFAR-10 (the smoke check's); then ``out``
    may not be the repository's ``results/``."""
    if data is not None:
        refuse_results_folder(out)
    world = world or World(device=None)
    out, checkpoints = Path(out), Path(checkpoints)
    paths = [out / f"{run_name(cfg)}.json" for cfg in configs]
    todo = [(i, cfg) for i, (cfg, path) in enumerate(zip(configs, paths), 1)
            if not is_done(cfg, path)]
    if world.rank == 0:
        for i, (cfg, path) in enumerate(zip(configs, paths), 1):
            if path.exists():
                print(f"[{i}/{len(configs)}] {run_name(cfg)}: done, skipped ({path})", flush=True)
    world.barrier()  # every process has read what is done before any writes
    device = world.device or device
    who = f"[rank {world.rank}] " if world.distributed else ""
    failures = []
    for i, cfg in world.share(todo):
        name = run_name(cfg)
        print(f"{who}[{i}/{len(configs)}] {name}: training", flush=True)
        try:
            run_one(cfg, paths[i - 1], checkpoints / f"{name}.pt", device, progress,
                    keep_checkpoints, name in save_trained, data)
        except Exception as err:  # under torchrun: report it, keep the other runs going
            if not world.distributed:
                raise
            traceback.print_exc()
            line = (traceback.format_exception_only(err)[-1]).strip()
            failures.append(Failure(name, cfg.model, cfg.seed, cfg.protocol, line))
            print(f"{who}{name}: FAILED ({line})", flush=True)
    world.barrier()
    failures = [f for rank in world.gather(failures) for f in rank]
    if failures:
        raise SweepError(f"{len(failures)} run(s) failed; rerun the same command to retry "
                         "them:\n" + "\n".join(f"  {f}" for f in failures))
    return paths


def summary_text(paths: list[Path]) -> str:
    """The finished runs among ``paths`` as a table of :func:`abn.stats.summary_table`."""
    results = [json.loads(p.read_text()) for p in paths if p.exists()]
    if not results:
        return "no finished runs"
    columns = ["protocol", "n", "final_test_mean", "final_test_std", "best_test_mean",
               "final_val_mean"]
    table = summary_table(results)
    return table[[c for c in columns if c in table.columns]].round(2).to_string()


def run_sweep(parser: argparse.ArgumentParser, args: argparse.Namespace,
              configs: list[TrainConfig], out: str, save_trained: Collection[str] = (),
              data: Cifar10 | None = None) -> None:
    """The command-line flow shared by ``abn.sweep`` and ``abn.campaign``: join the
    processes of a torchrun launch (if any), sweep ``configs``, and on rank 0 print the
    combined summary. A stored result of another config ends it through ``parser.error``
    (exit status 2); failed runs are listed and the exit status is 1."""
    with world(args.device) as w:
        try:
            paths = sweep(configs, out, args.checkpoints, args.device, not args.no_progress,
                          args.keep_checkpoints, save_trained, w, data)
        except ResultMismatch as err:
            parser.error(str(err)) if w.rank == 0 else sys.exit(2)
        except SweepError as err:
            if w.rank == 0:
                print(f"{parser.prog}: {err}", file=sys.stderr, flush=True)
            sys.exit(1)
        if w.rank == 0:
            print(summary_text(paths))
            print(f"{sum(p.exists() for p in paths)} results in {out}", flush=True)


def add_sweep_args(p: argparse.ArgumentParser) -> None:
    """Where a sweep writes (shared with ``python -m abn.campaign``)."""
    p.add_argument("--checkpoints", default=checkpoint_folder(),
                   help="folder for per-epoch checkpoints (default: $ABN_CHECKPOINTS or checkpoints)")
    p.add_argument("--keep-checkpoints", action="store_true")


def main(argv: list[str] | None = None) -> None:
    """``python -m abn.sweep``: train every (model, seed) pair not already in ``--out``."""
    p = argparse.ArgumentParser(prog="python -m abn.sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["resnet_s", "resnet_dmb"],
                   help=f"model names, any of: {', '.join(sorted(MODELS))}")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--out", default="results", help="folder for the result JSONs")
    add_sweep_args(p)
    add_config_args(p)
    args = p.parse_args(argv)
    # Seed-major order: after an interruption, the finished seeds are complete pairs.
    run_sweep(p, args, configs_from_args(p, args, args.models, args.seeds), args.out)


if __name__ == "__main__":
    main()
