"""A static website of the series that needs no network: each notebook as HTML with its committed
outputs, an index, and every script the pages load copied next to them.

Rendered by nbconvert's HTML exporter with the JupyterLab ("lab") template, nothing re-executed:
figures are the committed PNG outputs, inlined as ``data:`` URIs; a notebook that saved its widget
state (``metadata.widgets``) gets it embedded, with a note on each widget that it is a static
snapshot. MathJax (SVG output, so no web fonts), require.js and the ipywidgets HTML manager are
installed with ``npm ci`` from the lockfile in ``site_assets/`` into ``build/site-npm/`` (never
committed, never fetched from a CDN) and copied into ``_static/`` beside the pages, with a
``_static/VENDORED.json`` listing each file's package, version, size and SHA-256. A page that would
still reference a web resource (``src="https://..."``) is refused. Solution cells are folded into a
"click to show" box. Each page has prev / index / next links at its top and bottom; the index page
lists the notebooks by the titles of their first headings and links each page, the notebook file
and its student copy (:mod:`pooltools.tools.student`).
Run ``python -m pooltools.tools.site [--out build/site]`` (or ``make site``).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import html
import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import nbformat
from nbconvert import HTMLExporter
from nbformat import NotebookNode

from pooltools.atomic import atomic_write, write_json_atomic, write_text_atomic
from pooltools.tools.student import notebook_paths, student_copy, write_notebook

__all__ = [
    "notebook_title",
    "VENDORED",
    "external_resources",
    "hidden_widgets",
    "build_site",
    "main",
]

SITE_TITLE = "pooling-explained"
SITE_TAGLINE = (
    "What <code>torch.nn.MaxPool2d</code> does and why CNNs use it: a notebook series in which"
    " every claim is shown, measured and tested against PyTorch itself."
)
FULL_DIR, STUDENT_DIR = "notebooks", "student"
ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = ROOT / "notebooks"
ASSETS_SPEC = Path(__file__).resolve().with_name("site_assets")  # package.json + lockfile
NPM_DIR = ROOT / "build" / "site-npm"  # where `npm ci` installs them (gitignored)
STATIC = "_static"
REQUIRE_JS = f"{STATIC}/requirejs/require.js"
MATHJAX_JS = f"{STATIC}/mathjax/tex-svg-full.js"
WIDGETS_JS = f"{STATIC}/html-manager/embed-amd.js"
COLAB_BADGE_URL = "https://colab.research.google.com/assets/colab-badge.svg"
COLAB_BADGE = f"{STATIC}/colab-badge.svg"
MANIFEST = f"{STATIC}/VENDORED.json"
WIDGET_NOTE = (
    "Static snapshot of a widget from the run: it shows the state it was saved in, and moving"
    " its controls recomputes nothing here. Run the notebook in Jupyter (or Colab) to use it."
)


@dataclass(frozen=True)
class Vendored:
    """Files of an npm ``package`` (``pattern``, a glob inside it) copied into ``_static/dest``."""

    package: str
    pattern: str
    dest: str


VENDORED = (
    Vendored("requirejs", "require.js", "requirejs"),
    Vendored("mathjax", "es5/tex-svg-full.js", "mathjax"),
    Vendored("mathjax", "LICENSE", "mathjax"),
    Vendored("@jupyter-widgets/html-manager", "dist/embed-amd.js", "html-manager"),
    Vendored("@jupyter-widgets/html-manager", "dist/embed.js.LICENSE.txt", "html-manager"),
    # Font Awesome, which the widget CSS loads from the script's own folder (webpack assets)
    *(Vendored("@jupyter-widgets/html-manager", f"dist/*.{ext}", "html-manager")
      for ext in ("woff2", "woff", "ttf", "eot", "svg")),  # fmt: skip
)

# An "Open in Colab" badge drawn here, so the pages need not fetch Colab's (same look, local file).
COLAB_BADGE_SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="117" height="20" role="img"
 aria-label="Open in Colab"><title>Open in Colab</title>
<rect width="117" height="20" rx="3" fill="#555"/><rect x="24" width="93" height="20" rx="3"
 fill="#f9ab00"/><rect x="24" width="6" height="20" fill="#f9ab00"/>
<circle cx="9" cy="10" r="4.5" fill="none" stroke="#f9ab00" stroke-width="2.2"/>
<circle cx="16" cy="10" r="4.5" fill="none" stroke="#e8710a" stroke-width="2.2"/>
<text x="70" y="14" fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11"
 text-anchor="middle">Open in Colab</text></svg>
"""

# The lab template with every script local: require.js and the widget renderer via the
# exporter's URL settings, MathJax 3 (SVG output, configured like nbconvert's MathJax 2: $...$,
# $$...$$, \(...\), \[...\], AMS numbering) here, no mermaid loader (build_site refuses
# diagrams). Navigation at the top and bottom of <main>, a note above each widget, and each
# `solution` cell (collapsed in JupyterLab) folded into a <details> that the reader opens.
PAGE_TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js_mathjax -%}
<script>
window.MathJax = {
  tex: {inlineMath: [['$', '$'], ['\\(', '\\)']], displayMath: [['$$', '$$'], ['\\[', '\\]']],
        processEscapes: true, processEnvironments: true, tags: 'ams'},
  svg: {fontCache: 'global'},
  options: {menuOptions: {settings: {assistiveMml: false}}},
  startup: {ready: function () {
    MathJax.startup.defaultReady();
    // ipywidgets typesets its labels with MathJax 2's MathJax.Hub.Queue: route that to MathJax 3
    MathJax.Hub = {Queue: function () {
      for (const job of arguments) {
        if (Array.isArray(job) && job[0] === 'Typeset') {
          MathJax.startup.promise = MathJax.startup.promise
            .then(() => MathJax.typesetPromise(job[2] ? [job[2]] : undefined));
        }
      }
    }};
  }}
};
</script>
<script id="MathJax-script" src="{{ resources.pooltools.mathjax }}"></script>
{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block extra_css %}{{ super() }}<style>{{ resources.pooltools.css }}</style>{% endblock %}
{%- block body_header -%}{{ super() }}{{ resources.pooltools.nav }}{%- endblock body_header -%}
{% block body_footer %}{{ resources.pooltools.nav }}{{ super() }}{% endblock body_footer %}
{%- block data_widget_view scoped -%}
<div class="pooltools-widget">
<p class="pooltools-widget-note" role="note">{{ resources.pooltools.widget_note }}</p>
{{ super() }}
</div>
{%- endblock data_widget_view -%}
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
.jupyter-widgets { --jp-widgets-font-family: system-ui, sans-serif; }
.pooltools-widget { flex: 1 1 auto; min-width: 0; display: flex; flex-direction: column; }
.pooltools-widget-note { margin: 0.4em 0 0.2em 0; padding: 0.3em 0.6em; font-size: 13px;
  font-family: system-ui, sans-serif; color: #57606a; background: #fff8c5;
  border-left: 3px solid #d4a72c; }
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
        template_name="lab", template_file="pooltools_page.html.j2", extra_loaders=[loader],
        require_js_url=REQUIRE_JS, widget_renderer_url=WIDGETS_JS,
    )  # fmt: skip


EXTERNAL = re.compile(
    r"""<(?:img|script|link|iframe|source|video|audio|embed)\b[^>]*?\b(?:src|href)"""
    r"""=["']?((?:https?:)?//[^"'\s>]+)""",
    re.I,
)


def external_resources(page: str) -> list[str]:
    """Web URLs that a page's HTML would fetch by itself (``<img src>``, ``<script src>``,
    ``<link href>``...); plain ``<a href>`` links are not fetched and not listed."""
    return EXTERNAL.findall(page)


WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def hidden_widgets(nb: NotebookNode) -> set[str]:
    """Model ids of the widget outputs whose saved layout hides them (``display: none`` or
    ``visibility: hidden``, e.g. a finished ``tqdm(leave=False)`` bar): they show nothing."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    hidden = set()
    for model_id, model in state.items():
        layout_ref = model.get("state", {}).get("layout")
        if not isinstance(layout_ref, str):
            continue
        layout = state.get(layout_ref.removeprefix("IPY_MODEL_"), {}).get("state", {})
        if layout.get("display") == "none" or layout.get("visibility") == "hidden":
            hidden.add(model_id)
    return hidden


def _drop_hidden_widgets(nb: NotebookNode) -> None:
    hidden = hidden_widgets(nb)
    for cell in nb.cells:
        if "outputs" in cell:
            cell.outputs = [o for o in cell.outputs
                            if o.get("data", {}).get(WIDGET_VIEW, {}).get("model_id") not in hidden]  # fmt: skip


def render_page(nb: NotebookNode, pages: Sequence[Page], i: int) -> str:
    """Page ``i`` as HTML: committed outputs as they are, navigation, links to sibling
    notebooks (``02_x.ipynb``) pointed at their pages (``02_x.html``), the Colab badge image
    replaced by the local copy, widget outputs hidden by their own layout left out (a note
    above nothing would confuse). Raises ``ValueError`` for a mermaid diagram (it would need a
    script that is not vendored) or any other web resource left on the page."""
    nb = copy.deepcopy(nb)
    _drop_hidden_widgets(nb)
    nb.metadata["title"] = f"{pages[i].title} · {SITE_TITLE}"
    resources = {
        "metadata": {"name": pages[i].source.stem},
        "pooltools": {"nav": nav_html(pages, i), "css": NAV_CSS, "mathjax": MATHJAX_JS,
                      "widget_note": html.escape(WIDGET_NOTE)},  # fmt: skip
    }
    body, _ = _exporter().from_notebook_node(nb, resources=resources)
    for page in pages:
        body = body.replace(f'href="{page.source.name}', f'href="{page.html_name}')
    body = body.replace(f'src="{COLAB_BADGE_URL}"', f'src="{COLAB_BADGE}"')
    name = pages[i].source.name
    if 'class="jp-Mermaid"' in body:
        raise ValueError(
            f"{name} has a mermaid diagram, but the offline site ships no mermaid renderer; "
            "draw it as a figure (a PNG output) instead"
        )
    external = external_resources(body)
    if external:
        raise ValueError(f"{name} would load {external} from the web; the site must work offline")
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


def _digest(*paths: Path) -> str:
    sha = hashlib.sha256()
    for path in paths:
        sha.update(path.read_bytes())
    return sha.hexdigest()


def install_npm_assets(npm_dir: str | Path = NPM_DIR, spec: str | Path = ASSETS_SPEC) -> Path:
    """``npm ci`` the pinned packages of ``spec`` (``package.json`` + ``package-lock.json``)
    into ``npm_dir``; return its ``node_modules``. Skipped when the installed tree came from the
    same two files. Raises ``RuntimeError`` when npm is missing or the install fails."""
    npm_dir, spec = Path(npm_dir), Path(spec)
    files = [spec / "package.json", spec / "package-lock.json"]
    digest = _digest(*files)
    stamp, modules = npm_dir / ".installed-from-lock", npm_dir / "node_modules"
    if modules.is_dir() and stamp.is_file() and stamp.read_text().strip() == digest:
        return modules
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            "npm not found: the site copies MathJax, require.js and the widget renderer from npm "
            f"packages pinned in {spec}; install Node.js with npm (e.g. apt-get install npm)"
        )
    npm_dir.mkdir(parents=True, exist_ok=True)
    for path in files:
        write_text_atomic(npm_dir / path.name, path.read_text("utf-8"))
    cmd = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
    done = subprocess.run(cmd, cwd=npm_dir, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"`npm ci` in {npm_dir} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    write_text_atomic(stamp, digest + "\n")
    return modules


def _copy_atomic(source: Path, target: Path) -> Path:
    with source.open("rb") as src:
        return atomic_write(target, lambda dst: shutil.copyfileobj(src, dst))


def copy_assets(node_modules: str | Path, out: str | Path) -> list[dict[str, Any]]:
    """Copy the :data:`VENDORED` files from ``node_modules`` into ``out/_static/`` and write
    ``_static/VENDORED.json``: for each file its path, npm package@version, size and SHA-256."""
    node_modules, out = Path(node_modules), Path(out)
    manifest = []
    for item in VENDORED:
        package_dir = node_modules / item.package
        version = json.loads((package_dir / "package.json").read_text("utf-8"))["version"]
        sources = sorted(package_dir.glob(item.pattern))
        if not sources:
            raise FileNotFoundError(f"{item.package}@{version} has no {item.pattern}")
        for source in sources:
            target = out / STATIC / item.dest / source.name
            _copy_atomic(source, target)
            manifest.append({
                "file": target.relative_to(out).as_posix(),
                "source": f"{item.package}@{version}/{source.relative_to(package_dir).as_posix()}",
                "bytes": target.stat().st_size,
                "sha256": _digest(target),
            })  # fmt: skip
    write_text_atomic(out / COLAB_BADGE, COLAB_BADGE_SVG)
    write_json_atomic(out / MANIFEST, {"about": "files copied from npm by pooltools.tools.site",
                                       "files": manifest})  # fmt: skip
    return manifest


def build_site(
    notebooks: Sequence[str | Path] | None = None,
    out: str | Path = "build/site",
    npm_dir: str | Path = NPM_DIR,
) -> list[Path]:
    """Render the site into ``out``; return the notebook pages written, in order.

    ``out`` gets ``index.html``, ``NN_name.html`` per notebook, ``_static/`` (the vendored
    scripts, installed into ``npm_dir`` by :func:`install_npm_assets`), and the notebook files
    in ``notebooks/`` (as committed) and ``student/`` (student copies). Pages of notebooks that
    no longer exist are removed.
    """
    sources = notebook_paths(NOTEBOOKS_DIR) if notebooks is None else [Path(p) for p in notebooks]
    if not sources:
        raise FileNotFoundError("no notebooks to render (expected NN_name.ipynb files)")
    out = Path(out)
    pages = plan_pages(sources)
    rendered = [render_page(nbformat.read(p.source, as_version=4), pages, i)
                for i, p in enumerate(pages)]  # fmt: skip  (all checked before anything is written)
    copy_assets(install_npm_assets(npm_dir), out)
    written = []
    for page, text in zip(pages, rendered, strict=True):
        written.append(write_text_atomic(out / page.html_name, text))
        write_text_atomic(out / FULL_DIR / page.source.name, page.source.read_text("utf-8"))
        nb = nbformat.read(page.source, as_version=4)
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
        prog="python -m pooltools.tools.site",
        description="Render the notebooks (committed outputs, no re-execution) to a static site "
        "that works offline.",
    )
    parser.add_argument("--out", default="build/site", help="output folder (build/site)")
    parser.add_argument("--npm-dir", default=str(NPM_DIR),
                        help="where npm installs the vendored scripts (build/site-npm)")  # fmt: skip
    parser.add_argument("notebooks", nargs="*", help="notebooks to render (default: the series)")
    args = parser.parse_args(argv)
    pages = build_site(args.notebooks or None, args.out, args.npm_dir)
    print(f"wrote {len(pages)} pages and {Path(args.out) / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
