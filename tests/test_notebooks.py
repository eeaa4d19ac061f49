"""The committed notebooks: shared setup cell, and the outputs of a real run.

The setup cell is the first code cell of every notebook; it makes `pooltools` importable from a
fresh clone or on Colab (clone first), and does nothing where the project is installed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import nbformat
import pytest

from pooltools.tools import notebook_header

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def setup_source(nb: nbformat.NotebookNode) -> str:
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert "setup" in first_code.metadata.get("tags", []), "the first code cell must be the setup cell"
    return first_code.source


def repository_url() -> str:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["urls"]["Repository"]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2, f"expected the series in {ROOT / 'notebooks'}, found {NOTEBOOKS}"


APPLY = "run `python -m pooltools.tools.notebook_header --apply notebooks/*.ipynb`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_starts_with_the_same_setup_cell(path):
    reference = setup_source(read(NOTEBOOKS[0]))
    assert setup_source(read(path)) == reference
    assert f'REPO_URL = "{repository_url()}"' in reference, "setup cell and pyproject's Repository URL differ"
    assert reference == notebook_header.setup_source(repository_url()), f"setup cell out of date: {APPLY}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_markdown_cell_has_the_open_in_colab_badge(path):
    """The badge opens this notebook on Colab from the repository named in pyproject.toml."""
    colab = repository_url().replace("https://github.com/", "https://colab.research.google.com/github/")
    link = f"{colab}/blob/main/notebooks/{path.name}"
    first = next(c for c in read(path).cells if c.cell_type == "markdown")
    lines = first.source.splitlines()
    assert lines[0].startswith("# "), "the title stays the first line"
    badge = f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({link})"
    assert badge in lines[1:4], f"{path.name}: no Colab badge for {link} under the title: {APPLY}"
    assert first.source.count("Open In Colab") == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebooks_carry_a_real_run(path):
    nb = read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    not_run = [i for i, c in enumerate(code) if c.execution_count is None]
    assert not not_run, f"{path.name}: code cells {not_run} were never executed"
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{path.name}: not one top-to-bottom run: {counts}"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    allowed = [c for c in code if "raises-exception" in c.metadata.get("tags", [])]
    assert len(errors) <= len(allowed), f"{path.name}: unexpected error outputs"


class Recorder:
    """Stands in for subprocess.check_call: records the commands instead of running them."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, cmd, *args, **kwargs) -> int:
        self.calls.append(list(cmd))
        return 0


def run_setup_cell(monkeypatch, cwd: Path, home: Path, importable: bool,
                   source: str | None = None) -> Recorder:  # fmt: skip
    recorder = Recorder()
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(subprocess, "check_call", recorder)
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: (real_find_spec(name, *a) if importable or name != "pooltools" else None),
    )
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(sys, "path", list(sys.path))
    source = setup_source(read(NOTEBOOKS[0])) if source is None else source
    exec(compile(source, "setup-cell", "exec"), {})
    return recorder


def test_setup_cell_does_nothing_when_pooltools_is_installed(monkeypatch, tmp_path):
    assert run_setup_cell(monkeypatch, ROOT / "notebooks", tmp_path, importable=True).calls == []


def test_setup_cell_installs_the_clone_it_runs_in(monkeypatch, tmp_path, capsys):
    calls = run_setup_cell(monkeypatch, ROOT / "notebooks", tmp_path, importable=False).calls
    assert calls == [[sys.executable, "-m", "pip", "install", "--quiet", "-e", str(ROOT)]]
    assert sys.path[0] == str(ROOT)
    assert f"installed pooltools from {ROOT}" in capsys.readouterr().out


def test_setup_cell_clones_the_repository_when_there_is_no_clone(monkeypatch, tmp_path):
    elsewhere = tmp_path / "content"  # like Colab's /content
    elsewhere.mkdir()
    calls = run_setup_cell(monkeypatch, elsewhere, tmp_path, importable=False).calls
    clone = tmp_path / "pooling-explained"
    assert calls == [
        ["git", "clone", "--depth", "1", repository_url(), str(clone)],
        [sys.executable, "-m", "pip", "install", "--quiet", "-e", str(clone)],
    ]


class FakeColabOutput(types.ModuleType):
    """Stands in for google.colab.output: counts enable_custom_widget_manager() calls."""

    def __init__(self) -> None:
        super().__init__("google.colab.output")
        self.enabled = 0

    def enable_custom_widget_manager(self) -> None:
        self.enabled += 1


@pytest.mark.parametrize("on_colab", [True, False], ids=["colab", "elsewhere"])
def test_setup_cell_enables_colabs_widget_manager_only_on_colab(monkeypatch, tmp_path, on_colab):
    """Run the generated setup cell (the committed one once the header is applied) with and
    without a google.colab module; ipywidgets 8 on Colab needs the custom widget manager."""
    output = FakeColabOutput()
    if on_colab:
        google, colab = types.ModuleType("google"), types.ModuleType("google.colab")
        google.__path__, colab.__path__ = [], []
        colab.output, google.colab = output, colab
        for name, module in [("google", google), ("google.colab", colab),
                             ("google.colab.output", output)]:  # fmt: skip
            monkeypatch.setitem(sys.modules, name, module)
    else:
        monkeypatch.setitem(sys.modules, "google.colab", None)  # import fails as off Colab
    source = notebook_header.setup_source(repository_url())
    calls = run_setup_cell(monkeypatch, ROOT / "notebooks", tmp_path, True, source).calls
    assert output.enabled == (1 if on_colab else 0)
    assert calls == []  # pooltools importable: nothing else to do
