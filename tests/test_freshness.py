"""Committed outputs match their code: `make run` stamps each notebook with the hash of its code
cells and the mode; a notebook edited after its run fails here, by name, telling to run it."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from pooltools.tools import freshness, timings

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_outputs_come_from_the_current_code_in_full_mode(path):
    problem = freshness.problem(nbformat.read(path, as_version=4), path.name, mode="full")
    assert problem is None, problem


@pytest.fixture
def stamped_copy(tmp_path) -> Path:
    """A committed notebook copied to tmp and stamped as if `make run` had just run it."""
    copy = tmp_path / NOTEBOOKS[1].name
    shutil.copyfile(NOTEBOOKS[1], copy)
    nb = freshness.stamp(nbformat.read(copy, as_version=4), "full")
    nbformat.write(nb, copy)
    assert freshness.problem(nbformat.read(copy, as_version=4), copy.name) is None
    return copy


def _edit(path: Path, change) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    change(nb)
    nbformat.write(nb, path)
    return nbformat.read(path, as_version=4)


def _last_code(nb) -> nbformat.NotebookNode:
    return [c for c in nb.cells if c.cell_type == "code"][-1]


@pytest.mark.parametrize(
    "change",
    [
        lambda nb: setattr(_last_code(nb), "source", _last_code(nb).source + "\nx = 1"),
        lambda nb: nb.cells.append(nbformat.v4.new_code_cell("print('new')")),
        lambda nb: nb.cells.remove(_last_code(nb)),
        lambda nb: nb.cells.reverse(),  # same cells, another order
    ],
    ids=["edited", "added", "removed", "reordered"],
)
def test_an_edited_copy_fails_by_name_and_says_to_run_make_run(stamped_copy, change):
    problem = freshness.problem(_edit(stamped_copy, change), stamped_copy.name)
    assert problem is not None
    assert stamped_copy.name in problem and "`make run`" in problem and "code cells changed" in problem
    assert freshness.main([str(stamped_copy)]) == 1


def test_prose_and_outputs_are_not_hashed(stamped_copy):
    def change(nb):
        nb.cells.append(nbformat.v4.new_markdown_cell("A new paragraph."))
        _last_code(nb).outputs = []

    assert freshness.problem(_edit(stamped_copy, change), stamped_copy.name) is None
    assert freshness.main([str(stamped_copy)]) == 0


def test_no_record_and_wrong_mode_are_reported(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    assert "no record of the run" in freshness.problem(nb, "01_x.ipynb")
    freshness.stamp(nb, "quick")
    assert "'quick' run, not 'full'" in freshness.problem(nb, "01_x.ipynb", mode="full")
    assert freshness.problem(nb, "01_x.ipynb", mode=None) is None
    with pytest.raises(ValueError, match=r"mode must be one of \('full', 'quick'\), but got 'fast'"):
        freshness.stamp(nb, "fast")


def test_make_runs_executor_stamps_what_it_ran(tmp_path):
    """timings.time_notebook (what `make run` calls) stores the hash and mode it ran with."""
    path = tmp_path / "01_tiny.ipynb"
    stale = {"application/vnd.jupyter.widget-state+json": {"state": {"old-bar": {}}}}  # a past run's
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(2)")],
                                            metadata={"widgets": stale}), path)
    timings.time_notebook(path, quick=False, save=True)
    nb = nbformat.read(path, as_version=4)
    assert "widgets" not in nb.metadata  # this run made no widgets, so none are stored
    assert nb.metadata["pooltools"]["freshness"] == {
        "code_sha256": freshness.code_hash(nb), "mode": "full"}  # fmt: skip
    assert freshness.problem(nb, path.name) is None
    nb.cells[0].source = "print(3)"
    assert "code cells changed" in freshness.problem(nb, path.name)
