"""The book's repository URL: set once in ``_config.yml``, copied where readers need it.

``repository.url`` in ``_config.yml`` is the one setting. The launch buttons and the
repository button read it at build time. Two kinds of places cannot read it and carry a
copy: each notebook's first cell (a Colab reader opens the notebook alone, with no
``_config.yml`` beside it, and its ``%pip install git+<url>`` must be plain to read) and
the README. ``tests/test_repository_url.py`` checks every copy against the setting;

    .venv/bin/python tests/repository_url.py

rewrites the copies to the setting (after changing it to publish under another name).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "_config.yml"
README = REPO / "README.md"
# `pip install git+<url>` in the README and in the notebooks' install cells.
_GIT_URL = re.compile(r"(?<=git\+)(https?://[^\s`'\"]+)")


def config_url(config: Path = CONFIG) -> str:
    """``repository.url`` from ``_config.yml``, without a trailing slash."""
    return yaml.safe_load(config.read_text(encoding="utf-8"))["repository"]["url"].rstrip("/")


def notebooks() -> list[Path]:
    """Every notebook of the book (book/*.ipynb)."""
    return sorted((REPO / "book").glob("*.ipynb"))


def install_cell(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    """The notebook's first code cell if it installs ``abn`` from git, else None."""
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    return code[0] if code and _GIT_URL.search(code[0].source) else None


def copies() -> dict[str, list[str]]:
    """``{place: [urls found there]}`` for every notebook and the README.

    A notebook without an install cell maps to ``[]``, which the test reports.
    """
    found = {}
    for path in notebooks():
        cell = install_cell(nbformat.read(path, as_version=4))
        found[str(path.relative_to(REPO))] = _GIT_URL.findall(cell.source) if cell else []
    found["README.md"] = _GIT_URL.findall(README.read_text(encoding="utf-8"))
    return found


def write_url(url: str) -> list[str]:
    """Replace every copy with ``url``; return the places that changed."""
    changed = []
    for path in notebooks():
        notebook = nbformat.read(path, as_version=4)
        cell = install_cell(notebook)
        if cell is not None and _GIT_URL.sub(url, cell.source) != cell.source:
            cell.source = _GIT_URL.sub(url, cell.source)
            nbformat.write(notebook, path)
            changed.append(str(path.relative_to(REPO)))
    text = README.read_text(encoding="utf-8")
    if _GIT_URL.sub(url, text) != text:
        README.write_text(_GIT_URL.sub(url, text), encoding="utf-8")
        changed.append("README.md")
    return changed


if __name__ == "__main__":
    url = config_url()
    changed = write_url(url)
    print(f"repository URL {url}: " + (f"updated {', '.join(changed)}" if changed else "every copy agrees"))
    sys.exit(0)
