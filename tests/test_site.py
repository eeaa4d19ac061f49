"""The static site: a page per notebook with its committed figures and widget state, solutions
folded, prev / index / next navigation, and an index; every link resolves to a file."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from nbconvert import HTMLExporter

from pooltools.tools import site, student

NOTEBOOKS = student.notebook_paths(site.NOTEBOOKS_DIR)
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class _Tags(HTMLParser):
    """Collects the attributes of every <a>, <img>, <nav> and <details> of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.in_nav = 0
        self.nav_links: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attrs))
        if tag == "nav" and "pooltools-nav" in attrs.get("class", ""):
            self.in_nav += 1
            self.nav_links.append("|")  # separates the bars
        elif tag == "a" and self.in_nav:
            self.nav_links.append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "nav" and self.in_nav:
            self.in_nav -= 1

    def all(self, tag: str) -> list[dict[str, str]]:
        return [attrs for t, attrs in self.tags if t == tag]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    pages = site.build_site(out=out)
    assert [p.name for p in pages] == [nb.with_suffix(".html").name for nb in NOTEBOOKS]
    return out


def _png_outputs(nb) -> int:
    """Outputs that nbconvert's HTML exporter shows as a PNG: image/png is the first of its
    display priorities that the output has."""
    priority = HTMLExporter().default_config.NbConvertBase.display_data_priority
    count = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            shown = next((t for t in priority if t in out.get("data", {})), None)
            count += shown == "image/png"
    return count


def _local_links(page: Path, hrefs: list[str]) -> list[Path]:
    """The files that relative links point to (fragments dropped; web and in-page links skipped)."""
    targets = []
    for href in hrefs:
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#", href) or not href:
            continue
        targets.append((page.parent / href.split("#")[0]).resolve())
    return targets


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_page_has_every_committed_figure(built, nb_path):
    page = built / nb_path.with_suffix(".html").name
    assert page.is_file()
    nb = nbformat.read(nb_path, as_version=4)
    imgs = _Tags(page.read_text("utf-8")).all("img")
    pngs = [a for a in imgs if a.get("src", "").startswith("data:image/png;base64,")]
    assert len(pngs) == _png_outputs(nb), "every PNG output, inlined, and no other"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_page_embeds_the_saved_widget_state(built, nb_path):
    text = (built / nb_path.with_suffix(".html").name).read_text("utf-8")
    nb = nbformat.read(nb_path, as_version=4)
    views = [o.data[WIDGET_VIEW]["model_id"] for c in nb.cells for o in c.get("outputs", [])
             if WIDGET_VIEW in o.get("data", {})]  # fmt: skip
    saved = nb.metadata.get("widgets", {}).get(WIDGET_STATE)
    embedded = re.findall(rf'<script type="{re.escape(WIDGET_STATE)}">(.*?)</script>', text, re.S)
    if saved is None:
        assert not embedded and not views, "widget outputs but no saved state to show them"
        return
    assert len(embedded) == 1
    state = json.loads(embedded[0].replace("<\\/", "</"))  # a <script> body is not HTML-decoded
    assert state == json.loads(json.dumps(saved)), "the page embeds the notebook's saved state"
    assert set(views) <= set(state["state"]), "a widget output whose model was not saved"
    shown = [v for v in views if v not in site.hidden_widgets(nb)]
    assert len(shown) == text.count(f'<script type="{WIDGET_VIEW}">')
    assert len(shown) == text.count('class="pooltools-widget-note"'), "a note on each widget"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_solutions_are_folded(built, nb_path):
    tags = _Tags((built / nb_path.with_suffix(".html").name).read_text("utf-8"))
    folded = [a for a in tags.all("details") if "pooltools-solution" in a.get("class", "")]
    nb = nbformat.read(nb_path, as_version=4)
    assert len(folded) == sum(student.is_solution(c) for c in nb.cells)


def test_navigation_goes_prev_index_next_at_top_and_bottom(built):
    names = [nb.with_suffix(".html").name for nb in NOTEBOOKS]
    for i, name in enumerate(names):
        page = built / name
        tags = _Tags(page.read_text("utf-8"))
        expected = ([names[i - 1]] if i else []) + ["index.html"]
        expected += [names[i + 1]] if i + 1 < len(names) else []
        assert tags.nav_links == ["|", *expected] * 2, f"{name}: top and bottom bars"
        for target in _local_links(page, [h for h in tags.nav_links if h != "|"]):
            assert target.is_file(), f"{name} links to missing {target}"


def test_index_lists_every_notebook_by_its_first_heading(built):
    index = built / "index.html"
    tags = _Tags(index.read_text("utf-8"))
    hrefs = [a["href"] for a in tags.all("a")]
    pages = [h for h in hrefs if h.endswith(".html")]
    assert pages == [nb.with_suffix(".html").name for nb in NOTEBOOKS]
    for nb_path in NOTEBOOKS:
        title = site.notebook_title(nbformat.read(nb_path, as_version=4), "")
        assert title and f">{html.escape(title)}</a>" in index.read_text("utf-8")
    targets = _local_links(index, hrefs)
    assert len(targets) == 3 * len(NOTEBOOKS)  # page, full notebook, student copy
    missing = [t for t in targets if not t.is_file()]
    assert not missing, f"index links to missing files: {missing}"


def test_every_relative_link_on_every_page_resolves(built):
    for page in built.glob("*.html"):
        hrefs = [a.get("href", "") for a in _Tags(page.read_text("utf-8")).all("a")]
        missing = [t for t in _local_links(page, hrefs) if not t.is_file()]
        assert not missing, f"{page.name} links to missing files: {missing}"


def test_downloads_are_the_committed_notebook_and_its_student_copy(built):
    for nb_path in NOTEBOOKS:
        assert (built / "notebooks" / nb_path.name).read_bytes() == nb_path.read_bytes()
        copy = nbformat.read(built / "student" / nb_path.name, as_version=4)
        assert not any(student.is_solution(c) for c in copy.cells)


# --------------------------------------------------------------------------- small examples


@pytest.mark.parametrize(
    ("source", "title"),
    [
        ("# 1 · What max pooling does\n\ntext", "1 · What max pooling does"),
        ("Intro\n\n## `F.max_pool2d` and [nn](https://x.org) ##", "F.max_pool2d and nn"),
        ("no heading here", "fallback"),
    ],
)
def test_notebook_title_by_hand(source, title):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(source)])
    assert site.notebook_title(nb, "fallback") == title


def test_sibling_links_and_stale_pages(tmp_path):
    """A markdown link to a sibling .ipynb points at its page; a removed notebook's page goes."""
    v4 = nbformat.v4
    src = tmp_path / "src"
    src.mkdir()
    first = v4.new_notebook(cells=[v4.new_markdown_cell("# A\n\nOn to [B](02_b.ipynb#top).")])
    nbformat.write(first, src / "01_a.ipynb")
    nbformat.write(v4.new_notebook(cells=[v4.new_markdown_cell("# B")]), src / "02_b.ipynb")
    out = tmp_path / "site"
    site.main(["--out", str(out), str(src / "01_a.ipynb"), str(src / "02_b.ipynb")])
    hrefs = [a["href"] for a in _Tags((out / "01_a.html").read_text("utf-8")).all("a")]
    assert "02_b.html#top" in hrefs and "02_b.ipynb#top" not in hrefs
    site.build_site([src / "01_a.ipynb"], out)
    assert sorted(p.name for p in out.rglob("*") if p.is_file() and site.STATIC not in p.parts) == [
        "01_a.html", "01_a.ipynb", "01_a.ipynb", "index.html"]  # fmt: skip
    assert _Tags((out / "01_a.html").read_text("utf-8")).nav_links == ["|", "index.html"] * 2


def test_build_site_refuses_an_empty_series(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no notebooks to render"):
        site.build_site([], out=tmp_path)


# --------------------------------------------------------------------------- offline


_RESOURCE = re.compile(r"""<(?:img|script|link)\b[^>]*?\b(?:src|href)=["']([^"']+)["']""", re.I)


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_page_loads_only_files_beside_it(built, nb_path):
    """No CDN: every script, stylesheet and image the page fetches is a file of the site (or
    a data: URI); the browser test (test_site_offline.py) checks the same in Chromium."""
    page = built / nb_path.with_suffix(".html").name
    text = page.read_text("utf-8")
    assert site.external_resources(text) == []
    assert not re.search(r"cdnjs|unpkg\.com|jsdelivr", text.split("application/vnd.jupyter")[0])
    refs = [r for r in _RESOURCE.findall(text) if not r.startswith("data:")]
    for ref in refs:
        assert (page.parent / ref).is_file(), f"{page.name} loads missing {ref}"
    assert (site.MATHJAX_JS in refs) and (site.REQUIRE_JS in refs)


def test_colab_badge_is_drawn_locally(tmp_path):
    v4 = nbformat.v4
    badge = f"[![Open In Colab]({site.COLAB_BADGE_URL})](https://colab.research.google.com/x)"
    nbformat.write(v4.new_notebook(cells=[v4.new_markdown_cell(f"# A\n\n{badge}")]),
                   tmp_path / "01_a.ipynb")  # fmt: skip
    site.build_site([tmp_path / "01_a.ipynb"], tmp_path / "site")
    text = (tmp_path / "site" / "01_a.html").read_text("utf-8")
    assert f'src="{site.COLAB_BADGE}"' in text and site.COLAB_BADGE_URL not in text
    assert (tmp_path / "site" / site.COLAB_BADGE).read_text().startswith("<svg")


@pytest.mark.parametrize(
    ("markdown", "message"),
    [
        ("```mermaid\ngraph TD; A-->B\n```", r"mermaid diagram"),
        ("![x](https://example.org/x.png)", r"would load \['https://example.org/x.png'\]"),
    ],
)
def test_pages_that_need_the_web_are_refused(tmp_path, markdown, message):
    v4 = nbformat.v4
    nbformat.write(v4.new_notebook(cells=[v4.new_markdown_cell(f"# A\n\n{markdown}")]),
                   tmp_path / "01_a.ipynb")  # fmt: skip
    with pytest.raises(ValueError, match=message):
        site.build_site([tmp_path / "01_a.ipynb"], tmp_path / "site")
    assert not (tmp_path / "site").exists(), "nothing written"


def test_hidden_widgets_are_left_out():
    v4 = nbformat.v4
    state = {"w": {"model_name": "HBoxModel", "state": {"layout": "IPY_MODEL_l"}},
             "l": {"model_name": "LayoutModel", "state": {"visibility": "hidden"}},
             "v": {"model_name": "HBoxModel", "state": {"layout": "IPY_MODEL_m"}},
             "m": {"model_name": "LayoutModel", "state": {"display": None}}}  # fmt: skip
    nb = v4.new_notebook(metadata={"widgets": {WIDGET_STATE: {"state": state}}})
    assert site.hidden_widgets(nb) == {"w"}
