"""Every page of the book renders in headless Chromium with the network off.

The static checks in test_book.py cannot see whether JavaScript ran: a page with all
its tags can still show blank figures, raw ``\\(...\\)`` math or empty widgets. Here a
real browser opens each built page offline (the chapters, both appendices and the
generated API pages) and checks what a reader sees: the title, drawn plotly figures that
respond to their own sliders and buttons, typeset math, rendered widgets, code and outputs
that fit the text column (no sideways scrolling at 1200 px), no JavaScript errors, and not
one request to the network. A screenshot of each page goes to
``_build/screenshots/<page>.jpg`` (API pages: ``_build/screenshots/api/``).

The same open page is then checked as a phone shows it (390 px: the page no wider than
the screen, figures inside their column, the sidebar toggle opening the chapter list) and
in the dark theme (figures not white panels, their text and the tables' captions
legible), with a screenshot of each in ``_build/screenshots/phone/`` and ``dark/``; and
its scripts are weighed: plotly.js and the widget manager only where a figure or a
widget needs them.

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
from page_weight import page_scripts

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
PHONE = {"width": 390, "height": 844}  # a common phone, in CSS pixels
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


# Visible elements matching a selector (display, visibility and size all non-zero).
_VISIBLE_JS = """selector => [...document.querySelectorAll(selector)].filter(e => {
  const r = e.getBoundingClientRect(), s = getComputedStyle(e);
  return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none';
}).length"""

# At phone width: how wide the page is, the figures wider than their output column, and
# figure titles (the title and the annotations that title subplots) printed over each other.
PHONE_JS = """() => {
  const overlap = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const overprinted = [];
  document.querySelectorAll('.plotly-graph-div').forEach((gd, i) => {
    const titles = [...gd.querySelectorAll('.gtitle, .annotation-text')].filter(t => t.textContent.trim());
    const boxes = titles.map(t => t.getBoundingClientRect());
    boxes.forEach((a, j) => boxes.slice(j + 1).forEach((b, k) => {
      if (overlap(a, b)) overprinted.push(`figure ${i}: "${titles[j].textContent}" over "${titles[j + 1 + k].textContent}"`);
    }));
  });
  return {
    page_width: document.documentElement.scrollWidth,
    wide_figures: [...document.querySelectorAll('.plotly-graph-div')]
      .filter(gd => gd.getBoundingClientRect().width > (gd.closest('.cell_output, article') || document.body).clientWidth + 1)
      .map(gd => Math.round(gd.getBoundingClientRect().width)),
    overprinted: overprinted,
  };
}"""

# Whether every figure has been redrawn for the dark theme (its paper no longer white).
DARK_READY_JS = """() => [...document.querySelectorAll('.plotly-graph-div .main-svg:first-of-type')]
  .every(svg => getComputedStyle(svg).backgroundColor !== 'rgb(255, 255, 255)')"""

# In the dark theme: figures whose paper is a light panel, figure text and table captions
# whose contrast with what is behind them is below 3:1 (figure text, WCAG's minimum for
# graphics) or 4.5:1 (captions, WCAG AA for text). Each problem as one short string.
CONTRAST_JS = """() => {
  const rgba = s => { const v = (s.match(/[\\d.]+/g) || []).map(Number); return v.length === 3 ? [...v, 1] : v; };
  const lum = ([r, g, b]) => {
    const f = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const behind = el => {  // the first (nearly) opaque background at or above el
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c[3] > 0.5) return c;
    }
    return rgba(getComputedStyle(document.documentElement).backgroundColor);
  };
  const problems = [];
  document.querySelectorAll('.plotly-graph-div').forEach((gd, i) => {
    const paper = rgba(getComputedStyle(gd.querySelector('.main-svg')).backgroundColor);
    if (paper[3] > 0.5 && lum(paper) > 0.4) problems.push(`figure ${i}: light paper ${paper}`);
    const back = paper[3] > 0.5 ? paper : behind(gd);
    for (const t of gd.querySelectorAll('.gtitle, .xtick text, .ytick text, .legendtext')) {
      const r = ratio(rgba(getComputedStyle(t).fill), back);
      if (r < 3) { problems.push(`figure ${i}: text "${t.textContent}" contrast ${r.toFixed(1)}`); break; }
    }
  });
  document.querySelectorAll('.cell_output caption').forEach(c => {
    const r = ratio(rgba(getComputedStyle(c).color), behind(c));
    if (r < 4.5) problems.push(`caption "${c.textContent.slice(0, 40)}" contrast ${r.toFixed(1)}`);
  });
  return problems;
}"""

# Sphinx cross-reference roles printed as text (a docstring shown with print()).
RAW_ROLES_JS = """() => [...document.querySelectorAll('.cell_output')]
  .map(o => (o.textContent.match(/:(?:func|class|meth|mod|data|attr|exc):`[^`]+`/) || [])[0])
  .filter(Boolean)"""


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


def desktop_problems(page: Page) -> list[str]:
    """At the desktop width: one search box and one sidebar toggle, not the pydata
    header's second set (which the theme's script binds instead of the visible one)."""
    counts = {sel: page.evaluate(_VISIBLE_JS, sel) for sel in (".search-button-field", ".primary-toggle")}
    return [f"{n} visible {sel} at {VIEWPORT['width']} px" for sel, n in counts.items() if n > 1]


def phone_problems(page: Page, screenshot: Path) -> list[str]:
    """At 390 px: the page is no wider than the screen, every figure fits its column
    without titles printed over each other, the visible sidebar toggle opens the chapter
    list and the page-outline toggle the outline (both <dialog>s). Saves a screenshot."""
    page.set_viewport_size(PHONE)
    try:  # plotly redraws responsive figures on the window's resize event
        page.wait_for_function(f"() => ({PHONE_JS})().wide_figures.length === 0", timeout=5_000)
    except PlaywrightTimeout:
        pass
    layout = page.evaluate(PHONE_JS)
    problems = [f"figures wider than their column: {layout['wide_figures']} px"] if layout["wide_figures"] else []
    problems += [f"titles overprinted: {t}" for t in layout["overprinted"]]
    if layout["page_width"] > PHONE["width"]:
        problems.append(f"page {layout['page_width']} px wide on a {PHONE['width']} px screen")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=screenshot, full_page=True, quality=60)
    toggles = [t for t in page.query_selector_all("button.primary-toggle") if t.is_visible()]
    if len(toggles) != 1:
        return [*problems, f"{len(toggles)} visible sidebar toggles"]
    if not opens(page, toggles[0], "#pst-primary-sidebar-modal[open] a.reference"):
        problems.append("the sidebar toggle does not open the chapter list")
    outline = [t for t in page.query_selector_all("button.secondary-toggle") if t.is_visible()]
    # pages with sections: the page-outline toggle opens their list
    if outline and not opens(page, outline[0], "#pst-secondary-sidebar-modal[open] a"):
        problems.append("the page-outline toggle does not open the outline")
    return problems


def opens(page: Page, toggle, dialog: str) -> bool:
    """Whether clicking ``toggle`` shows ``dialog`` (a selector) within 3 s; closes it."""
    toggle.click()
    try:
        page.wait_for_selector(dialog, timeout=3_000)
        return True
    except PlaywrightTimeout:
        return False
    finally:
        page.keyboard.press("Escape")


def dark_problems(page: Page, screenshot: Path) -> list[str]:
    """In the dark theme (as its switch sets it): no figure is a light panel, and figure
    text and table captions keep their contrast. Saves a screenshot."""
    page.evaluate("document.documentElement.dataset.theme = 'dark'")
    try:
        page.wait_for_function(DARK_READY_JS, timeout=5_000)
    except PlaywrightTimeout:
        pass
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=screenshot, full_page=True, quality=60)
    return page.evaluate(CONTRAST_JS)


def weight_problems(path: Path, status: dict) -> list[str]:
    """plotly.js (4.8 MB) only on pages with a figure, the widget manager (3.5 MB) only on
    pages with a widget: the two bundles a page should not load for nothing."""
    scripts = page_scripts(path)
    problems = []
    for bundle, needed in (("plotly", status["plots"] > 0), ("widgets", status["widget_views"] > 0)):
        if scripts.loads(bundle) != needed:
            problems.append(f"{bundle} {'not ' if needed else ''}loaded, page has {status}")
    return problems


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

        assert not page.evaluate(RAW_ROLES_JS), f"outputs show raw Sphinx roles: {page.evaluate(RAW_ROLES_JS)}"
        assert not (problems := desktop_problems(page)), f"desktop layout: {problems}"
        assert not (problems := weight_problems(built_html / f"{chapter}.html", status)), problems
        name = f"{Path(chapter).name}.jpg"
        assert not (problems := phone_problems(page, SCREENSHOTS / "phone" / name)), f"at 390 px: {problems}"
        assert not (problems := dark_problems(page, SCREENSHOTS / "dark" / name)), f"dark theme: {problems}"

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
            layout = [*desktop_problems(page), *weight_problems(path, status)]
            if path == paths[0]:  # one API page as a phone shows it and in the dark theme
                layout += phone_problems(page, SCREENSHOTS / "phone" / "api" / f"{path.stem}.jpg")
                layout += dark_problems(page, SCREENSHOTS / "dark" / "api" / f"{path.stem}.jpg")
        finally:
            page.context.close()
        issues = [
            *layout,
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
