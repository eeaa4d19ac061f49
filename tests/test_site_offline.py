"""The static site read offline in a real browser: no request leaves the machine and none fails.

Builds the site (``pooltools.tools.site``) into a temp folder, opens every page from ``file://`` in
Debian's Chromium (headless, through Playwright) with every non-``file:`` request aborted, and
checks that no request failed (an aborted one counts as failed), no script threw, the math is
typeset by the vendored MathJax (no raw ``$$`` left), every widget renders from its saved state
under its "static snapshot" note (with the figures its Output widgets saved), and the navigation
links lead where they say. Screenshots go to ``build/test-artifacts/site-*.png``.
Skipped only when Playwright or ``/usr/bin/chromium`` is missing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from pooltools.tools import site
from pooltools.tools.student import notebook_paths

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = notebook_paths(ROOT / "notebooks")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update"]  # fmt: skip
ARTIFACTS = ROOT / "build" / "test-artifacts"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
MATH = re.compile(r"\$\$.+?\$\$|(?<![\\$])\$[^$\s][^$]*?(?<![\\\s])\$", re.S)
TIMEOUT = 60_000  # ms

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


def _math_in_markdown(nb) -> int:
    return sum(len(MATH.findall(c.source)) for c in nb.cells if c.cell_type == "markdown")


def _widget_views(nb) -> int:
    """Widget outputs that show something (not hidden by their saved layout)."""
    hidden = site.hidden_widgets(nb)
    return sum(o["data"][WIDGET_VIEW]["model_id"] not in hidden
               for c in nb.cells for o in c.get("outputs", []) if WIDGET_VIEW in o.get("data", {}))  # fmt: skip


def _saved_widget_figures(nb) -> int:
    """PNG outputs that the notebook's Output widgets saved in its widget state."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    return sum("image/png" in out.get("data", {})
               for model in state.values() if model.get("model_name") == "OutputModel"
               for out in model.get("state", {}).get("outputs", []))  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    site.build_site(out=out)
    return out


class OfflineBrowser:
    """A Chromium page that may load only ``file:`` URLs; records what failed or threw."""

    def __init__(self, page) -> None:
        self.page = page
        self.failed: list[str] = []
        self.errors: list[str] = []
        page.route(re.compile(r"^(?!file:).*"), self._abort)
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url} ({r.failure})"))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _abort(self, route) -> None:
        route.abort("internetdisconnected")

    def open(self, path: Path) -> None:
        self.failed.clear()
        self.errors.clear()
        self.page.goto(path.as_uri(), wait_until="load")
        if path.name != "index.html":  # MathJax 3 typesets after load: wait until it is done
            self.page.wait_for_function(
                "window.MathJax && MathJax.startup && MathJax.startup.promise"
                " && MathJax.startup.promise.then(() => true)", timeout=TIMEOUT)  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = chromium.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(TIMEOUT)
            yield OfflineBrowser(page)
        finally:
            chromium.close()


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_page_renders_offline(built, browser, nb_path):
    expect, page = sync_api.expect, browser.page
    nb = nbformat.read(nb_path, as_version=4)
    html_page = built / nb_path.with_suffix(".html").name
    browser.open(html_page)

    views = _widget_views(nb)
    areas = page.locator("div.jupyter-widgets.jp-OutputArea-output")
    expect(areas).to_have_count(views)
    for i in range(views):  # the manager replaces each view's <script> with the rendered widget
        expect(areas.nth(i).locator(".jupyter-widgets.lm-Widget").first).to_be_visible()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"site-{nb_path.stem}.png"), full_page=True)

    assert not browser.failed, f"{html_page.name}: requests failed offline: {browser.failed}"
    assert not browser.errors, f"{html_page.name}: scripts threw: {browser.errors}"

    # Math: every formula typeset by MathJax, no TeX error, no raw $$ left in the text.
    formulas = _math_in_markdown(nb)
    typeset = page.locator(".jp-MarkdownOutput mjx-container")
    assert typeset.count() == formulas, f"{html_page.name}: {typeset.count()} of {formulas} typeset"
    assert page.locator("mjx-merror").count() == 0, "MathJax reported a TeX error"
    text = " ".join(page.locator(".jp-MarkdownOutput").all_inner_texts())
    assert "$$" not in text, f"{html_page.name}: raw $$ left on the page"

    # Widgets: each under its note, with a real size, and the figures saved with them shown.
    notes = page.locator(".pooltools-widget-note")
    expect(notes).to_have_count(views)
    for i in range(views):
        expect(notes.nth(i)).to_contain_text("Static snapshot")
        box = areas.nth(i).bounding_box()
        assert box and box["height"] > 20 and box["width"] > 100, f"widget {i} is blank: {box}"
    figures = areas.locator("img")
    assert figures.count() == _saved_widget_figures(nb)
    for i in range(figures.count()):  # decoded, not a broken-image icon
        assert figures.nth(i).evaluate("img => img.complete && img.naturalWidth > 0")
    if views:
        note_and_widget = page.locator(".pooltools-widget").first
        note_and_widget.scroll_into_view_if_needed()
        note_and_widget.screenshot(path=str(ARTIFACTS / f"site-{nb_path.stem}-widget.png"))


def test_navigation_links_lead_to_their_pages(built, browser):
    """From the index, open each notebook by its link, walk "next" to the end, then back to
    the index with "All notebooks"; every page is the one the link named."""
    page = browser.page
    names = [p.with_suffix(".html").name for p in NOTEBOOKS]
    titles = [site.notebook_title(nbformat.read(p, as_version=4), p.stem) for p in NOTEBOOKS]
    for name, title in zip(names, titles, strict=True):
        browser.open(built / "index.html")
        page.get_by_role("link", name=title, exact=True).click()
        page.wait_for_load_state("load")
        assert page.url.endswith(f"/{name}"), (title, page.url)
        assert page.title().startswith(title)
    browser.open(built / names[0])
    for name in names[1:]:
        page.locator("nav.pooltools-nav a[rel=next]").first.click()
        page.wait_for_load_state("load")
        assert page.url.endswith(f"/{name}")
    assert page.locator("nav.pooltools-nav a[rel=next]").count() == 0, "the last page has no next"
    page.locator("nav.pooltools-nav a.index").last.click()
    page.wait_for_load_state("load")
    assert page.url.endswith("/index.html")
    assert not browser.failed and not browser.errors, (browser.failed, browser.errors)


def test_vendored_files_are_listed_with_their_npm_source(built):
    manifest = json.loads((built / site.MANIFEST).read_text("utf-8"))["files"]
    on_disk = sorted(p.relative_to(built).as_posix() for p in (built / site.STATIC).rglob("*")
                     if p.is_file() and p.name not in ("VENDORED.json", "colab-badge.svg"))  # fmt: skip
    assert sorted(f["file"] for f in manifest) == on_disk
    for entry in manifest:
        assert re.match(r"^(@[\w.-]+/)?[\w.-]+@\d+\.\d+\.\d+/", entry["source"]), entry
        assert entry["bytes"] == (built / entry["file"]).stat().st_size > 0
