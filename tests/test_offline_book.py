"""book/_ext/offline_book.py: which plotly.js bundle a page gets, from its figures' traces."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import plotly.io as pio
import pytest

import offline_book
from offline_book import PLOTLY_CARTESIAN_JS, PLOTLY_JS, plotly_bundle, trace_types


def page(*figures: go.Figure) -> str:
    """A page body with ``figures`` as the `notebook` renderer writes them."""
    return "".join(pio.to_html(f, include_plotlyjs=False, full_html=False) for f in figures)


def test_trace_types_reads_the_data_not_the_template() -> None:
    """Each figure embeds a template naming every trace type; only the traces count."""
    body = page(go.Figure(go.Heatmap(z=[[1, 2]])), go.Figure([go.Bar(y=[1]), go.Scatter(y=[2])]))
    assert '"scatter3d"' in body  # the embedded template names it
    assert trace_types(body) == {"heatmap", "bar", "scatter"}
    assert trace_types("<p>no figure</p>") == set()


def test_cartesian_bundle_only_where_it_draws_every_trace() -> None:
    assert plotly_bundle(page(go.Figure(go.Box(y=[1, 2])))) == PLOTLY_CARTESIAN_JS
    mixed = page(go.Figure(go.Scatter(y=[1])), go.Figure(go.Scatter3d(x=[1], y=[1], z=[1])))
    assert plotly_bundle(mixed) == PLOTLY_JS
    assert plotly_bundle(page(go.Figure(go.Scatter(y=[1]))), cartesian_ok=False) == PLOTLY_JS


def test_vendored_cartesian_bundle_matches_plotly_py(monkeypatch: pytest.MonkeyPatch) -> None:
    """The vendored bundle is the plotly.js version plotly.py draws for (else the build
    warns and falls back to the full bundle everywhere)."""
    offline_book.cartesian_matches.cache_clear()
    assert offline_book.cartesian_matches()
    monkeypatch.setattr("plotly.offline.get_plotlyjs_version", lambda: "0.0.1")
    offline_book.cartesian_matches.cache_clear()
    try:
        assert not offline_book.cartesian_matches()
    finally:
        offline_book.cartesian_matches.cache_clear()


def test_trace_types_of_a_trace_without_type() -> None:
    """A trace written without ``type`` is a scatter (plotly.js's default)."""
    body = f'Plotly.newPlot(\n "id",\n {json.dumps([{"y": [1]}])},\n {{}})'
    assert trace_types(body) == {"scatter"}


def test_widget_scripts_dropped_where_no_widget_is_shown() -> None:
    """The widget manager and state stay on a page that shows a widget, and go elsewhere."""
    from types import SimpleNamespace

    from sphinx.builders.html._assets import _JavaScript

    manager = {"requirejs/require.js": {}, "html-manager/embed-amd.js": {}}
    app = SimpleNamespace(config=SimpleNamespace(nb_ipywidgets_js=manager))

    def scripts() -> list:
        state = _JavaScript(None, type="application/vnd.jupyter.widget-state+json", body="{}")
        return [_JavaScript("doctools.js"), state, *(_JavaScript(f) for f in manager)]

    shown = scripts()
    offline_book._drop_widget_scripts(app, shown, '<script type="application/vnd.jupyter.widget-view+json">')
    assert len(shown) == 4
    hidden = scripts()
    offline_book._drop_widget_scripts(app, hidden, "<p>no widget here</p>")
    assert [s.filename for s in hidden] == ["doctools.js"]
