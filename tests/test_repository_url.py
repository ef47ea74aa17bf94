"""The repository URL is set in one place (``_config.yml``) and every copy agrees with it.

The built launch buttons are checked in test_book.py (they need the build).
"""

from __future__ import annotations

import re

import nbformat

from repository_url import README, config_url, copies, install_cell, notebooks


def test_config_url_is_a_github_repository() -> None:
    """Colab's launch button only works for GitHub repositories (owner/name)."""
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", config_url()), config_url()


def test_every_copy_agrees_with_config() -> None:
    """Each notebook's install cell and the README install from ``repository.url``."""
    url = config_url()
    found = copies()
    missing = sorted(place for place, urls in found.items() if not urls)
    wrong = {place: urls for place, urls in found.items() if any(u != url for u in urls)}
    hint = "run `.venv/bin/python tests/repository_url.py` to write it everywhere"
    assert not missing, f"no `%pip install git+<url>` install cell in {missing}"
    assert not wrong, f"these disagree with _config.yml's {url}: {wrong}; {hint}"


def test_readme_says_how_to_publish_elsewhere() -> None:
    """The README names the setting and the command that propagates it."""
    text = README.read_text(encoding="utf-8")
    assert "repository.url" in text and "tests/repository_url.py" in text


def test_chapter_title_comes_before_the_install_cell() -> None:
    """A reader (of the page, or in Colab) meets the chapter's title first, the install
    cell after it."""
    late = []
    for path in notebooks():
        notebook = nbformat.read(path, as_version=4)
        first, install = notebook.cells[0], install_cell(notebook)
        title_first = first.cell_type == "markdown" and first.source.startswith("# ")
        if not title_first or install is None or notebook.cells.index(install) == 0:
            late.append(path.name)
    assert not late, f"these notebooks do not open with their title: {late}"
