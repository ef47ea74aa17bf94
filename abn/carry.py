"""Carry CIFAR-10 to a GPU machine in fewer bytes: xz with a delta filter, md5-exact.

The device tool sends at most 64 MiB per call, the working tree included (about 8 MB),
and CIFAR-10's python files are 31 MB each: two raw files and the tree do not fit one
call. xz's delta filter (each byte minus the one 32 bytes earlier: the pixel above,
since CIFAR-10 stores each image as three 32 x 32 planes) before LZMA2 shrinks the files
to 68.8% of their size (gzip -9: 91%, plain xz -9: 75%; measured in docs/gpu_session.md),
so two batches travel in 42.7 MB. Decompression restores every byte, and
:func:`check` verifies torchvision's md5 sums. The three commands::

    python -m abn.carry pack "$ABN_DATA" .carry      # here: .carry/<file>.xz
    python -m abn.carry unpack .carry                # there: .carry/cifar-10-batches-py/
    python -m abn.carry check .carry                 # there: all present, md5 ok
"""

from __future__ import annotations

import argparse
import lzma
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from abn.data import damaged_files

BASE = "cifar-10-batches-py"
FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")
FILTERS = [{"id": lzma.FILTER_DELTA, "dist": 32}, {"id": lzma.FILTER_LZMA2, "preset": 6}]


def _pack_one(src: Path, dest: Path) -> tuple[str, int, int]:
    data = src.read_bytes()
    packed = lzma.compress(data, format=lzma.FORMAT_XZ, filters=FILTERS)
    tmp = dest.with_suffix(".tmp")
    tmp.write_bytes(packed)
    tmp.replace(dest)
    return src.name, len(data), len(packed)


def pack(root: str | Path, dest: str | Path, workers: int = 2) -> list[tuple[str, int, int]]:
    """Compress CIFAR-10's files from ``root`` (the folder holding ``cifar-10-batches-py``,
    or that folder) into ``dest/<file>.xz``; returns (name, bytes, packed bytes) each."""
    root, dest = Path(root), Path(dest)
    folder = root if root.name == BASE else root / BASE
    dest.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(_pack_one, [folder / n for n in FILES],
                             [dest / f"{n}.xz" for n in FILES]))


def unpack(dest: str | Path) -> list[str]:
    """Decompress every ``dest/<file>.xz`` into ``dest/cifar-10-batches-py/<file>``
    (skipping files already there); returns the names written."""
    dest = Path(dest)
    (dest / BASE).mkdir(parents=True, exist_ok=True)
    written = []
    for packed in sorted(dest.glob("*.xz")):
        out = dest / BASE / packed.stem
        if not out.exists():
            tmp = out.with_suffix(".tmp")
            tmp.write_bytes(lzma.decompress(packed.read_bytes()))
            tmp.replace(out)
            written.append(out.name)
    return written


def check(dest: str | Path) -> list[str]:
    """Problems with CIFAR-10 in ``dest`` (missing files, md5 failures); empty if none."""
    folder = Path(dest) / BASE
    missing = [f"missing: {n}" for n in FILES if not (folder / n).exists()]
    return missing + [f"md5 fails: {p.name}" for p in damaged_files(dest)]


def main(argv: list[str] | None = None) -> None:
    """``python -m abn.carry pack|unpack|check``."""
    p = argparse.ArgumentParser(prog="python -m abn.carry", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="verb", required=True)
    pk = sub.add_parser("pack", help="compress CIFAR-10's files into DEST/<file>.xz")
    pk.add_argument("root", help="folder holding cifar-10-batches-py (e.g. $ABN_DATA)")
    pk.add_argument("dest")
    for verb in ("unpack", "check"):
        sub.add_parser(verb).add_argument("dest")
    args = p.parse_args(argv)
    if args.verb == "pack":
        if not (Path(args.root) / BASE).is_dir() and Path(args.root).name != BASE:
            p.error(f"{args.root} holds no {BASE} folder; pass the folder ABN_DATA names.")
        rows = pack(args.root, args.dest)
        for name, raw, packed in rows:
            print(f"{name:<14}{raw:>12,}{packed:>12,}  {100 * packed / raw:5.1f}%")
        raw, packed = (sum(r[i] for r in rows) for i in (1, 2))
        print(f"{'total':<14}{raw:>12,}{packed:>12,}  {100 * packed / raw:5.1f}%")
    elif args.verb == "unpack":
        print(f"unpacked: {', '.join(unpack(args.dest)) or 'nothing new'}")
    else:
        problems = check(args.dest)
        print("CIFAR-10: all files present, md5 ok" if not problems else "\n".join(problems))
        sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
