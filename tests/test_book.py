"""The book builds with warnings as errors, and the HTML has every page, intact.

A default jupyter-book build exits 0 when a cell raises or an output is dropped; these
tests make such failures loud, and check that pages load nothing from other hosts, that
both appendices are there, and that the launch buttons point at ``repository.url``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from api_pages import API_FOLDER, public_modules
from notebook_runner import REPO, BookBuild, chapter_source, chapter_title, toc_chapters, toc_notebooks
from repository_url import CONFIG, config_url

CHAPTERS = toc_chapters()
_ERROR_OUTPUT = re.compile(r'class="[^"]*\boutput (?:error|traceback)\b')
_EXTERNAL = re.compile(r"^(?:https?:)?//", re.I)


class _AssetLinks(HTMLParser):
    """Collects the URLs a page loads by itself (scripts, styles, images, frames, fonts)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {key: value or "" for key, value in attrs}
        if tag in {"script", "img", "iframe", "source", "audio", "video", "embed"} and a.get("src"):
            self.urls.append(a["src"])
        if tag == "link" and {"stylesheet", "preload", "modulepreload", "icon"} & set(a.get("rel", "").split()):
            self.urls.append(a.get("href", ""))


def external_assets(page: str) -> list[str]:
    """Return the URLs in ``page`` that a browser would fetch from another host on load."""
    parser = _AssetLinks()
    parser.feed(page)
    return [url for url in parser.urls if _EXTERNAL.match(url)]


def _h1_texts(page: str) -> list[str]:
    """Text of every <h1> in the page, tags and the headerlink '#' removed."""
    texts = re.findall(r"<h1[^>]*>(.*?)</h1>", page, re.S)
    return [unescape(re.sub(r"<[^>]+>", "", t)).replace("#", "").strip() for t in texts]


def test_build_succeeds(book_build: BookBuild) -> None:
    """``jupyter-book build . -W --keep-going`` exits 0 and drops no output."""
    tail = "\n".join(book_build.log.splitlines()[-60:])
    assert book_build.returncode == 0, f"build failed; last lines of the log:\n{tail}"
    assert "skipping unknown output mime type" not in book_build.log, "an output was dropped (plotly renderer?)"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: Path(c).name)
def test_chapter_page(built_html: Path, chapter: str) -> None:
    """The chapter has a page with its title and no error output."""
    page_path = built_html / f"{chapter}.html"
    assert page_path.exists(), f"no page for {chapter}"
    page = page_path.read_text(encoding="utf-8")
    title = chapter_title(chapter_source(chapter))
    assert title in _h1_texts(page), f"{chapter}: title {title!r} not among the page's <h1>s"
    assert not _ERROR_OUTPUT.search(page), f"{chapter}: the page shows an error output"
    assert "Traceback (most recent call last)" not in page, f"{chapter}: the page shows a traceback"


def test_pages_load_nothing_from_other_hosts(built_html: Path) -> None:
    """No page loads scripts, styles, fonts or images from the network."""
    offenders = {
        str(path.relative_to(built_html)): urls
        for path in sorted(built_html.rglob("*.html"))
        if (urls := external_assets(path.read_text(encoding="utf-8")))
    }
    assert not offenders, f"pages load assets from other hosts: {offenders}"


def test_plotly_js_served_once(built_html: Path) -> None:
    """Pages use the shared ``_static/plotly.min.js`` instead of an inlined 5 MB bundle."""
    pages = [p.read_text(encoding="utf-8") for p in built_html.rglob("*.html")]
    assert not [p for p in pages if "* plotly.js v" in p], "a page inlines plotly.js"
    if any("plotly-graph-div" in p for p in pages):
        assert (built_html / "_static" / "plotly.min.js").stat().st_size > 1_000_000


def test_api_reference_has_a_page_per_module(built_html: Path) -> None:
    """Appendix A: every public module of abn has a page documenting its members, and
    the appendix's own page links to each of them."""
    appendix = (built_html / "book" / "appendix_a_api.html").read_text(encoding="utf-8")
    for module in public_modules():
        path = built_html / API_FOLDER / f"{module}.html"
        assert path.exists(), f"no API page for {module}"
        page = path.read_text(encoding="utf-8")
        assert module in _h1_texts(page), f"{module}: page title is {_h1_texts(page)}"
        assert f'id="module-{module}"' in page, f"{module}: autodoc did not document it"
        assert f"api/{module}.html" in appendix, f"Appendix A does not link to {module}"
    layers = (built_html / API_FOLDER / "abn.layers.html").read_text(encoding="utf-8")
    assert 'id="abn.layers.DynamicMultiBiasLinear"' in layers


def test_appendix_b_lists_every_stored_result(built_html: Path) -> None:
    """Appendix B names each file in results/ and its subfolders (the CPU study in
    results/cpu/), and says so plainly when no full-scale training run is stored."""
    page = (built_html / "book" / "appendix_b_provenance.html").read_text(encoding="utf-8")
    files = sorted((REPO / "results").rglob("*.json"))
    missing = [p.name for p in files if p.name not in page]
    assert not missing, f"Appendix B does not list {missing}"
    runs = [json.loads(p.read_text()) for p in files]
    if not any(r.get("kind") == "train" and r.get("profile") == "full" for r in runs):
        assert "No full-scale training runs are stored yet" in page


def test_launch_buttons_use_repository_url(built_html: Path) -> None:
    """Each notebook page's Colab button and repository button use ``repository.url``."""
    url = config_url()
    branch = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))["repository"].get("branch", "main")
    owner_repo = urlparse(url).path.strip("/")
    for chapter in toc_notebooks():
        page = (built_html / f"{chapter}.html").read_text(encoding="utf-8")
        colab = f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/{chapter}.ipynb"
        assert colab in page, f"{chapter}: no Colab button for {colab}"
        assert f'href="{url}"' in page, f"{chapter}: no repository button for {url}"


_PRE = re.compile(r"<pre[^>]*>(.*?)</pre>", re.S)
_TYPOGRAPHIC = re.compile("[\u2013\u2014\u2018\u2019\u201c\u201d]")  # dashes, curly quotes


def test_api_commands_paste_as_typed(built_html: Path) -> None:
    """The API pages show each module's command line as typed: in a code block, with
    ``--`` and straight quotes (smart quotes in prose made ``--model`` an en dash),
    and no option written with an en dash anywhere on the pages."""
    pages = {path.stem: path.read_text(encoding="utf-8")
             for path in sorted((built_html / API_FOLDER).glob("abn*.html"))}
    blocks = {name: [unescape(re.sub(r"<[^>]+>", "", b)) for b in _PRE.findall(page)]
              for name, page in pages.items()}
    for module in ("abn.train", "abn.bench", "abn.campaign", "abn.sweep"):
        assert any(f"python -m {module} --" in b for b in blocks[module]), \
            f"{module}: no code block with its command line"
    bad = {name: [b for b in found if _TYPOGRAPHIC.search(b)] for name, found in blocks.items()}
    assert not {k: v for k, v in bad.items() if v}, f"typographic dashes or quotes in code: {bad}"
    dashed = {name: re.findall(r"\s\u2013[a-z][\w-]*", unescape(re.sub(r"<[^>]+>", "", page)))
              for name, page in pages.items()}
    assert not {k: v for k, v in dashed.items() if v}, f"options with an en dash: {dashed}"


def build_paths() -> list[str]:
    """Absolute paths of the machine that built the book, which no page may show: the
    repository, the home folder, the temporary files and folders Python makes there
    (``tempfile``'s ``tmp...`` names), and ``$ABN_DATA``. Not every path under the
    temporary folder: a stored result's recorded command line (appendix B) may name
    one, and it is provenance, not a path of this build."""
    paths = [str(REPO), str(Path.home()), str(Path(tempfile.gettempdir()) / "tmp")]
    if os.environ.get("ABN_DATA"):
        paths.append(os.path.abspath(os.environ["ABN_DATA"]))
    return sorted({p if p.endswith("/tmp") else p.rstrip("/") + "/"
                   for p in paths if p not in ("", "/")})


def test_no_page_shows_build_paths(built_html: Path) -> None:
    """No page contains a path of the build machine (a chapter printing its checkpoint's
    path, a signature showing an absolute default): readers have other paths."""
    leaks = {}
    for path in sorted(built_html.rglob("*.html")):
        page = unescape(path.read_text(encoding="utf-8"))
        if found := [p for p in build_paths() if p in page]:
            leaks[str(path.relative_to(built_html))] = found
    assert not leaks, f"pages show the build machine's paths: {leaks}"
