"""Every page of the book renders in headless Chromium with the network off.

The static checks in test_book.py cannot see whether JavaScript ran: a page with all
its tags can still show blank figures, raw ``\\(...\\)`` math or empty widgets. Here a
real browser opens each built page offline (the chapters, both appendices and the
generated API pages) and checks what a reader sees: the title, drawn plotly figures that
respond to their own sliders and buttons, typeset math, rendered widgets, code and outputs
that fit the text column (no sideways scrolling at 1200 px), no JavaScript errors, and not
one request to the network. A screenshot of each page goes to
``_build/screenshots/<page>.jpg`` (API pages: ``_build/screenshots/api/``).

Needs Chromium from the system (Debian: ``apt-get install -y chromium``) and the Python
``playwright`` package, which drives that Chromium; playwright's own browser download
is not used.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ElementHandle, Page, Route, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from api_pages import API_FOLDER, public_modules
from notebook_runner import BUILD, chapter_source, chapter_title, record_time, toc_chapters

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI containers run as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = BUILD / "screenshots"
VIEWPORT = {"width": 1200, "height": 2000}
READY_TIMEOUT_MS = 30_000

# True once every figure, widget view and formula on the page has been drawn.
READY_JS = """() => {
  const all = (selector, test) => [...document.querySelectorAll(selector)].every(test);
  return document.readyState === 'complete'
    && all('.plotly-graph-div', gd => gd.querySelector('svg.main-svg'))
    && all('script[type="application/vnd.jupyter.widget-view+json"]',
           s => s.parentElement.querySelector('.widget-subarea > *'))
    && all('.math', m => m.querySelector('mjx-container'));
}"""

# What the page shows, counted; used for the assertions and for failure messages.
STATUS_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  const count = selector => document.querySelectorAll(selector).length;
  const views = [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')];
  const plots = [...document.querySelectorAll('.plotly-graph-div')];
  return {
    h1: [...document.querySelectorAll('h1')].map(h => h.textContent.replace('#', '').trim()),
    plots: plots.length,
    plots_drawn: plots.filter(gd => gd.querySelector('svg.main-svg')).length,
    widget_views: views.length,
    widgets_drawn: views.filter(s => s.parentElement.querySelector('.widget-subarea > *')).length,
    math: count('.math'),
    math_typeset: [...document.querySelectorAll('.math')].filter(m => m.querySelector('mjx-container')).length,
    math_errors: count('mjx-merror'),
    error_outputs: count('.output.error, .output.traceback'),
    // code cells and outputs a reader would have to scroll sideways in
    code_scrolling: [...document.querySelectorAll('div.cell_input pre')]
      .filter(p => p.scrollWidth > p.clientWidth + 1).length,
    outputs_scrolling: [...document.querySelectorAll('div.cell_output')]
      .filter(o => o.scrollWidth > o.clientWidth + 1).length,
  };
}"""

# The figure's drawing, without its own controls (a slider's grip moves when clicked)
# and without hover labels: it changes only if the control changed the figure.
SNAPSHOT_JS = """gd => [...gd.querySelectorAll('svg.main-svg')].map(svg => {
  const copy = svg.cloneNode(true);
  copy.querySelectorAll('.slider-container, .updatemenu-container, .hoverlayer').forEach(n => n.remove());
  return copy.innerHTML;
}).join('') + JSON.stringify((gd.data || []).map(t => [t.x, t.y, t.z, t.visible]))"""

# The first slider and first update menu of a figure: step count and active step.
CONTROLS_JS = """gd => {
  const first = items => (items || []).find(c => c.visible !== false);
  const layout = gd._fullLayout || {};
  const slider = first(layout.sliders), menu = first(layout.updatemenus);
  return {
    slider: slider ? {steps: slider.steps.length, active: slider.active} : null,
    menu: menu ? {buttons: menu.buttons.length, active: menu.active, type: menu.type} : null,
  };
}"""


@dataclass
class PageLog:
    """What happened while a page was open: requests that tried to leave, JS errors."""

    network: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless system Chromium, driven by playwright."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _is_local(url: str) -> bool:
    """True for URLs that never touch the network."""
    return url.startswith(("file:", "data:", "blob:", "about:"))


def open_offline(browser: Browser, path: Path, log: PageLog) -> Page:
    """Open ``path`` in a fresh offline context; any network request is aborted and logged."""
    context = browser.new_context(offline=True, viewport=VIEWPORT)

    def block(route: Route) -> None:
        if _is_local(route.request.url):
            route.continue_()
        else:
            route.abort("internetdisconnected")

    context.route("**/*", block)
    context.on("request", lambda r: None if _is_local(r.url) else log.network.append(r.url))
    page = context.new_page()
    page.on("websocket", lambda ws: log.network.append(ws.url))
    page.on("pageerror", lambda error: log.errors.append(str(error)))
    page.goto(path.as_uri(), wait_until="load")
    return page


def render(page: Page, screenshot: Path) -> dict:
    """Wait until the page is drawn (or the timeout passes: the caller's checks then say
    what is missing), save a full-page screenshot, and return the page's STATUS_JS."""
    try:
        page.wait_for_function(READY_JS, timeout=READY_TIMEOUT_MS)
    except PlaywrightTimeout:
        pass
    status = page.evaluate(STATUS_JS)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=screenshot, full_page=True, quality=80)  # JPEG: half the time of PNG
    return status


def _click_control(page: Page, gd: ElementHandle) -> str | None:
    """Use the figure's first slider (or, failing that, update menu) to select another
    step than the active one, the way a reader would: with the mouse. Return what was
    clicked, or None if the figure has no controls."""
    controls = gd.evaluate(CONTROLS_JS)
    gd.scroll_into_view_if_needed()
    if slider := controls["slider"]:
        target = slider["steps"] - 1 if slider["active"] != slider["steps"] - 1 else 0
        rail = gd.query_selector(".slider-container .slider-rail-touch-rect").bounding_box()
        ticks = gd.query_selector_all(".slider-container .slider-tick-rect")
        if len(ticks) == slider["steps"]:
            tick = ticks[target].bounding_box()
            x = tick["x"] + tick["width"] / 2
        else:  # click the rail's end: the nearest step is the first or the last
            x = rail["x"] + (rail["width"] - 2 if target else 2)
        page.mouse.click(x, rail["y"] + rail["height"] / 2)
        return f"slider step {target}"
    if menu := controls["menu"]:
        target = 1 if menu["active"] in (0, -1) and menu["buttons"] > 1 else 0
        buttons = ".updatemenu-container .updatemenu-button"
        if menu["type"] == "dropdown":  # open it first; its items are drawn on opening
            gd.query_selector(".updatemenu-container .updatemenu-header").click()
            buttons = ".updatemenu-container .updatemenu-dropdown-button"
            gd.wait_for_selector(buttons)
        gd.query_selector_all(buttons)[target].click()
        return f"{menu['type']} button {target}"
    return None


@pytest.mark.parametrize("chapter", toc_chapters(), ids=lambda c: Path(c).name)
def test_chapter_renders_offline(browser: Browser, built_html: Path, chapter: str) -> None:
    """Title, figures, math and widgets render with no network; plotly controls work."""
    start = time.perf_counter()
    log = PageLog()
    page = open_offline(browser, built_html / f"{chapter}.html", log)
    try:
        status = render(page, SCREENSHOTS / f"{Path(chapter).name}.jpg")

        title = chapter_title(chapter_source(chapter))
        assert title in status["h1"], f"title {title!r} not among the page's <h1>s {status['h1']}"
        assert status["error_outputs"] == 0, f"page shows error outputs: {status}"
        assert status["plots_drawn"] == status["plots"], f"plotly figures not drawn: {status}"
        assert status["math_typeset"] == status["math"], f"math not typeset: {status}"
        assert status["math_errors"] == 0, f"MathJax reports TeX errors: {status}"
        assert status["widgets_drawn"] == status["widget_views"], f"widgets not rendered: {status}"
        assert status["code_scrolling"] == 0, f"code cells scroll sideways at {VIEWPORT}: {status}"
        assert status["outputs_scrolling"] == 0, f"outputs scroll sideways at {VIEWPORT}: {status}"

        for index, gd in enumerate(page.query_selector_all(".plotly-graph-div")):
            before = gd.evaluate(SNAPSHOT_JS)
            clicked = _click_control(page, gd)
            if clicked is None:
                continue
            try:
                page.wait_for_function(
                    f"([gd, before]) => ({SNAPSHOT_JS})(gd) !== before", arg=[gd, before], timeout=5_000
                )
            except PlaywrightTimeout:
                pytest.fail(f"figure {index}: clicking {clicked} did not change the figure", pytrace=False)

        assert not log.errors, f"JavaScript errors on the page: {log.errors}"
        assert not log.network, f"the page tried to use the network: {log.network}"
    finally:
        page.context.close()
    seconds = time.perf_counter() - start
    print(f"{chapter} in the browser: {seconds:.1f} s, {status}")
    record_time(f"browser {chapter}", seconds)


def test_api_pages_render_offline(browser: Browser, built_html: Path) -> None:
    """Appendix A's module pages: titled, documented, math typeset, no JavaScript errors
    and no network requests."""
    start = time.perf_counter()
    paths = [built_html / API_FOLDER / f"{module}.html" for module in public_modules()]
    assert all(p.exists() for p in paths), "a public module has no API page"
    problems: dict[str, list] = {}
    for path in paths:
        log = PageLog()
        page = open_offline(browser, path, log)
        try:
            status = render(page, SCREENSHOTS / "api" / f"{path.stem}.jpg")
            documented = page.evaluate("document.querySelectorAll('dl.py').length")
        finally:
            page.context.close()
        issues = [
            *([f"title {status['h1']}"] if path.stem not in status["h1"] else []),
            *(["nothing documented"] if documented == 0 and path.stem != "abn" else []),
            *([f"math {status}"] if status["math_typeset"] != status["math"] else []),
            *log.errors,
            *[f"network: {url}" for url in log.network],
        ]
        if issues:
            problems[path.stem] = issues
    assert not problems, f"API pages with problems: {problems}"
    record_time("browser API pages", time.perf_counter() - start)
