"""One switch for how big every run in the book is: ``ABN_PROFILE`` = quick | full | auto.

``full`` is the authors' recipe at full width on all of CIFAR-10 (meant for a GPU).
``quick`` trains an eighth-width net (8/16/32 channels) for 5 epochs on 10,000 images,
so that a training run takes about a minute on two CPU cores (~47% test accuracy); every figure made in quick mode says so.
``auto`` (the default) is full on CUDA, quick otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

PROFILES = ("quick", "full", "auto")


@dataclass(frozen=True)
class Profile:
    """The sizes a profile implies; any of them can be overridden per run."""

    name: str
    width: float  # width multiplier of the ResNet
    epochs: int
    train_subset: int | None  # first N training images (None: all that are not validation)
    val_size: int  # the last N training images, held out for model choices
    test_subset: int | None  # first N test images (None: all 10,000)
    batch_size: int = 128

    @property
    def label(self) -> str:
        """A caption fragment that says which mode produced a number."""
        if self.name == "full":
            return "full mode (the authors' recipe, all of CIFAR-10)"
        return (f"quick mode (width {self.width:g}, {self.train_subset:,} training images, "
                f"{self.epochs} epochs; not comparable to the paper)")


QUICK = Profile("quick", width=0.125, epochs=5, train_subset=10_000, val_size=1_000,
                test_subset=2_000)
FULL = Profile("full", width=1.0, epochs=15, train_subset=None, val_size=5_000,
               test_subset=None)


def resolve(name: str | None = None) -> Profile:
    """The profile named, else ``$ABN_PROFILE``, else ``auto`` (full on CUDA, quick on CPU)."""
    name = (name or os.environ.get("ABN_PROFILE") or "auto").strip().lower()
    if name not in PROFILES:
        raise ValueError(f"ABN_PROFILE must be one of {PROFILES}, got {name!r}.")
    if name == "auto":
        name = "full" if torch.cuda.is_available() else "quick"
    return QUICK if name == "quick" else FULL
