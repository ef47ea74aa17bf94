"""Import torchvision safely on CPU-only torch.

torchvision 0.28.0 is the only release that accepts torch 2.13.0, and its wheel ships a
CUDA build of ``_C.so``. On CPU torch that library cannot load, and
``torchvision/_meta_registrations.py`` then registers fake kernels for ``nms``/``qnms``,
ops that were never defined, so ``import torchvision`` raises
``RuntimeError: operator torchvision::nms does not exist`` (pytorch/vision#9085).

The fix, applied once before the first import: try to load ``_C.so`` ourselves; if that
fails, define the two schemas the meta registrations need. Where ``_C.so`` loads (Colab,
CUDA torch) nothing is defined and torchvision imports as usual. Datasets, transforms,
``utils.make_grid`` and the model zoo work either way; ``torchvision.ops`` kernels and
``torchvision.io`` decoding stay unavailable on CPU torch (this project needs neither).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch

# The schemas torchvision's meta registrations look up (copied from torchvision/csrc).
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_fragment: torch.library.Library | None = None  # kept alive: dropping it drops the ops


def _extension_path() -> Path | None:
    """Where torchvision's compiled extension lives, without importing torchvision."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("_C*.so")) + sorted(folder.glob("_C*.pyd"))
    return found[0] if found else None


def prepare() -> str:
    """Make ``import torchvision`` work; return which branch was taken.

    Returns ``"imported"`` if torchvision is already imported, ``"native"`` when its
    extension loads (nothing patched), ``"schemas"`` when the schemas had to be defined.
    """
    global _fragment
    if "torchvision" in sys.modules or _fragment is not None:
        return "imported" if _fragment is None else "schemas"
    path = _extension_path()
    if path is not None:
        try:
            torch.ops.load_library(str(path))
            return "native"
        except (OSError, RuntimeError):
            pass
    _fragment = torch.library.Library("torchvision", "FRAGMENT")
    for schema in _SCHEMAS:
        _fragment.define(schema)
    return "schemas"


def import_torchvision() -> ModuleType:
    """``import torchvision`` after :func:`prepare`; use this instead of a bare import."""
    prepare()
    import torchvision

    return torchvision
