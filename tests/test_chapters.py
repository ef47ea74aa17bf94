"""Every chapter in _toc.yml runs top to bottom in quick mode; committed notebooks are clean.

A chapter that raises fails here with the failing cell shown, faster and more readably
than through the book build. Wall times go to ``_build/chapter_times.json``.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from notebook_runner import REPO, chapter_source, execute_chapter, record_time, toc_chapters


@pytest.mark.parametrize("chapter", toc_chapters(), ids=lambda c: Path(c).name)
def test_chapter_runs_in_quick_mode(chapter: str) -> None:
    """The chapter executes without error in quick mode; its wall time is recorded."""
    _, seconds = execute_chapter(chapter_source(chapter))
    print(f"{chapter}: {seconds:.1f} s")
    record_time(chapter, seconds)


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
