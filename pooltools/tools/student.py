"""Student copies of the notebooks: answers replaced by "your turn" stubs, all outputs cleared.

A workshop hands these out. The conventions (shared by every notebook of the series):

* an exercise is a markdown line starting with ``**Exercise N.``;
* its solution is the code cell tagged ``solution`` that follows it, collapsed in the full
  notebook with ``metadata.jupyter.source_hidden`` and ``outputs_hidden``;
* inside it, nbgrader's lines ``### BEGIN SOLUTION`` / ``### END SOLUTION`` mark the answer; the
  copy replaces each such region with ``raise NotImplementedError("your turn: ...")`` at the
  region's indentation and keeps the scaffold around it (put the region inside a function body,
  so the copy still runs top to bottom and the check cell reports the missing answer);
* a solution cell without markers (the older format) is replaced whole by a comment stub;
* the cell tagged ``check`` after it calls :mod:`pooltools.check` and stays in the copy, so a
  learner sees PASS or FAIL for their own answer.

Run ``python -m pooltools.tools.student [--out build/student]`` (or ``make student``).
"""

from __future__ import annotations

import argparse
import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from pooltools.atomic import write_text_atomic

__all__ = [
    "NOTEBOOKS_DIR",
    "NOTEBOOK_PATTERN",
    "SOLUTION_TAG",
    "BEGIN",
    "END",
    "Exercise",
    "notebook_paths",
    "is_solution",
    "is_check",
    "exercises",
    "clear_outputs",
    "has_markers",
    "answer_lines",
    "stub_source",
    "student_copy",
    "write_notebook",
    "build_student",
    "main",
]

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOK_PATTERN = "[0-9][0-9]_*.ipynb"
SOLUTION_TAG = "solution"
CHECK_TAG = "check"
BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
_MARKER = re.compile(r"^(?P<indent>[ \t]*)### (?P<kind>BEGIN|END) SOLUTION[ \t]*$")
EXERCISE_LINE = re.compile(r"^\*\*Exercise (\d+)\.", re.MULTILINE)
STUB_TEXT = (
    "# Your turn{label}: write your solution here,\n"
    "# then compare with the solution in the full notebook, {name}."
)
RAISE_TEXT = 'raise NotImplementedError("your turn: {what}")'
BANNER = (
    "> **Student copy.** Outputs are cleared and each exercise's answer is replaced by a stub"
    ' (`raise NotImplementedError("your turn: ...")`) for you to fill in; the code around it is'
    " kept. Run the **check** cell after an exercise: it prints PASS or FAIL with a hint. The full"
    " notebook, with solutions and outputs, is `notebooks/{name}` in the repository."
)


@dataclass(frozen=True)
class Exercise:
    """Exercise ``number`` announced in markdown cell ``markdown_index``, solved by the
    ``solution`` cells at ``solution_indices`` (before the next exercise; may be empty)."""

    number: int
    markdown_index: int
    solution_indices: tuple[int, ...]


def notebook_paths(folder: str | Path = NOTEBOOKS_DIR) -> list[Path]:
    """The series' notebooks in ``folder`` (``NN_name.ipynb``), in order."""
    return sorted(Path(folder).glob(NOTEBOOK_PATTERN))


def is_solution(cell: NotebookNode) -> bool:
    """True for a code cell tagged ``solution``."""
    return cell.cell_type == "code" and SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def is_check(cell: NotebookNode) -> bool:
    """True for a code cell tagged ``check`` (it calls :mod:`pooltools.check`; copies keep it)."""
    return cell.cell_type == "code" and CHECK_TAG in cell.get("metadata", {}).get("tags", [])


def _regions(source: str, where: str = "the cell") -> list[tuple[int, int, str]]:
    """``(begin_line, end_line, indent)`` of every marked region; bad markers raise ValueError."""
    regions, begin = [], None
    for n, line in enumerate(source.splitlines()):
        m = _MARKER.match(line)
        if m is None:
            continue
        if m["kind"] == "BEGIN":
            if begin is not None:
                raise ValueError(f"{where}: '{BEGIN}' on line {n + 1} inside another region "
                                 f"(opened on line {begin[0] + 1}); close it with '{END}' first")
            begin = (n, m["indent"])
        else:
            if begin is None:
                raise ValueError(f"{where}: '{END}' on line {n + 1} without a '{BEGIN}' before it")
            regions.append((begin[0], n, begin[1]))
            begin = None
    if begin is not None:
        raise ValueError(f"{where}: '{BEGIN}' on line {begin[0] + 1} is never closed by '{END}'")
    return regions


def has_markers(source: str) -> bool:
    """True when ``source`` marks its answer with ``### BEGIN SOLUTION`` / ``### END SOLUTION``."""
    return any(_MARKER.match(line) for line in source.splitlines())


def answer_lines(source: str) -> list[str]:
    """The lines a student copy removes: those inside the marked regions (markers excluded), or
    every line of a cell without markers."""
    lines = source.splitlines()
    regions = _regions(source)
    if not regions:
        return lines
    return [ln for b, e, _ in regions for ln in lines[b + 1 : e]]


def stub_source(source: str, what: str = "write your answer here", where: str = "the cell") -> str:
    """``source`` with each marked region replaced by ``raise NotImplementedError("your turn:
    <what>")`` at the indentation of its ``### BEGIN SOLUTION`` line; the rest is kept verbatim.

    >>> print(stub_source("def f(x):\\n    ### BEGIN SOLUTION\\n    return 2 * x\\n    ### END SOLUTION"))
    def f(x):
        raise NotImplementedError("your turn: write your answer here")
    """
    regions = _regions(source, where)
    if not regions:
        raise ValueError(f"{where} has no '{BEGIN}' ... '{END}' region to replace")
    lines = source.splitlines()
    out, last = [], 0
    for begin, end, indent in regions:
        out += lines[last:begin]
        out.append(indent + RAISE_TEXT.format(what=what))
        last = end + 1
    out += lines[last:]
    return "\n".join(out)


def exercises(nb: NotebookNode) -> list[Exercise]:
    """Every ``**Exercise N.`` in the notebook with the solution cells that follow it.

    A markdown cell may announce several exercises (then all but the last own no cells).
    """
    found: list[tuple[int, int]] = []  # (number, markdown cell index)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            found += [(int(m.group(1)), i) for m in EXERCISE_LINE.finditer(cell.source)]
    result = []
    for k, (number, start) in enumerate(found):
        stop = found[k + 1][1] if k + 1 < len(found) else len(nb.cells)
        solutions = tuple(i for i in range(start + 1, stop) if is_solution(nb.cells[i]))
        result.append(Exercise(number, start, solutions))
    return result


def clear_outputs(nb: NotebookNode) -> NotebookNode:
    """Clear in place every output, execution count, run timestamp and the saved widget state."""
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            for view_state in ("collapsed", "scrolled"):
                cell.metadata.pop(view_state, None)
    nb.metadata.pop("widgets", None)
    return nb


def stub_cell(name: str, number: int | None, cell_id: str) -> NotebookNode:
    """The empty "your turn" code cell: clean metadata, no ``solution`` tag, not hidden."""
    label = "" if number is None else f" (exercise {number})"
    cell = nbformat.v4.new_code_cell(STUB_TEXT.format(label=label, name=name))
    cell.id = cell_id
    return cell


def _scaffold_cell(cell: NotebookNode, name: str, number: int | None) -> NotebookNode:
    """A marked solution cell as the learner gets it: answer stubbed, shown, no ``solution`` tag."""
    what = "write your answer here" + ("" if number is None else f" (exercise {number})")
    where = f"{name}, solution cell {cell.get('id', '?')}"
    new = nbformat.v4.new_code_cell(stub_source(cell.source, what, where))
    new.id = cell.get("id", new.id)
    tags = [t for t in cell.metadata.get("tags", []) if t != SOLUTION_TAG]
    if tags:
        new.metadata["tags"] = tags
    return new


def student_copy(nb: NotebookNode, name: str) -> NotebookNode:
    """A new notebook for learners, outputs cleared; the input is left alone.

    A ``solution`` cell with ``### BEGIN/END SOLUTION`` markers keeps its scaffold and gets a stub
    in each region; a run of adjacent unmarked ``solution`` cells becomes one comment stub.
    ``check`` cells are kept. ``name`` is the full notebook's file name, quoted in the stubs and
    in the banner that follows the title cell.
    """
    numbers = {i: ex.number for ex in exercises(nb) for i in ex.solution_indices}
    student = copy.deepcopy(nb)
    cells: list[NotebookNode] = []
    for i, cell in enumerate(student.cells):
        if not is_solution(cell):
            cells.append(cell)
        elif has_markers(cell.source):
            cells.append(_scaffold_cell(cell, name, numbers.get(i)))
        elif i == 0 or not is_solution(student.cells[i - 1]) or has_markers(
            student.cells[i - 1].source
        ):
            cells.append(stub_cell(name, numbers.get(i), cell_id=f"your-turn-{len(cells)}"))
    banner = nbformat.v4.new_markdown_cell(BANNER.format(name=name))
    banner.id = "student-copy-banner"
    cells.insert(1 if cells else 0, banner)
    student.cells = cells
    clear_outputs(student)
    nbformat.validate(student)
    return student


def write_notebook(nb: NotebookNode, path: str | Path) -> Path:
    """Write ``nb`` atomically (see :func:`write_text_atomic`), ending in a newline."""
    text = nbformat.writes(nb)
    return write_text_atomic(path, text if text.endswith("\n") else text + "\n")


def build_student(
    notebooks: Sequence[str | Path] | None = None, out: str | Path = "build/student"
) -> list[Path]:
    """Write a student copy of each notebook (default: the whole series) into ``out``.

    Student copies in ``out`` of notebooks that no longer exist are removed. Returns the paths.
    """
    sources = notebook_paths() if notebooks is None else [Path(p) for p in notebooks]
    if not sources:
        raise FileNotFoundError(f"no notebooks to convert (expected {NOTEBOOK_PATTERN} files)")
    out = Path(out)
    written = []
    for source in sources:
        nb = nbformat.read(source, as_version=4)
        written.append(write_notebook(student_copy(nb, source.name), out / source.name))
    for stale in set(notebook_paths(out)) - set(written):
        stale.unlink()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pooltools.tools.student",
        description="Write student copies of the notebooks: answers stubbed, outputs cleared.",
    )
    parser.add_argument("--out", default="build/student", help="output folder (build/student)")
    parser.add_argument("notebooks", nargs="*", help="notebooks to convert (default: the series)")
    args = parser.parse_args(argv)
    for path in build_student(args.notebooks or None, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
