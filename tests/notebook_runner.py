"""Helpers shared by the book tests: where the chapters are, how to run one, timings.

Chapters are executed the way the book build executes them: in a fresh kernel that
inherits this process's environment (so ``ABN_PROFILE`` and ``PLOTLY_RENDERER`` reach the
notebook), with the chapter's folder (``book/``) as the working directory.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "_build"
HTML = BUILD / "html"
TIMINGS = BUILD / "chapter_times.json"

# The environment every chapter runs under in the tests and in the book build.
CHAPTER_ENV = {"ABN_PROFILE": "quick", "PLOTLY_RENDERER": "notebook"}
_SOURCE_SUFFIXES = (".ipynb", ".md")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class BookBuild:
    """Outcome of one ``jupyter-book build`` (see the ``book_build`` fixture in conftest.py)."""

    returncode: int
    log: str
    seconds: float
    html: Path


def toc_chapters(toc: Path = REPO / "_toc.yml") -> list[str]:
    """Return the chapter paths (relative to the repo, without suffix) listed in the toc.

    Walks ``root``, ``chapters``, ``parts`` and nested ``sections`` in order, so a chapter
    added to ``_toc.yml`` is picked up by the tests without editing them.
    """
    data = yaml.safe_load(toc.read_text(encoding="utf-8"))
    found: list[str] = [data["root"]]

    def walk(entries: list[dict] | None) -> None:
        for entry in entries or []:
            if "file" in entry:
                found.append(entry["file"])
            walk(entry.get("chapters"))
            walk(entry.get("sections"))

    walk(data.get("parts"))
    walk(data.get("chapters"))
    walk(data.get("sections"))
    return [str(Path(f).with_suffix("")) if Path(f).suffix in _SOURCE_SUFFIXES else f for f in found]


def chapter_source(chapter: str) -> Path:
    """Return the source file (``.ipynb`` or ``.md``) of a toc entry such as ``book/00_welcome``."""
    for suffix in _SOURCE_SUFFIXES:
        path = REPO / f"{chapter}{suffix}"
        if path.exists():
            return path
    raise FileNotFoundError(f"_toc.yml lists {chapter!r} but no {chapter}.ipynb or .md exists")


def chapter_title(source: Path) -> str:
    """Return the text of the chapter's first level-1 Markdown heading."""
    notebook = jupytext.read(source)
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    raise AssertionError(f"{source.name} has no '# Title' heading in a Markdown cell")


@contextmanager
def chapter_environment(**extra: str) -> Iterator[None]:
    """Set ``CHAPTER_ENV`` (plus ``extra``) in ``os.environ``; restore it afterwards."""
    wanted = {**CHAPTER_ENV, **extra}
    saved = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _failure_message(path: Path, notebook: nbformat.NotebookNode, error: Exception) -> str:
    """Describe a failed run: which cell, its source, and the error without ANSI colours."""
    failing = [
        (index, cell)
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and any(out.get("output_type") == "error" for out in cell.get("outputs", []))
    ]
    if failing:
        index, cell = failing[0]
        error_output = next(out for out in cell.outputs if out.output_type == "error")
        details = "\n".join(error_output.get("traceback", [])) or f"{error_output.ename}: {error_output.evalue}"
        header = f"{path.name}: code cell {index} raised {error_output.ename}"
        return f"{header}\n--- cell source ---\n{cell.source}\n--- error ---\n{_ANSI.sub('', details)}"
    return f"{path.name}: execution failed: {_ANSI.sub('', str(error))}"


def execute_chapter(path: Path, timeout: int = 900) -> tuple[nbformat.NotebookNode, float]:
    """Execute the chapter at ``path`` in quick mode; return the executed notebook and seconds.

    ``timeout`` is per cell, as in the book build. A failing cell, a timeout or a dead
    kernel becomes ``pytest.fail`` with the failing cell's source and the error.
    """
    notebook = jupytext.read(path)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},  # cwd of the kernel
    )
    failure = None
    start = time.perf_counter()
    with chapter_environment():
        try:
            client.execute()
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
            failure = _failure_message(path, notebook, error)
    if failure:  # failed outside the except block, so the report is not a chained traceback
        pytest.fail(failure, pytrace=False)
    return notebook, time.perf_counter() - start


def record_time(name: str, seconds: float, path: Path = TIMINGS) -> None:
    """Merge ``{name: seconds}`` into the JSON timing file (created if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    times = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    times[name] = round(seconds, 2)
    path.write_text(json.dumps(times, indent=2, sort_keys=True) + "\n", encoding="utf-8")
