"""The top of every notebook, made from one place: the repository URL in ``pyproject.toml``.

Two parts, both generated here so they cannot drift apart between notebooks:

- an "Open in Colab" badge in the first markdown cell, right under its title, linking to the
  notebook on Colab (``colab.research.google.com/github/OWNER/REPO/blob/BRANCH/notebooks/NAME``);
- the setup cell (the code cell tagged ``setup``, identical in every notebook): it makes
  ``pooltools`` importable (nothing to do after ``make lab``; from a fresh clone it installs the
  clone; on Colab, with no clone, it clones the repository first, which brings the committed
  checkpoints along) and, on Colab, enables Colab's custom widget manager, which ipywidgets 8
  needs there to show widgets.

``python -m pooltools.tools.notebook_header notebooks/*.ipynb`` lists the notebooks whose header
is out of date (exit status 1 if any); with ``--apply`` it rewrites them (atomically, only the
ones that change; running it twice changes nothing the second time).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from pooltools.atomic import write_text_atomic

__all__ = [
    "repository_url",
    "badge_markdown",
    "setup_source",
    "with_header",
    "main",
]

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
BRANCH = "main"
SETUP_TAG = "setup"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_LINE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)[ \t]*\n?", re.MULTILINE)
GITHUB = re.compile(r"^https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?$")

SETUP_TEMPLATE = '''\
# Setup: make `pooltools` importable. After `make lab` this does nothing. Opened from a fresh clone
# without installing, it installs the clone; on Colab (no clone), it clones the repo first (the
# trained checkpoints come with it). On Colab it also turns on the widget manager ipywidgets needs.
import importlib.util
import pathlib
import subprocess
import sys

REPO_URL = "{url}"
try:
    from google.colab import output as colab_output
except ImportError:  # not on Colab
    colab_output = None
if colab_output is not None:
    colab_output.enable_custom_widget_manager()
if importlib.util.find_spec("pooltools") is None:
    here = pathlib.Path.cwd().resolve()
    root = next((p for p in (here, *here.parents) if (p / "pooltools" / "__init__.py").is_file()), None)
    if root is None:
        root = pathlib.Path.home() / "pooling-explained"
        if not root.exists():
            subprocess.check_call(["git", "clone", "--depth", "1", REPO_URL, str(root)])
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "-e", str(root)])
    sys.path.insert(0, str(root))  # a running kernel does not see the new install until restarted
    print(f"installed pooltools from {{root}}")'''


def repository_url(pyproject: str | Path = PYPROJECT) -> str:
    """``[project.urls] Repository`` of ``pyproject``: a ``https://github.com/OWNER/REPO`` URL."""
    with open(pyproject, "rb") as f:
        urls = tomllib.load(f).get("project", {}).get("urls", {})
    url = urls.get("Repository")
    if not isinstance(url, str) or not GITHUB.match(url):
        raise ValueError(
            f"{pyproject}: [project.urls] Repository must be https://github.com/OWNER/REPO "
            f"(Colab opens notebooks from GitHub), but got {url!r}"
        )
    return url


def colab_url(name: str, repo_url: str, branch: str = BRANCH) -> str:
    """The Colab address of ``notebooks/<name>`` in the GitHub repository ``repo_url``."""
    match = GITHUB.match(repo_url)
    if match is None:
        raise ValueError(f"repo_url must be https://github.com/OWNER/REPO, but got {repo_url!r}")
    owner, repo = match.groups()
    return f"https://colab.research.google.com/github/{owner}/{repo}/blob/{branch}/notebooks/{name}"


def badge_markdown(name: str, repo_url: str) -> str:
    """The "Open in Colab" badge of notebook ``name`` (a markdown image link)."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(name, repo_url)})"


def setup_source(repo_url: str) -> str:
    """The setup cell's source, cloning from ``repo_url`` on Colab."""
    if '"' in repo_url or "\\" in repo_url:
        raise ValueError(f"repo_url must not contain quotes or backslashes, but got {repo_url!r}")
    return SETUP_TEMPLATE.format(url=repo_url)


def _with_badge(markdown: str, badge: str) -> str:
    text = BADGE_LINE.sub("", markdown).lstrip("\n")
    lines = text.split("\n")
    if lines and lines[0].startswith("#"):  # keep the title first: the site reads it
        rest = "\n".join(lines[1:]).lstrip("\n")
        return "\n\n".join([lines[0], badge, *([rest] if rest else [])])
    return "\n\n".join([badge, *([text] if text else [])])


def with_header(nb: NotebookNode, name: str, repo_url: str) -> NotebookNode:
    """``nb`` (changed in place, also returned) with the badge in its first markdown cell and
    the setup cell's source regenerated and collapsed. Raises ``ValueError`` when the notebook has no
    markdown cell or no code cell tagged ``setup``."""
    markdown = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    setup = [c for c in nb.cells if SETUP_TAG in c.get("metadata", {}).get("tags", [])]
    if markdown is None or len(setup) != 1 or setup[0].cell_type != "code":
        raise ValueError(
            f"{name}: expected a markdown cell (the title) and exactly one code cell tagged "
            f"{SETUP_TAG!r}, but found {int(markdown is not None)} markdown and "
            f"{len(setup)} tagged cell(s)"
        )
    markdown.source = _with_badge(markdown.source, badge_markdown(name, repo_url))
    setup[0].source = setup_source(repo_url)
    # collapsed: a learner sees its one-line comment, not the installer
    setup[0].metadata.setdefault("jupyter", {})["source_hidden"] = True
    return nb


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pooltools.tools.notebook_header",
        description="Check (or --apply) the Colab badge and setup cell of each notebook.",
    )
    parser.add_argument("notebooks", nargs="+", help="notebook files")
    parser.add_argument("--apply", action="store_true", help="rewrite the notebooks that differ")
    parser.add_argument("--pyproject", default=str(PYPROJECT), help="where the URL comes from")
    args = parser.parse_args(argv)
    url = repository_url(args.pyproject)
    stale = []
    for path in map(Path, args.notebooks):
        before = path.read_text("utf-8")
        nb = with_header(nbformat.reads(before, as_version=4), path.name, url)
        after = nbformat.writes(nb)
        if nbformat.reads(after, as_version=4) != nbformat.reads(before, as_version=4):
            stale.append(path)
            if args.apply:
                write_text_atomic(path, after)  # as `make run` writes them
    verb = "updated" if args.apply else "out of date"
    for path in stale:
        print(f"{verb}: {path}")
    print(f"{len(stale)} of {len(args.notebooks)} notebooks {verb}")
    return 1 if stale and not args.apply else 0


if __name__ == "__main__":
    sys.exit(main())
