"""Appendix A documents every public module, function and class of ``abn``, so each has
a docstring. "Public" is decided where the appendix pages are made
(``book/_ext/api_pages.py``), so the test and the appendix cannot disagree about it.
"""

from __future__ import annotations

import importlib

import pytest
from api_pages import module_page, public_members, public_modules

MODULES = public_modules()


def _missing_docstring(obj: object) -> bool:
    """True when ``obj`` has no docstring of its own.

    Dataclasses and named tuples without one get a generated ``Name(field, ...)``
    signature as ``__doc__``; that is not documentation, so it counts as missing.
    """
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return not doc or doc.startswith(f"{getattr(obj, '__name__', '')}(")


@pytest.mark.parametrize("name", MODULES)
def test_public_api_has_docstrings(name: str) -> None:
    """The module and every public function and class in it have a docstring."""
    module = importlib.import_module(name)
    assert not _missing_docstring(module), f"{name} has no module docstring"
    missing = [member for member, obj in public_members(module) if _missing_docstring(obj)]
    assert not missing, f"{name}: public functions/classes without a docstring: {missing}"


def test_every_public_module_gets_a_page() -> None:
    """The appendix covers the whole package: each module's page documents its members."""
    assert {"abn", "abn.layers", "abn.models"} <= set(MODULES)
    assert not [m for m in MODULES if any(part.startswith("_") for part in m.split("."))]
    page = module_page("abn.layers")
    assert page.startswith("# `abn.layers`")
    assert ".. autoclass:: DynamicMultiBiasLinear" in page


def test_missing_docstring_is_caught() -> None:
    """The check itself fails on undocumented functions, classes and dataclasses."""
    from dataclasses import dataclass

    def undocumented() -> None:
        pass

    @dataclass
    class Plain:
        x: int

    def documented() -> None:
        """Says what it does."""

    assert _missing_docstring(undocumented) and _missing_docstring(Plain)
    assert not _missing_docstring(documented)
