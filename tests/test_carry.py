"""``abn.carry``: CIFAR-10 packed for the device tool comes back byte for byte, and the
check names missing and damaged files."""

import os
from pathlib import Path

import pytest

from abn import carry


def test_pack_unpack_restores_every_byte_and_check_names_the_problems(tmp_path):
    src = tmp_path / "data" / carry.BASE
    src.mkdir(parents=True)
    for i, name in enumerate(carry.FILES):  # image-like bytes: rows of slowly varying values
        src.joinpath(name).write_bytes(bytes((j // 7 + i) % 256 for j in range(30_000)))
    rows = carry.pack(tmp_path / "data", tmp_path / "carry", workers=1)
    assert [r[0] for r in rows] == list(carry.FILES) and all(r[2] < r[1] for r in rows)
    assert carry.check(tmp_path / "carry") == [f"missing: {n}" for n in carry.FILES]
    assert sorted(carry.unpack(tmp_path / "carry")) == sorted(carry.FILES)
    assert carry.unpack(tmp_path / "carry") == []  # already there: nothing rewritten
    for name in carry.FILES:
        assert (tmp_path / "carry" / carry.BASE / name).read_bytes() == (src / name).read_bytes()
    problems = carry.check(tmp_path / "carry")  # not CIFAR-10's bytes: every md5 fails
    assert problems == [f"md5 fails: {n}" for n in carry.FILES]


@pytest.mark.skipif(not os.environ.get("ABN_DATA"), reason="needs CIFAR-10 in $ABN_DATA")
def test_check_passes_on_the_real_files():
    root = Path(os.environ["ABN_DATA"]).resolve()
    assert carry.check(root.parent if root.name == carry.BASE else root) == []
