"""Shared fixtures: the book, built once per test session and reused by every test; randomize.

The build is also where the chapters are executed: ``chapter_run`` hands each chapter
test what the build's execution left, so a full test run executes every chapter once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from notebook_runner import (
    BUILD,
    CHAPTER_ENV,
    HTML,
    REPO,
    BookBuild,
    ChapterRun,
    chapter_from_build,
    chapter_source,
    execute_chapter,
    read_execution_report,
    record_time,
    strip_ansi,
)

# The book's own Sphinx extensions (book/_ext), which some tests import (api_pages).
sys.path.insert(0, str(REPO / "book" / "_ext"))



@pytest.fixture(scope="session")
def book_build() -> BookBuild:
    """Build the whole book from scratch in quick mode, with warnings as errors.

    ``--all`` re-reads (and so re-executes) every chapter even if its source is unchanged;
    without it Sphinx would reuse pages from an earlier build, possibly in another mode.
    A chapter that raises is a warning, so the build still renders every other page and
    then exits non-zero. The log is kept in ``_build/book_build.log``.
    """
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    command = [str(jupyter_book), "build", str(REPO), "--all", "-W", "--keep-going"]
    started = time.time()
    start = time.perf_counter()
    result = subprocess.run(
        command, cwd=REPO, env={**os.environ, **CHAPTER_ENV}, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    log = strip_ansi(result.stdout + result.stderr)
    BUILD.mkdir(exist_ok=True)
    (BUILD / "book_build.log").write_text(log, encoding="utf-8")
    execution = read_execution_report()
    executing = sum(float(r.get("runtime") or 0.0) for r in execution.values())
    record_time("jupyter-book build", seconds)
    record_time("jupyter-book build: executing chapters", executing)
    print(f"\njupyter-book build: {seconds:.1f} s (executing chapters {executing:.1f} s), "
          f"exit {result.returncode}")
    return BookBuild(result.returncode, log, seconds, HTML, started, execution)


@pytest.fixture(scope="session")
def built_html(book_build: BookBuild) -> Path:
    """The built HTML folder; fails the dependent test if the build did not succeed."""
    if book_build.returncode != 0:
        pytest.fail(f"jupyter-book build failed (exit {book_build.returncode}); see _build/book_build.log")
    return book_build.html


@pytest.fixture
def randomize():
    """``randomize(module, seed=0)``: random normal values in every parameter of ``module``
    (returned). Bias banks start at zero and would hide terms of a formula under test."""

    def fill(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in module.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
        return module

    return fill
@pytest.fixture(scope="session")
def chapter_run(request: pytest.FixtureRequest) -> Callable[[str], ChapterRun]:
    """How a chapter test gets its executed chapter.

    When this session builds the book anyway (any selected test uses ``book_build``, as
    in a full run), the chapter is read from that build: one execution per chapter. When
    only chapter tests are selected, each selected chapter is executed on its own, so
    checking one chapter does not cost a whole book build.
    """
    if any("book_build" in item.fixturenames for item in request.session.items):
        build: BookBuild = request.getfixturevalue("book_build")
        return lambda chapter: chapter_from_build(chapter, build)
    return lambda chapter: execute_chapter(chapter_source(chapter))
