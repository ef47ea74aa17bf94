"""Small, shareable checkpoints of trained models: fp16 weights, the config, the provenance.

A training checkpoint (``checkpoints/*.pt``, see :mod:`abn.train`) holds the optimiser
and schedule too and is meant for resuming. The files here are for *looking at* a
trained model (chapter 7 opens the gates of one): weights only, in half precision, so a
full-width ResNet-DMB (2.96 M parameters) fits in about 6 MB and can live in ``results/``
beside the JSON results, with where it came from. For example::

    run = abn.train.train(TrainConfig.from_profile("full", model="resnet_dmb"))
    save_trained(run, checkpoint_path("results"))        # results/resnet_dmb_seed0.pt
    model, prov = load_trained_dmb()                     # later, anywhere, on CPU
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from abn.models import build_model
from abn.provenance import provenance
from abn.results import atomic_path, stored_results

MAX_BYTES = 8 * 1024 * 1024  # results/ lives in git: keep each file small


def checkpoint_path(results_dir: str | Path, model: str = "resnet_dmb", seed: int = 0) -> Path:
    """Where the trained ``model`` of ``seed`` lives: ``results/resnet_dmb_seed0.pt``."""
    return Path(results_dir) / f"{model}_seed{seed}.pt"


def save_trained(run, path: str | Path, max_bytes: int = MAX_BYTES) -> Path:
    """Write a finished :class:`abn.train.Run` as {"state_dict" (fp16), "config", "provenance"}.

    Floating-point tensors are stored in half precision (BatchNorm's integer counters stay
    as they are). The provenance is the run's own (device, versions, commit, command), with
    its final and best test accuracy, so a reader knows what the weights are.
    Raises ValueError if the file would exceed ``max_bytes``.
    """
    state = {k: v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu()
             for k, v in run.model.state_dict().items()}
    result = run.result or {}
    prov = dict(result.get("provenance") or provenance(run.device))
    prov.update(final_test_acc=result.get("final_test_acc"), best_test_acc=result.get("best_test_acc"),
                epochs_trained=run.epoch, params=result.get("params"))
    # Plain JSON types only (torch.__version__ is a str subclass), so that the file loads
    # with torch.load(weights_only=True), which runs no pickled code.
    prov = json.loads(json.dumps(prov, default=str))
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "config": dataclasses.asdict(run.cfg), "provenance": prov}, tmp)
        if (size := tmp.stat().st_size) > max_bytes:  # raising here leaves no file behind
            raise ValueError(f"{path.name} would be {size / 2**20:.1f} MiB, over the "
                             f"{max_bytes / 2**20:.0f} MiB limit for files in results/.")
    return path


def load_trained(path: str | Path) -> tuple[nn.Module, dict]:
    """The model saved by :func:`save_trained` (float32, CPU, eval mode) and its provenance
    (with the training config under ``"config"``)."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    cfg = saved["config"]
    model = build_model(cfg["model"], cfg["width"], **cfg.get("model_kwargs", {}))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in saved["state_dict"].items()})
    return model.eval(), {**saved["provenance"], "config": cfg}


def load_trained_dmb(results_dir: str | Path | None = None, seed: int = 0) -> tuple[nn.Module, dict] | None:
    """The precomputed ResNet-DMB of ``seed`` in ``results_dir`` (default: the stored
    results, :func:`abn.results.stored_results`, also in Colab), or None if there is none."""
    results_dir = stored_results() if results_dir is None else results_dir
    path = checkpoint_path(results_dir, "resnet_dmb", seed)
    return load_trained(path) if path.exists() else None
