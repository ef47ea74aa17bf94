"""CIFAR-10 as the paper uses it, read from $ABN_DATA (CI: ../shared/data)."""

import urllib.error

import pytest
import torch

from abn import data
from abn._torchvision import import_torchvision
from abn.data import (CIFAR10_MEAN, CIFAR10_STD, DeviceLoader, channel_stats, denormalize, load_cifar10,
                      load_splits, normalize)


def test_counts_and_first_label():
    x, y = load_cifar10(True)
    tx, ty = load_cifar10(False)
    assert x.shape == (50_000, 3, 32, 32) and x.dtype == torch.uint8
    assert tx.shape == (10_000, 3, 32, 32)
    assert torch.bincount(y).tolist() == [5_000] * 10
    assert torch.bincount(ty).tolist() == [1_000] * 10
    assert y[0].item() == 6 and data.CLASSES[6] == "frog"


def test_true_channel_statistics():
    mean, std = channel_stats(load_cifar10(True)[0])
    torch.testing.assert_close(mean, torch.tensor(CIFAR10_MEAN, dtype=torch.float64), atol=1e-3, rtol=0)
    torch.testing.assert_close(std, torch.tensor(CIFAR10_STD, dtype=torch.float64), atol=1e-3, rtol=0)
    assert (std - torch.tensor(data.OFTEN_COPIED_STD, dtype=torch.float64)).abs().min() > 0.04


def test_splits_are_disjoint_slices():
    s = load_splits(train_subset=1_000, val_size=5_000, test_subset=500)
    x, _ = load_cifar10(True)
    assert len(s.train[0]) == 1_000 and len(s.val[0]) == 5_000 and len(s.test[0]) == 500
    assert torch.equal(s.val[0], x[45_000:]) and torch.equal(s.train[0], x[:1_000])
    with pytest.raises(ValueError, match=r"train_subset must be in \[1, 45000\].*got 46000"):
        load_splits(train_subset=46_000, val_size=5_000)
    with pytest.raises(ValueError, match=r"test_subset must be in \[1, 10000\]"):
        data.check_split_sizes(None, 5_000, 10_001)
    with pytest.raises(ValueError, match="val_size"):
        data.check_split_sizes(None, -1, None)
    data.check_split_sizes(45_000, 5_000, 10_000)  # the whole of both splits is fine


def test_augmentation_shapes_and_reproducibility():
    x, y = load_cifar10(False)
    x, y = x[:300], y[:300]

    def epoch(seed, e):
        loader = DeviceLoader(x, y, batch_size=128, train=True, seed=seed, channels_last=True)
        loader.set_epoch(e)
        return list(loader)

    a, b, c, d = epoch(0, 0), epoch(0, 0), epoch(1, 0), epoch(0, 1)
    assert [len(yb) for _, yb in a] == [128, 128, 44]
    assert all(xb.shape[1:] == (3, 32, 32) and xb.dtype == torch.float32 for xb, _ in a)
    assert a[0][0].is_contiguous(memory_format=torch.channels_last)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    assert not torch.equal(a[0][0], c[0][0]) and not torch.equal(a[0][0], d[0][0])
    # Every image of the epoch is used once: same multiset of labels.
    assert torch.equal(torch.cat([yb for _, yb in a]).sort().values, y.sort().values)


def test_crop_flip_matches_pad_then_slice():
    img = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    offsets = torch.tensor([[0, 8], [3, 5]])
    out = data.crop_flip(img, offsets, torch.tensor([False, True]))
    padded = torch.nn.functional.pad(img, (4, 4, 4, 4))
    assert torch.equal(out[0], padded[0, :, 0:32, 8:40])
    assert torch.equal(out[1], padded[1, :, 3:35, 5:37].flip(-1))


def test_evaluation_loader_is_plain_normalisation():
    x, y = load_cifar10(False)
    xb, yb = next(iter(DeviceLoader(x[:10], y[:10], batch_size=10)))
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(xb, (x[:10].float() / 255 - mean) / std)
    assert torch.equal(xb, normalize(x[:10]))
    assert torch.equal(yb, y[:10])


def test_normalize_and_denormalize_are_inverse():
    x = load_cifar10(False)[0][:50]
    z = normalize(x)
    assert z.dtype == torch.float32 and abs(z.mean().item()) < 0.3
    assert torch.equal(denormalize(z), x) and denormalize(x) is x
    copied = normalize(x, std=data.OFTEN_COPIED_STD)  # other constants, same formula
    torch.testing.assert_close(copied * torch.tensor(data.OFTEN_COPIED_STD).view(1, 3, 1, 1),
                               z * torch.tensor(CIFAR10_STD).view(1, 3, 1, 1))


def test_missing_data_offline_names_abn_data(tmp_path, monkeypatch):
    import_torchvision()  # monkeypatch imports torchvision by name below

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive", offline)
    monkeypatch.setenv("ABN_DATA", str(tmp_path))
    with pytest.raises(data.DataNotFoundError, match="ABN_DATA") as err:
        load_cifar10.__wrapped__(True)
    assert str(tmp_path) in str(err.value)


def _cifar_copy(tmp_path):
    """A copy of the CIFAR-10 folder to damage (links to the good files, so it is cheap)."""
    good = data.data_root() / "cifar-10-batches-py"
    copy = tmp_path / "cifar-10-batches-py"
    copy.mkdir()
    for f in good.iterdir():
        (copy / f.name).symlink_to(f)
    return copy


def test_corrupt_file_is_named_and_not_called_missing(tmp_path):
    copy = _cifar_copy(tmp_path)
    batch = copy / "data_batch_3"
    batch.unlink()
    with open(data.data_root() / "cifar-10-batches-py" / "data_batch_3", "rb") as good:
        batch.write_bytes(good.read(10_000_000))  # an interrupted copy: the first 10 MB
    assert data.damaged_files(tmp_path) == [batch]
    with pytest.raises(data.DataCorruptError) as err:
        load_cifar10.__wrapped__(True, str(tmp_path))
    message = str(err.value)
    assert str(batch) in message and "md5" in message and "corrupt or incomplete" in message
    assert "Delete it" in message and "copy a good" in message
    assert "not in" not in message and "\n" not in message


def test_missing_file_is_not_called_corrupt(tmp_path, monkeypatch):
    import_torchvision()

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive", offline)
    (_cifar_copy(tmp_path) / "data_batch_3").unlink()
    assert data.damaged_files(tmp_path) == []
    with pytest.raises(data.DataNotFoundError, match="is not in"):
        load_cifar10.__wrapped__(True, str(tmp_path))


def test_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("ABN_DATA", str(tmp_path / "cifar-10-batches-py"))
    assert data.data_root() == tmp_path  # the data set folder itself is accepted too
    monkeypatch.delenv("ABN_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert data.data_root() == tmp_path / "abn" / "data"
