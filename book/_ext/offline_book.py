"""Sphinx extension: the built book renders with no network.

What it does, and why:

* **plotly renderer.** plotly's default renderer inside a kernel (``plotly_mimetype``)
  produces a mime type that myst-nb drops, so figures silently vanish. The ``notebook``
  renderer produces plain ``text/html`` that myst-nb keeps. ``setup`` selects it by
  setting ``PLOTLY_RENDERER`` in the build's environment, which the kernels that
  myst-nb starts inherit, so chapters need no set-up cell.
* **one local plotly.js.** The ``notebook`` renderer inlines the whole plotly.js bundle
  (~5 MB) into each page and adds ``<script src="https://cdnjs.../mathjax/...">`` to every
  figure (a second MathJax beside the book's own, and a CDN request that fails offline).
  Pages with figures are rewritten to drop both and load ``_static/plotly.min.js``, which
  is written from the installed plotly package, so its version always matches plotly.py.
* **the smaller plotly.js where it does.** A page whose figures use only the trace types
  of plotly.js's "cartesian" bundle (scatter, bar, heatmap, box, histogram, image, ...;
  1.5 MB, vendored in ``book/_vendor/plotly-cartesian/``) loads that bundle instead of
  the full one. Its version must be plotly.py's, else the build warns and every page
  gets the full bundle.
* **figures in the dark theme.** ``book/_vendor/shims/plotly-theme.js``, loaded after
  plotly.js, draws the figures with a dark variant of their template while the page is
  dark (transparent paper, light text), and redraws them when the reader switches.
* **no frozen progress bars.** ``TQDM_DISABLE=1`` in the kernels' environment: a tqdm
  widget in a static page is a bar stuck at its last state, and it alone would make
  myst-nb load the 3.5 MB widget manager on the page. ``abn.train`` prints a line per
  epoch either way.
* **no widget manager for nothing.** myst-nb adds require.js and the 3.5 MB widget
  manager (``nb_ipywidgets_js``) to every page whose notebook saved any widget state,
  even when no widget is displayed; such pages drop them.
* **duplicate inline scripts.** With Sphinx 7, sphinx-thebe and sphinx-togglebutton
  register their inline configuration scripts twice per page; the second
  ``const THEBE_JS_URL`` throws a SyntaxError in every page. Keep the first copy only.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

PLOTLY_JS = "plotly.min.js"  # relative to the built book's _static/ folder
PLOTLY_CARTESIAN_JS = "plotly-cartesian/plotly-cartesian.min.js"  # from book/_vendor/
# The trace types in the cartesian bundle (its README, plotly.js-cartesian-dist-min).
CARTESIAN_TRACES = frozenset({"bar", "box", "contour", "heatmap", "histogram", "histogram2d",
                              "histogram2dcontour", "image", "pie", "scatter", "scatterternary",
                              "violin"})
# Ours (book/_vendor/shims/): figures follow the page's light/dark theme.
PLOTLY_THEME_JS = "shims/plotly-theme.js"

# The bundle the `notebook` renderer inlines: "<script>/**\n* plotly.js v4.1.1 ...</script>".
_INLINE_BUNDLE = re.compile(r"<script[^>]*>\s*/\*\*\s*\*\s*plotly\.js v.*?</script>", re.S)
# The MathJax script plotly adds to every figure (its include_mathjax="cdn" is hard-coded).
_CDN_MATHJAX = re.compile(r'<script src="https?://[^"]*mathjax[^"]*"></script>', re.I)
# A displayed widget, and the page's saved widget state (myst-nb's script types).
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# A figure's drawing call, up to its data array: Plotly.newPlot(\n "<div id>",\n [...]
_NEW_PLOT = re.compile(r'Plotly\.newPlot\(\s*"[^"]*",\s*(?=\[)')


def strip_plotly_cdn(body: str) -> str:
    """Return ``body`` without inlined plotly.js bundles and plotly's CDN MathJax tags."""
    return _CDN_MATHJAX.sub("", _INLINE_BUNDLE.sub("", body))


def trace_types(body: str) -> set[str]:
    """The trace types of every figure in ``body``: the ``type`` of each trace in the data
    array of each ``Plotly.newPlot("id", [...], ...)`` call (the figures' embedded
    templates name every trace type, so a plain search of the page would not do)."""
    decoder = json.JSONDecoder()
    found: set[str] = set()
    for call in _NEW_PLOT.finditer(body):
        data, _ = decoder.raw_decode(body, call.end())
        found |= {trace.get("type", "scatter") for trace in data}
    return found


def plotly_bundle(body: str, cartesian_ok: bool = True) -> str:
    """The plotly.js file a page with figures needs: the cartesian bundle when it can
    draw every trace on the page (and ``cartesian_ok``), else the full one."""
    return PLOTLY_CARTESIAN_JS if cartesian_ok and trace_types(body) <= CARTESIAN_TRACES else PLOTLY_JS


@functools.cache
def cartesian_matches() -> bool:
    """True if the vendored cartesian bundle is the plotly.js version plotly.py writes
    figures for; else warn once (the build's -W fails) so it gets updated."""
    from plotly.offline import get_plotlyjs_version

    path = Path(__file__).resolve().parents[1] / "_vendor" / PLOTLY_CARTESIAN_JS
    head = path.read_text(encoding="utf-8")[:200] if path.exists() else ""
    version = re.search(r"plotly\.js \(cartesian - minified\) v(\S+)", head)
    if version and version.group(1) == get_plotlyjs_version():
        return True
    logger.warning("book/_vendor/%s is plotly.js %s, plotly.py draws for %s: every page gets "
                   "the full plotly.js; update the vendored bundle (book/_vendor/README.md)",
                   PLOTLY_CARTESIAN_JS, version.group(1) if version else "?", get_plotlyjs_version())
    return False


def _dedupe_inline_scripts(scripts: list[Any]) -> None:
    """Remove repeated inline (``body=``) scripts from a page's script list, in place."""
    seen: set[str] = set()
    for script in list(scripts):
        body = getattr(script, "attributes", {}).get("body")
        if not getattr(script, "filename", None) and body:
            if body in seen:
                scripts.remove(script)
            seen.add(body)


def _drop_widget_scripts(app: Sphinx, scripts: list[Any], body: str) -> None:
    """Remove the widget scripts (state and manager) from a page that shows no widget."""
    if _WIDGET_VIEW in body:
        return
    manager = set(app.config.nb_ipywidgets_js)
    for script in list(scripts):
        attributes = getattr(script, "attributes", {})
        if getattr(script, "filename", None) in manager or attributes.get("type") == _WIDGET_STATE:
            scripts.remove(script)


def _on_page(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Rewrite a page: one copy of each inline script; widget scripts only where a widget
    is shown; local plotly.js for figures."""
    body = context.get("body", "")
    _dedupe_inline_scripts(context.get("script_files", []))
    _drop_widget_scripts(app, context.get("script_files", []), body)
    if "plotly-graph-div" not in body:
        return
    context["body"] = body = strip_plotly_cdn(body)
    # Called inside html-page-context, add_js_file applies to this page only. A plain
    # (not async/defer) script in <head> is loaded before the figures' inline scripts run.
    app.add_js_file(plotly_bundle(body, cartesian_matches()))
    app.add_js_file(PLOTLY_THEME_JS)  # after plotly.js, before the figures are drawn


def _write_plotly_js(app: Sphinx, exception: Exception | None) -> None:
    """Copy the installed plotly.js into the built book's _static/ folder."""
    if exception is not None or app.builder.format != "html":
        return
    from plotly.offline import get_plotlyjs

    target = Path(app.outdir) / "_static" / PLOTLY_JS
    bundle = get_plotlyjs()
    if not target.exists() or target.read_text(encoding="utf-8") != bundle:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(bundle, encoding="utf-8")


def setup(app: Sphinx) -> dict[str, Any]:
    """Select plotly's ``notebook`` renderer for the kernels and register the page hooks."""
    # Forced, not setdefault: the page rewriting above relies on this renderer's output.
    os.environ["PLOTLY_RENDERER"] = "notebook"
    # A progress bar in a static page is a frozen widget (and loads the widget manager):
    # abn.train prints one line per epoch instead.
    os.environ["TQDM_DISABLE"] = "1"
    app.connect("html-page-context", _on_page, priority=600)  # after myst-nb adds its scripts
    app.connect("build-finished", _write_plotly_js)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
