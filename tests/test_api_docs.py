"""Appendix A documents every public module, function and class of ``abn``, so each has
a docstring. "Public" is decided where the appendix pages are made
(``book/_ext/api_pages.py``), so the test and the appendix cannot disagree about it.
"""

from __future__ import annotations

import importlib
import inspect
import re

import pytest
from api_pages import module_page, public_members, public_modules
from docutils import nodes
from docutils.core import publish_doctree

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


def _docstrings() -> list[tuple[str, str]]:
    """(where, docstring) of every module, public member and public method the
    appendix documents."""
    found = []
    for name in MODULES:
        module = importlib.import_module(name)
        found.append((name, inspect.getdoc(module) or ""))
        for member, obj in public_members(module):
            found.append((f"{name}.{member}", inspect.getdoc(obj) or ""))
            if inspect.isclass(obj):
                found += [(f"{name}.{member}.{attr}", inspect.getdoc(value) or "")
                          for attr, value in vars(obj).items()
                          if not attr.startswith("_") and callable(value)]
    return found


_COMMAND = re.compile(r"python -m \S|torchrun --|(?<![\w-])--[a-z]")


def prose_examples(docstring: str) -> list[str]:
    """Examples in ``docstring`` that the API pages would typeset as prose: indented
    blocks that reStructuredText reads as a quotation (no ``::`` before them), and
    command lines in running text. Sphinx's smart quotes turn ``--model`` into an en
    dash and ``"full"`` into curly quotes there, so a reader cannot paste them; in a
    literal block (``::``) they stay as typed."""
    tree = publish_doctree(docstring, settings_overrides={"report_level": 5, "halt_level": 5})
    found = [quote.astext() for quote in tree.findall(nodes.block_quote)
             if any(isinstance(child, nodes.paragraph) for child in quote.findall())]
    found += [p.astext() for p in tree.findall(nodes.paragraph)
              if any(_COMMAND.search(text) for text in p.findall(nodes.Text)
                     if not isinstance(text.parent, nodes.literal))]
    return found


def test_examples_are_literal_blocks() -> None:
    """Every command or code example in a docstring is a literal block, so the API pages
    show ``--model`` and straight quotes as typed (the built pages are checked in
    test_book.py)."""
    bad = {where: examples for where, doc in _docstrings() if (examples := prose_examples(doc))}
    hint = "end the paragraph before the example with '::' (or put the command in ``...``)"
    assert not bad, f"examples typeset as prose: {bad}; {hint}"


def test_prose_examples_are_caught() -> None:
    """The check finds an indented example without ``::`` and a command in running text,
    and accepts the same example as a literal block."""
    quoted = "Train one model.\n\n    python -m abn.train --model resnet_dmb\n"
    inline = "Run python -m abn.bench --model resnet_s to time it."
    literal = "Train one model::\n\n    python -m abn.train --model resnet_dmb\n"
    code = 'Load it.\n\n    model, prov = load_trained("results/x.pt")\n'
    assert prose_examples(quoted) and prose_examples(inline) and prose_examples(code)
    assert not prose_examples(literal)
    assert not prose_examples("Uses ``python -m abn.train --out``; see :func:`train`.")
