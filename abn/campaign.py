"""The whole full-scale study, in priority order, as one command that is safe to re-run.

::

    python -m abn.campaign --dry-run                 # the plan: what is done, what is missing
    python -m abn.campaign --preflight               # versions, speed, how many runs side by side
    python -m abn.campaign --smoke                   # the whole path on synthetic data, ~1 min
    python -m abn.campaign --concurrency 4           # everything missing, 4 runs at a time
    torchrun --nproc-per-node 8 -m abn.campaign      # the same over 8 GPUs

Stages (:data:`STAGES`), each seed-major so that finished seeds are complete pairs:

1. ResNet-S and ResNet-DMB, honest protocol, seeds 0-4; seed 0's trained ResNet-DMB is
   also saved in fp16 with its provenance (``results/resnet_dmb_seed0.pt``, chapter 7).
2. The same pair under the paper's protocol, seeds 0-4.
3. Ablations and prior art, honest protocol, seeds 0-4.
4. The pair at 50 epochs, honest protocol, seeds 0-2. The authors' ``main.py`` (commit
   09f6851) trains for 15 epochs with the comment "Reduced epochs for faster testing.
   Change to 50 for full run."; its default, and their full run, is 50 epochs.

Every run is one :func:`abn.sweep.sweep` entry: one JSON per run in ``--out``, finished
runs skipped, interrupted ones resumed from ``--checkpoints``. ``--concurrency N`` starts
N processes side by side on the one device through torchrun, which share the runs out
exactly as ``torchrun -m abn.sweep`` does across GPUs.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from abn import bench, profiles, smoke
from abn.distributed import launched_by_torchrun
from abn.provenance import device_name, provenance
from abn.results import write_json
from abn.sweep import ResultMismatch, add_sweep_args, is_done, run_name, run_sweep
from abn.train import TrainConfig, default_device

PAIR = ("resnet_s", "resnet_dmb")


@dataclass(frozen=True)
class Stage:
    """One block of runs of the campaign."""

    number: int
    what: str
    models: tuple[str, ...]
    seeds: tuple[int, ...]
    protocol: str = "honest"
    epochs: int | None = None  # None: the profile's
    save_trained: tuple[tuple[str, int], ...] = ()  # (model, seed) also saved in fp16


STAGES = (
    Stage(1, "the paper's pair", PAIR, (0, 1, 2, 3, 4), save_trained=(("resnet_dmb", 0),)),
    Stage(2, "the paper's pair, its own protocol", PAIR, (0, 1, 2, 3, 4), protocol="paper"),
    Stage(3, "ablations and prior art", ("resnet_se_var3", "resnet_dmb_k0", "resnet_s_wide",
                                         "resnet_dmb_k1", "resnet_se", "resnet_dmb_k8",
                                         "resnet_qk"), (0, 1, 2, 3, 4)),
    Stage(4, "the pair at 50 epochs (main.py's full run)", PAIR, (0, 1, 2), epochs=50),
)


def stage_configs(stage: Stage, args: argparse.Namespace) -> list[TrainConfig]:
    """The stage's runs, seed-major, in the profile and sizes ``args`` set (ValueError if
    they cannot train). The paper protocol keeps no validation split, whatever
    ``--val-size`` says."""
    return [TrainConfig.from_profile(
        args.profile, model=model, seed=seed, protocol=stage.protocol,
        epochs=stage.epochs or args.epochs, width=args.width, train_subset=args.train_subset,
        val_size=None if stage.protocol == "paper" else args.val_size,
        test_subset=args.test_subset, compile=args.compile or None)
        for seed in stage.seeds for model in stage.models]


def plan_table(stages: list[Stage], args: argparse.Namespace) -> pd.DataFrame:
    """One row per stage: what it runs, how many runs, how many are done in ``--out``."""
    rows = []
    for stage in stages:
        configs = stage_configs(stage, args)
        done = sum(is_done(c, Path(args.out) / f"{run_name(c)}.json") for c in configs)
        rows.append({"stage": stage.number, "what": stage.what, "protocol": stage.protocol,
                     "epochs": configs[0].epochs, "models": len(stage.models),
                     "seeds": f"{stage.seeds[0]}-{stage.seeds[-1]}", "runs": len(configs),
                     "done": done, "missing": len(configs) - done})
    return pd.DataFrame(rows).set_index("stage")


def torchrun_command(concurrency: int, argv: list[str]) -> list[str]:
    """``python -m abn.campaign <argv>`` as ``concurrency`` processes through torchrun
    (the smoke check launches its two processes with this too)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={concurrency}", "-m", "abn.campaign", *argv, "--concurrency", "1"]


def relaunch(concurrency: int, argv: list[str]) -> int:
    """Run this same command as ``concurrency`` processes on this machine, through torchrun
    (they share the runs as torchrun's ranks do); returns torchrun's exit status."""
    cmd = torchrun_command(concurrency, argv)
    print("$ " + " ".join(cmd[1:]), flush=True)
    return subprocess.run(cmd).returncode


def device_tag(device: torch.device) -> str:
    """A short file-name form of the device: ``cpu``, ``nvidia_h100_80gb_hbm3``."""
    return "cpu" if device.type == "cpu" else re.sub(r"\W+", "_", device_name(device).lower())


def recommended_concurrency(side_by_side: list[dict], within: float = 0.95) -> int:
    """The fewest runs side by side whose aggregate images/s comes within ``within`` of the
    best measured: more processes than that add memory and contention, not speed."""
    return fastest(side_by_side, within)["runs"]


def fastest(measured: list[dict], within: float = 0.95) -> dict:
    """The simplest setting among ``measured`` (side-by-side results; those with an
    ``error`` are skipped) whose aggregate images/s is within ``within`` of the best:
    fewest runs first, then without CUDA MPS, then without torch.compile."""
    ok = [r for r in measured if "error" not in r]
    best = max(r["images_per_s"] for r in ok)
    return min((r for r in ok if r["images_per_s"] >= within * best),
               key=lambda r: (r["runs"], bool(r.get("mps")), bool(r.get("compile"))))


def start_mps() -> bool:
    """Start the CUDA MPS control daemon (``nvidia-cuda-mps-control -d``), which lets the
    processes on one GPU share it at once instead of taking turns; False where the
    image has no such program or it does not start. It runs until :func:`stop_mps`."""
    exe = shutil.which("nvidia-cuda-mps-control")
    if exe is None:
        return False
    return subprocess.run([exe, "-d"], capture_output=True, timeout=30).returncode == 0


def stop_mps() -> None:
    """Stop the MPS daemon :func:`start_mps` started (``echo quit | nvidia-cuda-mps-control``)."""
    if exe := shutil.which("nvidia-cuda-mps-control"):
        subprocess.run([exe], input=b"quit\n", capture_output=True, timeout=30)


def setting_line(r: dict) -> str:
    """A side-by-side setting as the campaign's flags: ``--concurrency 4 --compile MODE``."""
    compile = f" --compile {r['compile']}" if isinstance(r.get("compile"), str) else (
        " --compile" if r.get("compile") else "")
    mps = " (under CUDA MPS)" if r.get("mps") else ""
    return f"--concurrency {r['runs']}{compile}{mps}"


def preflight(out: str | Path, device: str | None = None, width: float = 1.0,
              steps: int | None = None, compile_modes: tuple[bool | str, ...] = (False, True),
              concurrency: tuple[int, ...] = (1, 2, 4, 8), models: tuple[str, ...] = PAIR,
              parts: tuple[str, ...] = ("bench", "throughput"), synthetic: bool = False,
              mps: tuple[int, ...] = (), compiled_one: tuple[str, ...] = ()) -> dict:
    """Measure before spending device time: versions; ``bench``: :func:`abn.bench.bench`
    for ResNet-S and ResNet-DMB (paper loop vs abn, batch 128, each of ``compile_modes``;
    one bench JSON each in ``out``); ``throughput``: the aggregate images/s of 1, 2, 4, 8
    training runs side by side, of ``mps`` runs side by side under CUDA MPS (where the
    image has it), and of one run compiled in each of ``compiled_one``'s modes; then the
    fastest setting (:func:`fastest`). ``synthetic``: on random images of CIFAR-10's
    sizes, so that it runs before CIFAR-10 has arrived (the speed is the same).
    Writes ``out/preflight_<device>[_<part>].json`` after each measurement (a call cut
    short by a time limit keeps what it measured; a setting that fails is recorded with
    its error and the others go on) and returns it."""
    dev = torch.device(device) if device else default_device()
    tag, out = device_tag(dev), Path(out)
    warmup = bench.default_warmup(dev)
    benches, side = [], []
    result = {"kind": "preflight", "device": device_name(dev),
              "cudnn": torch.backends.cudnn.version() if dev.type == "cuda" else None,
              "gpus": torch.cuda.device_count(), "data": "synthetic" if synthetic else "cifar10",
              "bench": benches, "side_by_side": side, "recommended_concurrency": None,
              "fastest": None, "provenance": provenance(dev)}
    path = out / (f"preflight_{tag}.json" if set(parts) == {"bench", "throughput"}
                  else f"preflight_{tag}_{'_'.join(parts)}.json")
    for model in models if "bench" in parts else ():
        for compile in compile_modes:
            r = bench.bench(model, width, 128, steps, warmup, str(dev), compile, synthetic)
            suffix = "" if not compile else "_compile" if compile is True else f"_{compile}"
            name = f"bench_{tag}_{model}{suffix}.json"
            bench.save(r, str(out / name), str(dev))
            benches.append(r | {"file": name})
            write_json(result, path)
            print(f"{model} compile={compile}: paper loop {r['paper_loop_img_s']:,.0f} img/s, "
                  f"abn {r['abn_img_s']:,.0f} img/s, ratio {r['ratio']:.2f}", flush=True)
    settings = [(n, False, False) for n in concurrency] + [(n, True, False) for n in mps] + [
        (1, False, mode) for mode in compiled_one]
    mps_on = False
    for n, under_mps, compile in settings if "throughput" in parts else ():
        if under_mps and not mps_on and not (mps_on := start_mps()):
            side.append({"runs": n, "mps": True, "compile": compile,
                         "error": "nvidia-cuda-mps-control is missing or did not start"})
            print(f"{n} run(s) side by side under MPS: {side[-1]['error']}", flush=True)
            write_json(result, path)
            continue
        if mps_on and not under_mps:
            stop_mps()
            mps_on = False
        label = f"{n} run(s) side by side{' under MPS' if under_mps else ''}" + (
            f", compile {compile}" if compile else "")
        try:
            r = bench.side_by_side_images_per_second(
                n, "resnet_s", width, steps=steps or 200, warmup=warmup, device=str(dev),
                compile=compile, synthetic=synthetic) | {"mps": under_mps}
            print(f"{label}: {r['images_per_s']:,.0f} img/s in all", flush=True)
        except Exception as err:  # one setting failing must not cost the others
            r = {"runs": n, "mps": under_mps, "compile": compile, "error": str(err)}
            print(f"{label}: FAILED ({err})", flush=True)
        side.append(r)
        if any("error" not in s for s in side):
            result["fastest"] = fastest(side)
            result["recommended_concurrency"] = result["fastest"]["runs"]
        write_json(result, path)
    if mps_on:
        stop_mps()
    if result["fastest"]:
        f = result["fastest"]
        print(f"fastest: {setting_line(f)}: {f['images_per_s']:,.0f} img/s", flush=True)
    return result


def fastest_setting(out: str | Path, device: torch.device) -> dict | None:
    """The fastest setting a preflight on this device stored in ``out`` (the throughput
    part's file first), or None if there is none."""
    tag = device_tag(device)
    for name in (f"preflight_{tag}_throughput.json", f"preflight_{tag}.json"):
        path = Path(out) / name
        if path.exists() and (f := json.loads(path.read_text()).get("fastest")):
            return f
    return None


def apply_fastest(args: argparse.Namespace) -> None:
    """Set ``args.concurrency`` and ``args.compile`` from :func:`fastest_setting` (4 runs
    side by side without one), and start CUDA MPS if that setting used it. The processes
    torchrun starts take only the compile mode: the launch is already made."""
    dev = torch.device(args.device) if args.device else default_device()
    f = fastest_setting(args.out, dev) or {"runs": 4, "compile": False, "mps": False}
    args.compile = f.get("compile") or args.compile
    if launched_by_torchrun():
        return
    args.concurrency = f["runs"]
    if f.get("mps") and not start_mps():
        print("CUDA MPS did not start; running without it", flush=True)
    print(f"setting: {setting_line(f)}", flush=True)


def main(argv: list[str] | None = None) -> None:
    """``python -m abn.campaign``: every missing run of the selected stages, in order."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m abn.campaign", description=__doc__.split("\n\n")[0])
    p.add_argument("--stages", nargs="+", type=int, choices=[s.number for s in STAGES],
                   default=[s.number for s in STAGES], help="which stages (default: all, in order)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and what is done; train nothing")
    p.add_argument("--preflight", nargs="?", const="all", choices=["all", "bench", "throughput"],
                   help="measure versions, speed (bench) and side-by-side throughput (with CUDA "
                        "MPS and compile reduce-overhead on CUDA); train nothing")
    p.add_argument("--synthetic", action="store_true",
                   help="--preflight on random images of CIFAR-10's sizes (before it arrives)")
    p.add_argument("--fastest", action="store_true",
                   help="run with the fastest setting the preflight stored in --out "
                        "(concurrency, compile, CUDA MPS); 4 runs side by side if none")
    p.add_argument("--smoke", action="store_true",
                   help="check the whole path on synthetic images in a temporary folder "
                        "(abn.smoke); train nothing real, write nothing in results/")
    p.add_argument("--smoke-worker", help=argparse.SUPPRESS)  # one torchrun process of --smoke
    p.add_argument("--concurrency", type=int, default=1, help="runs side by side on this device")
    p.add_argument("--out", default="results", help="folder for the result JSONs")
    add_sweep_args(p)
    p.add_argument("--profile", choices=profiles.PROFILES, default="full")
    p.add_argument("--device", help="cuda | cpu (default: cuda if available)")
    p.add_argument("--compile", nargs="?", const=True, metavar="MODE",
                   help="use torch.compile, in MODE if given (reduce-overhead: CUDA graphs)")
    p.add_argument("--no-progress", action="store_true")
    small = p.add_argument_group("smaller runs (for tests; the campaign is full scale)")
    small.add_argument("--width", type=float)
    small.add_argument("--epochs", type=int, help="epochs of stages 1-3 (stage 4: 50)")
    small.add_argument("--train-subset", type=int)
    small.add_argument("--val-size", type=int)
    small.add_argument("--test-subset", type=int)
    small.add_argument("--preflight-steps", type=int, help="timed steps per measurement")
    args = p.parse_args(argv)
    if args.smoke:
        sys.exit(smoke.smoke(args.device))
    if args.smoke_worker:
        smoke.worker(args.smoke_worker, p, args)
        return
    if args.fastest:
        apply_fastest(args)
    if args.concurrency < 1:
        p.error(f"concurrency must be a positive integer, got {args.concurrency}.")
    stages = [s for s in STAGES if s.number in args.stages]
    try:
        configs = [c for s in stages for c in stage_configs(s, args)]
        table = plan_table(stages, args)
    except (ValueError, ResultMismatch) as err:
        p.error(str(err))
    if args.preflight:
        cuda = (torch.device(args.device) if args.device else default_device()).type == "cuda"
        parts = ("bench", "throughput") if args.preflight == "all" else (args.preflight,)
        r = preflight(args.out, args.device, args.width or 1.0, args.preflight_steps,
                      compile_modes=(False,) if args.preflight == "bench" else (False, True),
                      parts=parts, synthetic=args.synthetic, mps=(2, 4, 8) if cuda else (),
                      compiled_one=("reduce-overhead",) if cuda else ())
        if r["fastest"]:
            print(f"recommended: python -m abn.campaign {setting_line(r['fastest'])}")
        return
    if not launched_by_torchrun():  # torchrun's ranks: the plan was printed before the launch
        print(f"Campaign plan ({args.profile} profile, results in {args.out}):")
        print(table.to_string())
        print(f"{table['missing'].sum()} of {table['runs'].sum()} runs to go.", flush=True)
        if args.dry_run:
            return
    if args.concurrency > 1 and not launched_by_torchrun():
        sys.exit(relaunch(args.concurrency, argv))
    save = {run_name(c) for s in stages for c in stage_configs(s, args)
            if (c.model, c.seed) in s.save_trained}
    run_sweep(p, args, configs, args.out, save)


if __name__ == "__main__":
    main()
