"""Runs spread over processes started by ``torchrun``: which process am I, on which device.

``abn.sweep`` and ``abn.campaign`` use this to share their runs out when started as::

    torchrun --nproc-per-node 8 -m abn.sweep ...            # 8 GPUs of one machine
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d \\
             --rdzv-endpoint host:29400 -m abn.sweep ...    # 2 machines

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in each process it starts;
without them everything runs in this one process, as before. The processes only
coordinate (a barrier, the list of failed runs); each trains its own runs alone, so no
gradient ever crosses processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

# How long a rank waits at a barrier for the others. They arrive when their last run is
# done, so this bounds how much longer one rank's share may take than another's; a rank
# that dies makes torchrun stop the whole group long before.
TIMEOUT = timedelta(hours=6)


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one launch (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device | None = None  # None: abn.train's default

    @property
    def distributed(self) -> bool:
        return self.size > 1 or dist.is_initialized()

    def barrier(self) -> None:
        """Wait until every process has reached this point (a no-op for one process)."""
        if dist.is_initialized():
            if dist.get_backend() == "nccl":
                dist.barrier(device_ids=[self.device.index or 0])
            else:
                dist.barrier()

    def gather(self, obj) -> list:
        """Every process's ``obj``, in rank order, on every process."""
        if not dist.is_initialized():
            return [obj]
        out = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def share(self, items: list) -> list:
        """This process's share of ``items``: every ``size``-th item from index ``rank``,
        so that each item is taken by exactly one process and the shares keep the order."""
        return items[self.rank::self.size]


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another launcher setting its variables) started this process."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def rank_device(local_rank: int, device: str | None) -> torch.device:
    """The device of the process with ``local_rank``: its own GPU (``cuda:LOCAL_RANK``; more
    processes than GPUs share them round-robin), else the CPU, or ``device`` if its type
    is given as ``cpu``."""
    if device and torch.device(device).type == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device(device or "cpu")


def backend(device: torch.device) -> str:
    """``nccl`` when every local process has a GPU of its own, else ``gloo`` (the CPU, and
    several processes sharing one GPU, which NCCL refuses)."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if device.type == "cuda" and local <= torch.cuda.device_count():
        return "nccl"
    return "gloo"


@contextmanager
def world(device: str | None = None) -> Iterator[World]:
    """This process's :class:`World`. Under torchrun: joins the process group (``gloo`` or
    ``nccl``, see :func:`backend`) for the duration of the block, with :data:`TIMEOUT`."""
    if not launched_by_torchrun():
        yield World(device=torch.device(device) if device else None)
        return
    rank, size, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    dev = rank_device(local, device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend(dev), timeout=TIMEOUT)
    try:
        yield World(rank, size, local, dev)
    finally:
        dist.destroy_process_group()
