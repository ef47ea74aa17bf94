"""Helpers shared by the book tests: where the chapters are, how they ran, timings.

In a full test run each chapter is executed once, by the book build (myst-nb, in a
fresh kernel that inherits the build's environment, with ``book/`` as the working
directory); :func:`chapter_from_build` reads what that execution left behind. When a
session does not build the book (``pytest tests/test_chapters.py -k 05_``), a chapter is
executed on its own the same way by :func:`execute_chapter`. Either way a failure is
reported with the chapter, the failing cell's source and the traceback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import nbformat
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "_build"
HTML = BUILD / "html"
TIMINGS = BUILD / "chapter_times.json"
EXECUTED = BUILD / "jupyter_execute"  # where myst-nb writes each executed notebook
EXECUTION_REPORT = BUILD / "execution.json"  # written by book/_ext/execution_report.py

# The environment every chapter runs under in the tests and in the book build.
# (book/_ext/offline_book.py sets the last two in the build; TQDM_DISABLE: no frozen bars.)
CHAPTER_ENV = {"ABN_PROFILE": "quick", "PLOTLY_RENDERER": "notebook", "TQDM_DISABLE": "1"}
_SOURCE_SUFFIXES = (".ipynb", ".md")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class BookBuild:
    """Outcome of one ``jupyter-book build`` (see the ``book_build`` fixture in conftest.py).

    ``started`` is the wall-clock time (``time.time()``) the build began; ``execution`` is
    myst-nb's record per executed document (``_build/execution.json``).
    """

    returncode: int
    log: str
    seconds: float
    html: Path
    started: float = 0.0
    execution: dict[str, dict] = field(default_factory=dict)


@dataclass(frozen=True)
class ChapterRun:
    """One execution of a chapter: the executed notebook, its seconds, and the failure
    (chapter, cell, source, traceback) if it did not run through, else None."""

    notebook: nbformat.NotebookNode | None
    seconds: float
    failure: str | None = None


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


def toc_notebooks() -> list[str]:
    """The toc entries that are notebooks, i.e. the pages the build executes."""
    return [chapter for chapter in toc_chapters() if chapter_source(chapter).suffix == ".ipynb"]


def chapter_source(chapter: str) -> Path:
    """Return the source file (``.ipynb`` or ``.md``) of a toc entry such as ``book/00_welcome``."""
    for suffix in _SOURCE_SUFFIXES:
        path = REPO / f"{chapter}{suffix}"
        if path.exists():
            return path
    raise FileNotFoundError(f"_toc.yml lists {chapter!r} but no {chapter}.ipynb or .md exists")


def chapter_title(source: Path) -> str:
    """Return the text of the chapter's first level-1 Markdown heading, as the page shows
    it (inline-code backticks removed: "the `abn` API" is rendered "the abn API")."""
    notebook = jupytext.read(source)
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].replace("`", "").strip()
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


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour codes (jupyter-book and IPython colour their output)."""
    return _ANSI.sub("", text)


def _failure_message(name: str, notebook: nbformat.NotebookNode | None, fallback: str) -> str:
    """Describe a failed run: which cell, its source, and the error without ANSI colours.

    ``fallback`` (an exception's text or myst-nb's traceback) is used when no cell holds
    an error output, as after a timeout or a dead kernel.
    """
    failing = [
        (index, cell)
        for index, cell in enumerate(notebook.cells if notebook else [])
        if cell.cell_type == "code" and any(out.get("output_type") == "error" for out in cell.get("outputs", []))
    ]
    if failing:
        index, cell = failing[0]
        error_output = next(out for out in cell.outputs if out.output_type == "error")
        details = "\n".join(error_output.get("traceback", [])) or f"{error_output.ename}: {error_output.evalue}"
        header = f"{name}: code cell {index} raised {error_output.ename}"
        return f"{header}\n--- cell source ---\n{cell.source}\n--- error ---\n{strip_ansi(details)}"
    return f"{name}: execution failed: {strip_ansi(fallback)}"


def execute_chapter(path: Path, timeout: int = 900) -> ChapterRun:
    """Execute the chapter at ``path`` in quick mode, on its own (not through the build).

    ``timeout`` is per cell, as in the book build. A failing cell, a timeout or a dead
    kernel is returned as the run's ``failure``, with the failing cell and the error.
    Training checkpoints go to a fresh folder, so nothing is resumed from an earlier run.
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
    with tempfile.TemporaryDirectory() as fresh, chapter_environment(ABN_CHECKPOINTS=fresh):
        try:
            client.execute()
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
            failure = _failure_message(path.name, notebook, str(error))
    return ChapterRun(notebook, time.perf_counter() - start, failure)


def chapter_from_build(chapter: str, build: BookBuild) -> ChapterRun:
    """What the book build's execution of ``chapter`` left: the executed notebook in
    ``_build/jupyter_execute/``, its run time and, if it failed, the cell and traceback.

    The notebook must have been written by this build (not left over from an earlier
    one), and every non-empty code cell must have run.
    """
    name = chapter_source(chapter).name
    executed = EXECUTED / f"{chapter}.ipynb"
    record = build.execution.get(chapter)
    if record is None or not executed.exists() or executed.stat().st_mtime < build.started:
        tail = "\n".join(build.log.splitlines()[-30:])
        return ChapterRun(None, 0.0, f"{name}: the book build did not execute it "
                                     f"(exit {build.returncode}); end of its log:\n{tail}")
    notebook = nbformat.read(executed, as_version=4)
    seconds = float(record.get("runtime") or 0.0)
    if not record.get("succeeded"):
        return ChapterRun(notebook, seconds, _failure_message(name, notebook, record.get("traceback") or ""))
    skipped = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and cell.source.strip() and cell.get("execution_count") is None
    ]
    if skipped:
        return ChapterRun(notebook, seconds, f"{name}: code cells {skipped} were not executed by the build")
    return ChapterRun(notebook, seconds)


class BackgroundBuild:
    """``jupyter-book build`` of the whole book in quick mode, run in the background.

    conftest.py starts it as soon as the tests are collected, so the unit tests run while
    the chapters execute; :meth:`wait` is what the ``book_build`` fixture returns.
    ``--all`` re-reads (and so re-executes) every chapter even if its source is unchanged;
    without it Sphinx would reuse pages from an earlier build, possibly in another mode.
    A chapter that raises is a warning, so the build still renders every other page and
    then exits non-zero. The log is kept in ``_build/book_build.log``.
    """

    LOG = BUILD / "book_build.log"
    CHECKPOINTS = BUILD / "checkpoints"  # the build's own $ABN_CHECKPOINTS

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.started = 0.0  # time.time() at the start: executed notebooks must be newer
        self._start = 0.0
        self._result: BookBuild | None = None

    def start(self, **env: str) -> None:
        """Start the build (once) with ``CHAPTER_ENV`` and ``env`` added to os.environ."""
        if self.process is not None:
            return
        BUILD.mkdir(exist_ok=True)
        shutil.rmtree(self.CHECKPOINTS, ignore_errors=True)  # chapters 6 and 7 train afresh
        env = {"ABN_CHECKPOINTS": str(self.CHECKPOINTS), **env}
        jupyter_book = Path(sys.executable).parent / "jupyter-book"
        command = [str(jupyter_book), "build", str(REPO), "--all", "-W", "--keep-going"]
        self.started, self._start = time.time(), time.perf_counter()
        with self.LOG.open("w", encoding="utf-8") as log:  # the child keeps its own handle
            self.process = subprocess.Popen(
                command, cwd=REPO, env={**os.environ, **CHAPTER_ENV, **env}, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)  # its own group: stop()

    def wait(self) -> BookBuild:
        """Wait for the build to finish; record and return its outcome."""
        if self._result is None:
            self.start()
            returncode = self.process.wait()
            seconds = time.perf_counter() - self._start
            log = strip_ansi(self.LOG.read_text(encoding="utf-8", errors="replace"))
            self.LOG.write_text(log, encoding="utf-8")
            execution = read_execution_report()
            executing = sum(float(r.get("runtime") or 0.0) for r in execution.values())
            record_time("jupyter-book build", seconds)
            record_time("jupyter-book build: executing chapters", executing)
            print(f"\njupyter-book build: {seconds:.1f} s (executing chapters {executing:.1f} s), "
                  f"exit {returncode}")
            self._result = BookBuild(returncode, log, seconds, HTML, self.started, execution)
        return self._result

    def stop(self) -> None:
        """End a build still running (the session stopped early): it and its kernels."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait()


def read_execution_report(path: Path = EXECUTION_REPORT) -> dict[str, dict]:
    """myst-nb's execution record per document from the last build ({} if none)."""
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def record_time(name: str, seconds: float, path: Path = TIMINGS) -> None:
    """Merge ``{name: seconds}`` into the JSON timing file (created if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    times = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    times[name] = round(seconds, 2)
    path.write_text(json.dumps(times, indent=2, sort_keys=True) + "\n", encoding="utf-8")
