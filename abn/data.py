"""CIFAR-10 as uint8 tensors, and a loader that keeps the data and the augmentation on the device.

Loading goes through ``torchvision.datasets.CIFAR10`` (which checks the md5 sums) from the
folder in ``$ABN_DATA`` (default ``~/.cache/abn/data``), downloading there when online. A
file that is there but fails the md5 check is reported as corrupt, not as missing.

The authors' loop (their ``main.py``) converts every image from its stored pixel array
into a PIL image (CIFAR-10 is stored as raw arrays: nothing is decoded), then crops and
flips it, in DataLoader worker processes, one image at a time; on a modern GPU that, not
the model, sets the pace. Here each split is held once as a uint8 tensor on the training
device and a whole batch is cropped and flipped with two index gathers (the same
operation torchvision's RandomCrop(32, 4) and RandomHorizontalFlip perform per image).
The random numbers come from a CPU generator seeded by (seed, epoch), so a seed fixes the
data order and every augmentation, on any device and for any model: the two models of a
paired run see identical batches.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from abn._torchvision import import_torchvision

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# Per-channel mean and std of the 50,000 training images (pixels / 255), measured in
# tests/test_data.py. The std (0.2023, 0.1994, 0.2010) copied through many CIFAR
# repositories is not the data set's std (it is close to the mean of per-image stds).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
OFTEN_COPIED_STD = (0.2023, 0.1994, 0.2010)
PAD = 4  # zero padding of the random crop, in pixels
TRAIN_IMAGES, TEST_IMAGES = 50_000, 10_000  # CIFAR-10's two splits


class DataNotFoundError(FileNotFoundError):
    """CIFAR-10 is neither on disk nor downloadable."""


class DataCorruptError(RuntimeError):
    """A CIFAR-10 file is on disk but fails torchvision's md5 check."""


def data_root() -> Path:
    """``$ABN_DATA``, else ``$XDG_CACHE_HOME/abn/data`` (``~/.cache/abn/data``)."""
    if env := os.environ.get("ABN_DATA"):
        root = Path(env).expanduser()
        # Accept the data set folder itself as well as the folder that holds it.
        return root.parent if root.name == "cifar-10-batches-py" else root
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "abn" / "data"


@functools.lru_cache(maxsize=4)
def load_cifar10(train: bool = True, root: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N x 3 x 32 x 32, uint8) and labels (N, int64) of one split, from CPU memory.

    Cached: repeated calls return the same tensors, so treat them as read-only.
    """
    folder = Path(root) if root else data_root()
    datasets = import_torchvision().datasets
    try:
        ds = datasets.CIFAR10(str(folder), train=train, download=False)
    except RuntimeError:  # torchvision: "Dataset not found or corrupted."
        if damaged := damaged_files(folder):
            names = ", ".join(str(path) for path in damaged)
            raise DataCorruptError(
                f"{names} fail{'s' if len(damaged) == 1 else ''} torchvision's md5 check: corrupt "
                "or incomplete (an interrupted copy or download?). Delete "
                f"{'it' if len(damaged) == 1 else 'them'} and run again to download CIFAR-10 "
                "afresh, or copy a good cifar-10-batches-py folder over it.") from None
        try:
            ds = datasets.CIFAR10(str(folder), train=train, download=True)
        except Exception as err:  # offline: URLError/OSError; anything else is as fatal
            raise DataNotFoundError(
                f"CIFAR-10 is not in {folder / 'cifar-10-batches-py'} and could not be "
                f"downloaded ({type(err).__name__}: {err}). Set ABN_DATA to a folder that "
                "holds cifar-10-batches-py (for example `export ABN_DATA=../shared/data`), "
                "or run once with network access so torchvision can download it there."
            ) from err
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(ds.targets, dtype=torch.int64)


def damaged_files(folder: str | Path) -> list[Path]:
    """The CIFAR-10 files in ``folder/cifar-10-batches-py`` that exist but fail the md5 sums
    torchvision's ``CIFAR10`` lists for them (missing files are not damaged, just absent)."""
    tv = import_torchvision()
    cifar = tv.datasets.CIFAR10
    base = Path(folder) / cifar.base_folder
    expected = [*cifar.train_list, *cifar.test_list, [cifar.meta["filename"], cifar.meta["md5"]]]
    return [base / name for name, md5 in expected
            if (base / name).exists() and not tv.datasets.utils.check_integrity(base / name, md5)]


@functools.lru_cache(maxsize=8)
def _pixel_scale(mean: tuple[float, ...], std: tuple[float, ...],
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean`` and ``std`` on the 0-255 pixel scale, 1 x C x 1 x 1 on ``device``; made
    once per device, so that normalising a batch on a GPU copies nothing from the host."""
    with torch.inference_mode(False), torch.no_grad():  # usable inside and outside both
        scale = [torch.tensor(v, device=device).view(1, -1, 1, 1) * 255 for v in (mean, std)]
    return scale[0], scale[1]


def normalize(images: torch.Tensor, mean: tuple[float, ...] = CIFAR10_MEAN,
              std: tuple[float, ...] = CIFAR10_STD) -> torch.Tensor:
    """uint8 images (N x C x H x W) -> float32 ``(x / 255 - mean) / std`` per channel: the
    input the networks are trained on (by default with CIFAR-10's true mean and std)."""
    m, s = _pixel_scale(tuple(mean), tuple(std), images.device)
    return (images.float() - m) / s


def denormalize(x: torch.Tensor, mean: tuple[float, ...] = CIFAR10_MEAN,
                std: tuple[float, ...] = CIFAR10_STD) -> torch.Tensor:
    """Undo :func:`normalize` for display: uint8 pixels, rounded and clipped to 0-255.
    uint8 input is returned as it is."""
    if x.dtype == torch.uint8:
        return x
    m, s = _pixel_scale(tuple(mean), tuple(std), x.device)
    return (x.float() * s + m).round().clamp(0, 255).to(torch.uint8)


def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images, on the [0, 1] scale (float64)."""
    x = images.to(torch.float64).div_(255).transpose(0, 1).reshape(3, -1)
    return x.mean(dim=1), x.std(dim=1)


@dataclass
class Cifar10:
    """The three splits: train, validation (held out from train) and test."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]


def synthetic_cifar10(n_train: int, n_val: int, n_test: int, seed: int = 0) -> Cifar10:
    """Random uint8 images (N x 3 x 32 x 32) and labels in CIFAR-10's shapes and types:
    what ``python -m abn.campaign --smoke`` trains on to test the whole path on a machine
    that has no copy of CIFAR-10 yet. Nothing can be learned from them, by design."""
    g = torch.Generator().manual_seed(seed)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
        return images, torch.randint(0, len(CLASSES), (n,), generator=g)

    return Cifar10(train=split(n_train), val=split(n_val), test=split(n_test))


def load_splits(train_subset: int | None = None, val_size: int = 5_000,
                test_subset: int | None = None, root: str | None = None) -> Cifar10:
    """Training images minus the last ``val_size`` (the validation split), the first
    ``train_subset`` of those, and the first ``test_subset`` test images."""
    x, y = load_cifar10(True, root)
    tx, ty = load_cifar10(False, root)
    check_split_sizes(train_subset, val_size, test_subset, len(x), len(tx))
    n_train = len(x) - val_size if train_subset is None else train_subset
    n_test = len(tx) if test_subset is None else test_subset
    return Cifar10(train=(x[:n_train], y[:n_train]), val=(x[len(x) - val_size:], y[len(y) - val_size:]),
                   test=(tx[:n_test], ty[:n_test]))


def check_split_sizes(train_subset: int | None, val_size: int, test_subset: int | None,
                      n_train: int = TRAIN_IMAGES, n_test: int = TEST_IMAGES) -> None:
    """Raise ValueError, naming the size and its allowed range, unless the validation
    split, the training subset (taken from what validation leaves) and the test subset
    fit the ``n_train`` training and ``n_test`` test images (None: the whole split)."""
    if not 0 <= val_size < n_train:
        raise ValueError(f"val_size must be in [0, {n_train - 1}] ({n_train:,} training images), "
                         f"got {val_size}.")
    if train_subset is not None and not 0 < train_subset <= n_train - val_size:
        raise ValueError(f"train_subset must be in [1, {n_train - val_size}] ({n_train - val_size:,} "
                         f"training images are left after val_size={val_size}), got {train_subset}.")
    if test_subset is not None and not 0 < test_subset <= n_test:
        raise ValueError(f"test_subset must be in [1, {n_test}] ({n_test:,} test images), "
                         f"got {test_subset}.")


def crop_flip(images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Random crop (zero padding ``PAD``) and horizontal flip of a batch, in one gather.

    ``offsets`` (B x 2, values 0..2*PAD) are the crop's top-left corner in the padded
    image; ``flips`` (B, bool) mirrors an image. Returns B x C x H x W in channels-last
    layout (the gather produces it for free).
    """
    b, _, h, w = images.shape
    padded = F.pad(images, (PAD, PAD, PAD, PAD))
    ar_h = torch.arange(h, device=images.device)
    ar_w = torch.arange(w, device=images.device)
    rows = offsets[:, 0, None] + ar_h  # B x H
    cols = offsets[:, 1, None] + torch.where(flips[:, None], w - 1 - ar_w, ar_w)  # B x W
    batch = torch.arange(b, device=images.device)[:, None, None]
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator for one epoch: order and augmentation depend on (seed, epoch) only."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


class DeviceLoader:
    """Batches of normalised images from a split held as uint8 on ``device``.

    Training loaders shuffle and augment (crop + flip) with randomness fixed by
    (seed, epoch); call :meth:`set_epoch` before each epoch. Evaluation loaders do neither.
    Yields ``(images, labels)``: float32 images, normalised by :func:`normalize` with
    ``mean`` and ``std`` (CIFAR-10's own by default; the paper protocol passes the
    often-copied std).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 128,
                 train: bool = False, seed: int = 0, device: str | torch.device = "cpu",
                 channels_last: bool = False, mean: tuple[float, ...] = CIFAR10_MEAN,
                 std: tuple[float, ...] = CIFAR10_STD) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"DeviceLoader wants uint8 images N x C x H x W, got "
                             f"{images.dtype} {tuple(images.shape)}.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}.")
        self.device = torch.device(device)
        self.images, self.labels = images.to(self.device), labels.to(self.device)
        self.batch_size, self.train, self.seed, self.epoch = batch_size, train, seed, 0
        self.channels_last, self.mean, self.std = channels_last, tuple(mean), tuple(std)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.images) // self.batch_size)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images on the device -> float32 through :func:`normalize`, in the loader's memory format."""
        x = normalize(images, self.mean, self.std)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.contiguous(memory_format=fmt)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.images)
        if self.train:
            g = epoch_generator(self.seed, self.epoch)
            order = torch.randperm(n, generator=g).to(self.device)
            offsets = torch.randint(0, 2 * PAD + 1, (n, 2), generator=g).to(self.device)
            flips = (torch.rand(n, generator=g) < 0.5).to(self.device)
        for start in range(0, n, self.batch_size):
            if self.train:
                idx = order[start:start + self.batch_size]
                x = crop_flip(self.images[idx], offsets[start:start + len(idx)], flips[start:start + len(idx)])
                yield self.normalize(x), self.labels[idx]
            else:
                sl = slice(start, start + self.batch_size)
                yield self.normalize(self.images[sl]), self.labels[sl]
