"""The book as a course (issue 21): every chapter has objectives, a summary, exercises with
folded solutions, and citations that resolve; code solutions assert their answer.

The markup each check looks for: objectives are an admonition titled "In this chapter";
the summary is a Markdown cell starting "## Summary" followed by the code cell that
computes its numbers; exercises are sphinx-exercise's ``exercise`` directives with a
``:label:``, answered by a ``solution`` or a gated ``solution-start`` ... ``solution-end``
with ``:class: dropdown``; citations are sphinxcontrib-bibtex's ``{cite:p}`` /
``{cite:t}`` roles with keys from book/references.bib. These tests only read the
notebooks; the chapter runs (tests/test_chapters.py) execute the code
solutions, and the ``-W`` book build fails on an unresolved citation or label.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from notebook_runner import REPO, chapter_source, toc_chapters

MIN_EXERCISES = 3
BIB = REPO / "book" / "references.bib"

# A directive's opening line: three or more colons, then {name} and its argument.
_DIRECTIVE = re.compile(r"^(:{3,})\{([\w-]+)\}[ \t]*(.*)$", re.M)
_CITE = re.compile(r"\{(?:cite|cite:p|cite:t|cite:ps|cite:ts|cite:alp|cite:year)\}`([^`]+)`")
# "Hu et al., 2018", "(Krizhevsky, 2009)", "He et al. (2016)": citations typed by hand.
_TYPED = re.compile(r"\b[A-Z][a-z]+ et al\.,? \(?(?:19|20)\d\d|\([A-Z][a-z]+,? (?:19|20)\d\d\)")


def _chapters() -> list[Path]:
    """The numbered chapters (00_ ... 09_) in the toc, as source files."""
    return [chapter_source(c) for c in toc_chapters() if re.match(r"\d\d_", Path(c).name)]


def _cells(path: Path) -> list[nbformat.NotebookNode]:
    return nbformat.read(path, as_version=4).cells


def _markdown(path: Path) -> str:
    return "\n\n".join(c.source for c in _cells(path) if c.cell_type == "markdown")


def _directives(text: str) -> list[tuple[str, str, str]]:
    """(name, argument, body up to the closing fence) of every colon-fenced directive."""
    found = []
    for match in _DIRECTIVE.finditer(text):
        fence, name, argument = match.groups()
        close = re.compile(rf"^{fence}[ \t]*$", re.M).search(text, match.end())
        body = text[match.end(): close.start() if close else len(text)]
        found.append((name, argument.strip(), body))
    return found


def _option(body: str, option: str) -> str | None:
    """The value of ``:option: value`` among a directive's leading option lines."""
    for line in body.strip("\n").splitlines():
        if not line.startswith(":"):
            break
        key, _, value = line[1:].partition(":")
        if key.strip() == option:
            return value.strip()
    return None


def _bib_keys() -> set[str]:
    return set(re.findall(r"^@\w+\{([^,\s]+),", BIB.read_text(encoding="utf-8"), re.M))


def test_there_are_ten_chapters() -> None:
    """The checks below cover chapters 00 to 09; a toc that loses one should not pass."""
    assert [p.name[:2] for p in _chapters()] == [f"{i:02d}" for i in range(10)]


@pytest.mark.parametrize("path", _chapters(), ids=lambda p: p.name)
def test_chapter_opens_with_objectives(path: Path) -> None:
    """An "In this chapter" admonition says what the reader will be able to do and what
    the chapter assumes."""
    cells = [c.source for c in _cells(path) if c.cell_type == "markdown"]
    boxes = [s for s in cells if re.search(r"^:{3,}\{admonition\}\s*In this chapter\s*$", s, re.M)]
    assert boxes, f"{path.name}: no ':::{{admonition}} In this chapter' box"
    assert re.search(r"assum", boxes[0], re.I), f"{path.name}: the objectives do not say what they assume"


@pytest.mark.parametrize("path", _chapters(), ids=lambda p: p.name)
def test_chapter_ends_with_a_computed_summary(path: Path) -> None:
    """A "## Summary" cell, followed by the code cell that computes its numbers."""
    cells = _cells(path)
    at = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("## Summary")]
    assert at, f"{path.name}: no Markdown cell starting with '## Summary'"
    i = at[-1]
    assert i + 1 < len(cells) and cells[i + 1].cell_type == "code", (
        f"{path.name}: '## Summary' is not followed by the code cell that computes it")


@pytest.mark.parametrize("path", _chapters(), ids=lambda p: p.name)
def test_exercises_have_folded_solutions(path: Path) -> None:
    """At least three exercises, each labelled, each with exactly one solution, folded."""
    found = _directives(_markdown(path))
    labels = [_option(body, "label") for name, _, body in found if name == "exercise"]
    assert len(labels) >= MIN_EXERCISES, f"{path.name}: {len(labels)} exercises, want >= {MIN_EXERCISES}"
    assert None not in labels, f"{path.name}: an exercise without ':label:'"
    solutions = [(arg, body) for name, arg, body in found if name in ("solution", "solution-start")]
    for label in labels:
        matching = [body for arg, body in solutions if arg == label]
        assert len(matching) == 1, f"{path.name}: exercise {label!r} has {len(matching)} solutions, want 1"
        assert "dropdown" in (_option(matching[0], "class") or ""), (
            f"{path.name}: the solution to {label!r} is not folded (':class: dropdown')")
    orphans = [arg for arg, _ in solutions if arg not in labels]
    assert not orphans, f"{path.name}: solutions to no exercise of this chapter: {orphans}"


def test_exercise_labels_are_unique_in_the_book() -> None:
    """sphinx-exercise labels are global; a repeated one would link to the wrong page."""
    labels = [_option(body, "label") for path in _chapters()
              for name, _, body in _directives(_markdown(path)) if name == "exercise"]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    assert not repeated, f"exercise labels used twice: {repeated}"


@pytest.mark.parametrize("path", _chapters(), ids=lambda p: p.name)
def test_code_solutions_assert_their_answer(path: Path) -> None:
    """A gated solution (solution-start ... solution-end) holds code cells, and its last
    code cell checks the answer with an ``assert`` (the chapter run executes it)."""
    cells = _cells(path)
    starts = [i for i, c in enumerate(cells) if c.cell_type == "markdown"
              and any(name == "solution-start" for name, _, _ in _directives(c.source))]
    for start in starts:
        end = next((j for j in range(start + 1, len(cells)) if cells[j].cell_type == "markdown"
                    and any(name == "solution-end" for name, _, _ in _directives(cells[j].source))), None)
        assert end is not None, f"{path.name}: cell {start} opens a solution that never ends"
        code = [c.source for c in cells[start + 1:end] if c.cell_type == "code"]
        assert code, f"{path.name}: the gated solution at cell {start} has no code cell"
        assert re.search(r"^\s*assert\b", code[-1], re.M), (
            f"{path.name}: the code solution at cell {start} does not end in an assert")


@pytest.mark.parametrize("path", _chapters(), ids=lambda p: p.name)
def test_chapter_cites_its_sources(path: Path) -> None:
    """At least one ``{cite}``; every cited key is in book/references.bib."""
    keys = [key.strip() for group in _CITE.findall(_markdown(path)) for key in group.split(",")]
    assert keys, f"{path.name}: no {{cite}} role"
    unknown = sorted(set(keys) - _bib_keys())
    assert not unknown, f"{path.name}: cites keys not in book/references.bib: {unknown}"


@pytest.mark.parametrize("path", _chapters(), ids=lambda p: p.name)
def test_no_citation_typed_by_hand(path: Path) -> None:
    """Author-year citations go through ``{cite}``, so each one links to the references."""
    typed = sorted({m.group(0) for m in _TYPED.finditer(_markdown(path))})
    assert not typed, f"{path.name}: citations typed by hand (use {{cite:p}}): {typed}"


def test_every_reference_is_cited() -> None:
    """No entry in references.bib that no page cites (it would list a source the book
    does not use)."""
    pages = [chapter_source(c) for c in toc_chapters()]
    text = "\n".join(_markdown(p) if p.suffix == ".ipynb" else p.read_text(encoding="utf-8") for p in pages)
    cited = {key.strip() for group in _CITE.findall(text) for key in group.split(",")}
    unused = sorted(_bib_keys() - cited)
    assert not unused, f"references.bib entries no page cites: {unused}"
