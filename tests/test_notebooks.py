"""The committed notebooks: shared setup cell, and the outputs of a real run.

The setup cell is the first code cell of every notebook; it makes `pooltools` importable from a
fresh clone or on Colab (clone first), and does nothing where the project is installed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest

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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_starts_with_the_same_setup_cell(path):
    reference = setup_source(read(NOTEBOOKS[0]))
    assert setup_source(read(path)) == reference
    assert f'REPO_URL = "{repository_url()}"' in reference, "setup cell and pyproject's Repository URL differ"


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


def run_setup_cell(monkeypatch, cwd: Path, home: Path, importable: bool) -> Recorder:
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
    exec(compile(setup_source(read(NOTEBOOKS[0])), "setup-cell", "exec"), {})
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
