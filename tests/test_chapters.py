"""Every notebook in _toc.yml runs top to bottom in quick mode; committed notebooks are clean.

A full test run executes each chapter once, in the book build; these tests read that
execution (see the ``chapter_run`` fixture) and fail with the chapter, the failing
cell's source and the traceback. Selected on their own
(``pytest tests/test_chapters.py -k 05_``) they execute just the selected chapters.
Wall times go to ``_build/chapter_times.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

from notebook_runner import REPO, ChapterRun, chapter_source, record_time, toc_chapters, toc_notebooks


@pytest.mark.parametrize("chapter", toc_notebooks(), ids=lambda c: Path(c).name)
def test_chapter_runs_in_quick_mode(chapter: str, chapter_run: Callable[[str], ChapterRun]) -> None:
    """The chapter executes without error in quick mode; its wall time is recorded."""
    run = chapter_run(chapter)
    if run.failure:
        pytest.fail(run.failure, pytrace=False)
    print(f"{chapter}: {run.seconds:.1f} s")
    record_time(chapter, run.seconds)


def _committed_notebooks() -> list[Path]:
    """All notebooks under book/, checkpoints excluded."""
    return sorted(p for p in (REPO / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


@pytest.mark.parametrize("path", _committed_notebooks(), ids=lambda p: p.name)
def test_notebook_committed_without_outputs(path: Path) -> None:
    """Notebooks are stored without outputs, execution counts or saved widget state.

    CI executes them; stored outputs would go stale and bloat the repository.
    """
    notebook = nbformat.read(path, as_version=4)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: code cells {dirty} have outputs or execution counts; clear them"
    assert "widgets" not in notebook.metadata, f"{path.name}: saved widget state in metadata; clear it"


MAX_CODE_LINE = 88  # characters; longer lines scroll sideways on the rendered page


@pytest.mark.parametrize("path", _committed_notebooks(), ids=lambda p: p.name)
def test_code_lines_fit_the_page(path: Path) -> None:
    """No code line is longer than 88 characters, so the static page never scrolls
    sideways (the width of the book theme's code blocks at its default font size)."""
    notebook = nbformat.read(path, as_version=4)
    long = [
        f"cell {index}, line {number}: {len(line)} characters"
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
        for number, line in enumerate(cell.source.splitlines(), start=1)
        if len(line) > MAX_CODE_LINE
    ]
    assert not long, f"{path.name}: code lines over {MAX_CODE_LINE} characters:\n" + "\n".join(long)


def test_welcome_links_every_page() -> None:
    """Chapter 0 links every page of the book and promises nothing as "(coming)"."""
    root, *pages = toc_chapters()
    notebook = nbformat.read(chapter_source(root), as_version=4)
    text = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    assert "(coming)" not in text, "chapter 0 still announces a chapter as coming"
    unlinked = [page for page in pages if f"]({chapter_source(page).name})" not in text]
    assert not unlinked, f"chapter 0 does not link to {unlinked}"
