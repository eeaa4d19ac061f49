"""A static website of the series: each notebook as HTML with its committed outputs, an index.

Rendered by nbconvert's HTML exporter with the JupyterLab ("lab") template, nothing re-executed:
figures are the committed PNG outputs, inlined as ``data:`` URIs, and a notebook that saved its
widget state (``metadata.widgets``) gets it embedded, so its widgets show their saved view (the
widget renderer script itself loads from a CDN). Solution cells are folded into a "click to show"
box. Each page has prev / index / next links at its top and bottom; the index page lists the
notebooks by the titles of their first headings and links each page, the notebook file and its
student copy (:mod:`pooltools.student`).
Run ``python -m pooltools.site [--out build/site]`` (or ``make site``).
"""

from __future__ import annotations

import argparse
import copy
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
import nbformat
from nbconvert import HTMLExporter
from nbformat import NotebookNode

from pooltools.atomic import write_text_atomic
from pooltools.student import notebook_paths, student_copy, write_notebook

__all__ = [
    "SITE_TITLE",
    "Page",
    "notebook_title",
    "plan_pages",
    "nav_html",
    "render_page",
    "index_html",
    "build_site",
    "main",
]

SITE_TITLE = "pooling-explained"
SITE_TAGLINE = (
    "What <code>torch.nn.MaxPool2d</code> does and why CNNs use it: a notebook series in which"
    " every claim is shown, measured and tested against PyTorch itself."
)
FULL_DIR, STUDENT_DIR = "notebooks", "student"

# The lab template, plus navigation at the top and bottom of <main>, and each `solution` cell
# (collapsed in JupyterLab) folded into a <details> that the reader opens, as in the notebook.
PAGE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block extra_css %}{{ super() }}<style>{{ resources.pooltools.css }}</style>{% endblock %}
{%- block body_header -%}{{ super() }}{{ resources.pooltools.nav }}{%- endblock body_header -%}
{% block body_footer %}{{ resources.pooltools.nav }}{{ super() }}{% endblock body_footer %}
{% block codecell %}
{%- if "solution" in cell.metadata.get("tags", []) -%}
<details class="pooltools-solution"><summary>Solution (click to show)</summary>{{ super() }}</details>
{%- else -%}{{ super() }}{%- endif -%}
{% endblock codecell %}
"""
NAV_CSS = """
.pooltools-nav { display: flex; justify-content: space-between; gap: 1em; margin: 0.5em 0;
  padding: 0.6em 0.8em; border: 1px solid #d0d7de; border-radius: 6px; background: #f6f8fa;
  font-family: system-ui, sans-serif; font-size: 14px; }
.pooltools-nav > * { flex: 1; } .pooltools-nav .index { text-align: center; }
.pooltools-nav .next { text-align: right; }
.pooltools-solution { margin: 0.5em 0 1em 0; }
.pooltools-solution > summary { cursor: pointer; padding: 0.3em 0; color: #0550ae;
  margin-left: calc(var(--jp-cell-prompt-width, 64px) + 22px);  /* level with the text */
  font-family: system-ui, sans-serif; font-size: 14px; }
"""
INDEX_CSS = """
body { font-family: system-ui, sans-serif; max-width: 52em; margin: 2em auto; padding: 0 1em;
  color: #1f2328; line-height: 1.5; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left;
  padding: 0.4em 0.6em; border-bottom: 1px solid #d0d7de; } th { background: #f6f8fa; }
code { background: #f6f8fa; padding: 0 0.2em; border-radius: 3px; }
"""
HEADING = re.compile(r"^[ ]{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Page:
    """One notebook of the site: its ``source`` file, ``number`` (from ``NN_``) and ``title``."""

    source: Path
    number: int
    title: str

    @property
    def html_name(self) -> str:
        """The page's file name: ``01_what_is_max_pooling.html``."""
        return self.source.with_suffix(".html").name


def _plain(markdown: str) -> str:
    """Inline markdown to plain text: links to their text, code/emphasis markers dropped."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", markdown).replace("`", "")
    for marker in (r"\*\*", r"__", r"\*", r"_"):  # emphasis, but not the _ inside max_pool2d
        text = re.sub(rf"(?<![\w*]){marker}(\S(?:.*?\S)?){marker}(?![\w*])", r"\1", text)
    return text.strip()


def notebook_title(nb: NotebookNode, fallback: str) -> str:
    """The text of the notebook's first markdown heading, or ``fallback`` when it has none."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = HEADING.search(cell.source)
            if match:
                return _plain(match.group(1))
    return fallback


def plan_pages(notebooks: Sequence[str | Path]) -> list[Page]:
    """A :class:`Page` for each notebook, with the title read from the file."""
    pages = []
    for path in map(Path, notebooks):
        nb = nbformat.read(path, as_version=4)
        number = int(path.name[:2]) if path.name[:2].isdigit() else len(pages) + 1
        pages.append(Page(path, number, notebook_title(nb, path.stem)))
    return pages


def nav_html(pages: Sequence[Page], i: int) -> str:
    """The prev / index / next bar of page ``i`` (an empty cell where there is no neighbour)."""

    def link(page: Page, cls: str, text: str) -> str:
        return f'<a class="{cls}" rel="{cls}" href="{page.html_name}">{text}</a>'

    prev = link(pages[i - 1], "prev", f"← {html.escape(pages[i - 1].title)}") if i else ""
    has_next = i + 1 < len(pages)
    nxt = link(pages[i + 1], "next", f"{html.escape(pages[i + 1].title)} →") if has_next else ""
    return (
        '<nav class="pooltools-nav" aria-label="notebooks">'
        f"{prev or '<span class=prev></span>'}"
        '<a class="index" href="index.html">All notebooks</a>'
        f"{nxt or '<span class=next></span>'}</nav>"
    )


def _exporter() -> HTMLExporter:
    loader = jinja2.DictLoader({"pooltools_page.html.j2": PAGE_TEMPLATE})
    return HTMLExporter(
        template_name="lab", template_file="pooltools_page.html.j2", extra_loaders=[loader]
    )


def render_page(nb: NotebookNode, pages: Sequence[Page], i: int) -> str:
    """Page ``i`` as HTML: committed outputs as they are, navigation, links to sibling
    notebooks (``02_x.ipynb``) pointed at their pages (``02_x.html``)."""
    nb = copy.deepcopy(nb)
    nb.metadata["title"] = f"{pages[i].title} · {SITE_TITLE}"
    resources = {
        "metadata": {"name": pages[i].source.stem},
        "pooltools": {"nav": nav_html(pages, i), "css": NAV_CSS},
    }
    body, _ = _exporter().from_notebook_node(nb, resources=resources)
    for page in pages:
        body = body.replace(f'href="{page.source.name}', f'href="{page.html_name}')
    return body


def index_html(pages: Sequence[Page]) -> str:
    """The index page: title, tagline and the table of notebooks with their links."""
    rows = "\n".join(
        f"<tr><td>{p.number}</td>"
        f'<td><a href="{p.html_name}">{html.escape(p.title)}</a></td>'
        f'<td><a href="{FULL_DIR}/{p.source.name}" download>full</a> · '
        f'<a href="{STUDENT_DIR}/{p.source.name}" download>student copy</a></td></tr>'
        for p in pages
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{SITE_TITLE}</title>
<style>{INDEX_CSS}</style>
</head>
<body>
<h1>{SITE_TITLE}</h1>
<p>{SITE_TAGLINE}</p>
<table>
<thead><tr><th>#</th><th>Notebook</th><th>Download (.ipynb)</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
<p>The pages show the committed outputs; nothing was re-run to make them. The student copies
have the exercise solutions taken out and no outputs.</p>
</body>
</html>
"""


def build_site(
    notebooks: Sequence[str | Path] | None = None, out: str | Path = "build/site"
) -> list[Path]:
    """Render the site into ``out``; return the notebook pages written, in order.

    ``out`` gets ``index.html``, ``NN_name.html`` per notebook, and the notebook files in
    ``notebooks/`` (as committed) and ``student/`` (student copies). Pages of notebooks that
    no longer exist are removed.
    """
    sources = notebook_paths() if notebooks is None else [Path(p) for p in notebooks]
    if not sources:
        raise FileNotFoundError("no notebooks to render (expected NN_name.ipynb files)")
    out = Path(out)
    pages = plan_pages(sources)
    written = []
    for i, page in enumerate(pages):
        nb = nbformat.read(page.source, as_version=4)
        written.append(write_text_atomic(out / page.html_name, render_page(nb, pages, i)))
        write_text_atomic(out / FULL_DIR / page.source.name, page.source.read_text("utf-8"))
        write_notebook(student_copy(nb, page.source.name), out / STUDENT_DIR / page.source.name)
    write_text_atomic(out / "index.html", index_html(pages))
    keep = {p.source.name for p in pages}
    stale = [p for p in out.glob("[0-9][0-9]_*.html") if p not in written]
    for folder in (FULL_DIR, STUDENT_DIR):
        stale += [p for p in notebook_paths(out / folder) if p.name not in keep]
    for path in stale:
        path.unlink()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pooltools.site",
        description="Render the notebooks (committed outputs, no re-execution) to a static site.",
    )
    parser.add_argument("--out", default="build/site", help="output folder (build/site)")
    parser.add_argument("notebooks", nargs="*", help="notebooks to render (default: the series)")
    args = parser.parse_args(argv)
    pages = build_site(args.notebooks or None, args.out)
    print(f"wrote {len(pages)} pages and {Path(args.out) / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
