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
import torch

from abn import profiles
from abn.sweep import run_name
from abn.train import TrainConfig
from notebook_runner import (REPO, BackgroundBuild, BookBuild, ChapterRun, chapter_source, record_time,
                             toc_chapters, toc_notebooks)


@pytest.mark.parametrize("chapter", toc_notebooks(), ids=lambda c: Path(c).name)
def test_chapter_runs_in_quick_mode(chapter: str, chapter_run: Callable[[str], ChapterRun]) -> None:
    """The chapter executes without error in quick mode; its wall time is recorded."""
    run = chapter_run(chapter)
    if run.failure:
        pytest.fail(run.failure, pytrace=False)
    print(f"{chapter}: {run.seconds:.1f} s")
    record_time(chapter, run.seconds)


def test_quick_profile_learns_far_above_chance(book_build: BookBuild) -> None:
    """The quick profile's promise (abn/profiles.py: about 47% test accuracy; chance is
    10%), checked on chapter 6's quick run of ResNet-S, seed 0, in this build: at least 45%
    after its epochs, with a falling training loss. (The checkpoint it reads is the one
    chapter 6 wrote in the build's fresh checkpoint folder.)"""
    cfg = TrainConfig.from_profile("quick", model="resnet_s", seed=0)
    path = BackgroundBuild.CHECKPOINTS / f"{run_name(cfg)}.pt"
    assert path.exists() and path.stat().st_mtime >= book_build.started, f"no {path} from this build"
    history = torch.load(path, weights_only=False)["history"]
    print(f"chapter 6, quick ResNet-S: {history[-1]['test_acc']:.2f}% after {len(history)} epochs")
    assert len(history) == profiles.QUICK.epochs
    assert history[-1]["test_acc"] >= 45.0
    assert history[-1]["train_loss"] < history[0]["train_loss"]


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


def _code_lines(cell: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """(line number, line) of the code a cell shows: a code cell's source, or the lines
    inside a Markdown cell's fenced blocks (shell commands, for example)."""
    lines = list(enumerate(cell.source.splitlines(), start=1))
    if cell.cell_type == "code":
        return lines
    code, fenced = [], False
    for number, line in lines:
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif fenced:
            code.append((number, line))
    return code


@pytest.mark.parametrize("path", _committed_notebooks(), ids=lambda p: p.name)
def test_code_lines_fit_the_page(path: Path) -> None:
    """No code line (code cells and Markdown code blocks) is longer than 88 characters,
    so the static page never scrolls sideways: with book/_static/abn.css the theme's code
    column holds 88 characters at its default font size from 1100 px wide up (measured
    at 1100 to 1920 px; tests/test_browser.py checks 1200 px)."""
    notebook = nbformat.read(path, as_version=4)
    long = [
        f"cell {index}, line {number}: {len(line)} characters"
        for index, cell in enumerate(notebook.cells)
        for number, line in _code_lines(cell)
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
