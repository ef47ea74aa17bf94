"""How many bytes of JavaScript each built page loads, and from which files.

A reader's browser downloads every ``<script src=...>`` a page names (and require.js
pulls the widget manager in after it). This counts them from the built HTML, file by
file, plus the page's inline scripts (the figures' data and widget state), so a change
to what pages load can be measured before and after:

    .venv/bin/python tests/page_weight.py [_build/html]

prints one row per chapter and API page: kB of script files, kB of inline scripts, and
the three big bundles (plotly.js, the widget manager, MathJax) the page loads.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

# Big bundles by file name: plotly.js (full, or the cartesian bundle that most pages
# need, book/_ext/offline_book.py), the widget manager, MathJax.
BUNDLES = {"plotly": ("plotly.min.js", "plotly-cartesian.min.js"), "widgets": ("embed-amd.js",),
           "mathjax": ("tex-chtml-full.js",)}


class _Scripts(HTMLParser):
    """Collects a page's script file URLs and the characters of its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.files: list[str] = []
        self.inline = 0
        self._in_inline = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "script":
            return
        src = dict(attrs).get("src")
        if src:
            self.files.append(src)
        self._in_inline = not src

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_inline = False

    def handle_data(self, data: str) -> None:
        if self._in_inline:
            self.inline += len(data.encode("utf-8"))


@dataclass
class PageScripts:
    """The script files one page loads (``{path: bytes}``) and its inline script bytes."""

    files: dict[str, int] = field(default_factory=dict)
    inline: int = 0

    @property
    def file_bytes(self) -> int:
        return sum(self.files.values())

    def loaded(self, bundle: str) -> str:
        """The file of ``BUNDLES[bundle]`` the page loads, or "" if none."""
        return next((Path(p).name for p in self.files if Path(p).name in BUNDLES[bundle]), "")

    def loads(self, bundle: str) -> bool:
        """True if the page loads one of ``BUNDLES[bundle]``."""
        return bool(self.loaded(bundle))


def page_scripts(page: Path) -> PageScripts:
    """The scripts ``page`` (a built HTML file) loads, with their sizes on disk.

    The widget manager is loaded by require.js from ``nb_ipywidgets_js``'s list; it is
    named in a ``<script src>`` tag too, so the tags are the whole list."""
    parser = _Scripts()
    parser.feed(page.read_text(encoding="utf-8"))
    result = PageScripts(inline=parser.inline)
    for src in parser.files:
        url = urlparse(src)
        if url.scheme or url.netloc:  # another host: not counted here (test_book forbids it)
            continue
        path = (page.parent / url.path).resolve()
        result.files[str(path)] = path.stat().st_size if path.exists() else 0
    return result


def pages(html: Path) -> list[Path]:
    """Every page a reader opens: the chapters and appendices, then the API pages."""
    skip = {"genindex.html", "search.html", "py-modindex.html"}
    found = [p for p in sorted(html.glob("book/*.html")) if p.name not in skip]
    return found + sorted(html.glob("book/api/*.html"))


def table(html: Path) -> str:
    """A Markdown table: kB of script files and inline scripts per page, bundles loaded."""
    rows = ["| page | script files kB | inline kB | plotly.js | widgets | MathJax |",
            "|---|---:|---:|:-:|:-:|:-:|"]
    total = 0
    for page in pages(html):
        s = page_scripts(page)
        total += s.file_bytes
        marks = [s.loaded(b).removesuffix(".min.js").removesuffix(".js") for b in BUNDLES]
        rows.append(f"| {page.relative_to(html)} | {s.file_bytes / 1e3:,.0f} | "
                    f"{s.inline / 1e3:,.0f} | " + " | ".join(marks) + " |")
    rows.append(f"| **all pages** | {total / 1e3:,.0f} | | | | |")
    return "\n".join(rows)


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "_build" / "html"
    if not root.is_dir():
        print(f"error: no built book at {root}; build it first (see README)", file=sys.stderr)
        sys.exit(2)
    print(table(root))
