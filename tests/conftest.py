"""Shared fixtures: the book, built once per test session and reused by every test; randomize.

The build is also where the chapters are executed: ``chapter_run`` hands each chapter
test what the build's execution left, so a full test run executes every chapter once.
It runs in the background from the end of collection, while every test that does not
need it runs; the tests that do come last.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from notebook_runner import (
    REPO,
    BackgroundBuild,
    BookBuild,
    ChapterRun,
    chapter_from_build,
    chapter_source,
    execute_chapter,
)

# The book's own Sphinx extensions (book/_ext), which some tests import (api_pages).
sys.path.insert(0, str(REPO / "book" / "_ext"))

# A relative ABN_DATA (the README's ../shared/data) means relative to where pytest was
# started, but the chapters run in book/: hand them, and every test, the absolute path.
if os.environ.get("ABN_DATA"):
    os.environ["ABN_DATA"] = os.path.abspath(os.environ["ABN_DATA"])

BUILD_IN_BACKGROUND = BackgroundBuild()


def _reads_the_build(item: pytest.Item) -> bool:
    """True for tests that need the book build (chapter tests read its execution)."""
    return bool({"book_build", "built_html", "chapter_run"} & set(getattr(item, "fixturenames", ())))


def builds_the_book(items: list[pytest.Item]) -> bool:
    """True when this session builds the book anyway (a selected test uses ``book_build``,
    as in a full run); chapter tests then read the build instead of running chapters."""
    return any("book_build" in item.fixturenames for item in items)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that read the book build go last, so every other test runs during the build."""
    items.sort(key=_reads_the_build)  # stable: the order within each part is kept


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the book build right after collection when any selected test needs it.

    The build and the other tests then share the CPU cores. The tests (and the processes
    they start) get half of them: on two cores one thread, which costs them about 15%
    but leaves a core to the build. The chapters keep torch's default, so once the other
    tests are done they train on all cores (measured on two cores: pytest took 476 s
    this way, 529 s with one thread for the chapters too). The build is the longest path,
    so the tests run at a lower priority (nice 10): they fill what the chapters leave idle
    (one run after the other on the same machine: 572 s with it, 616 s without).
    """
    if session.config.option.collectonly:
        return
    if not builds_the_book(session.items):
        return
    threads = max(1, (os.cpu_count() or 2) // 2)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # the subprocesses tests start
    torch.set_num_threads(threads)
    BUILD_IN_BACKGROUND.start()
    os.nice(10)  # after the start: the build keeps its priority, the tests use what it leaves


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop a build still running when the session ends early (-x, Ctrl-C)."""
    BUILD_IN_BACKGROUND.stop()


@pytest.fixture(scope="session")
def book_build() -> BookBuild:
    """The whole book built in quick mode with warnings as errors (see BackgroundBuild);
    started after collection, so this usually only waits for it to finish."""
    return BUILD_IN_BACKGROUND.wait()


@pytest.fixture(scope="session")
def built_html(book_build: BookBuild) -> Path:
    """The built HTML folder; fails the dependent test if the build did not succeed."""
    if book_build.returncode != 0:
        pytest.fail(f"jupyter-book build failed (exit {book_build.returncode}); see _build/book_build.log")
    return book_build.html


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (tests of tiny models: one thread beats two on
    shared CPU cores); the previous setting is restored afterwards."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


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
    if builds_the_book(request.session.items):
        build: BookBuild = request.getfixturevalue("book_build")
        return lambda chapter: chapter_from_build(chapter, build)
    return lambda chapter: execute_chapter(chapter_source(chapter))
