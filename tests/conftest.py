"""Shared fixtures: the book, built once per test session and reused by every test; randomize."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from notebook_runner import BUILD, CHAPTER_ENV, HTML, REPO, BookBuild, record_time


@pytest.fixture(scope="session")
def book_build() -> BookBuild:
    """Build the whole book from scratch in quick mode, with warnings as errors.

    ``--all`` re-reads (and so re-executes) every chapter even if its source is unchanged;
    without it Sphinx would reuse pages from an earlier build, possibly in another mode.
    The log is kept in ``_build/book_build.log``.
    """
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    command = [str(jupyter_book), "build", str(REPO), "--all", "-W", "--keep-going"]
    start = time.perf_counter()
    result = subprocess.run(
        command, cwd=REPO, env={**os.environ, **CHAPTER_ENV}, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    log = result.stdout + result.stderr
    BUILD.mkdir(exist_ok=True)
    (BUILD / "book_build.log").write_text(log, encoding="utf-8")
    record_time("jupyter-book build", seconds)
    print(f"\njupyter-book build: {seconds:.1f} s, exit {result.returncode}")
    return BookBuild(result.returncode, log, seconds, HTML)


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
