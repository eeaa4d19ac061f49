"""Student copies of the notebooks: solutions replaced by "your turn" cells, all outputs cleared.

A workshop hands these out; learners then compare with the full notebooks. An exercise is a
markdown line starting with ``**Exercise N.``; its solution is the code cell(s) tagged ``solution``
(collapsed with ``metadata.jupyter.source_hidden``) that follow it. Run
``python -m pooltools.student [--out build/student]`` (or ``make student``).
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
    "Exercise",
    "notebook_paths",
    "is_solution",
    "exercises",
    "clear_outputs",
    "stub_cell",
    "student_copy",
    "write_notebook",
    "build_student",
    "main",
]

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOK_PATTERN = "[0-9][0-9]_*.ipynb"
SOLUTION_TAG = "solution"
EXERCISE_LINE = re.compile(r"^\*\*Exercise (\d+)\.", re.MULTILINE)
STUB_TEXT = (
    "# Your turn{label}: write your solution here,\n"
    "# then compare with the solution in the full notebook, {name}."
)
BANNER = (
    "> **Student copy.** Outputs are cleared and each exercise's solution cell is replaced by an"
    " empty one for your answer. The full notebook, with solutions and outputs, is"
    " `notebooks/{name}` in the repository."
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


def student_copy(nb: NotebookNode, name: str) -> NotebookNode:
    """A new notebook: each run of adjacent ``solution`` cells becomes one stub, outputs cleared.

    ``name`` is the full notebook's file name, quoted in the stubs and the banner that follows
    the title cell.
    """
    numbers = {i: ex.number for ex in exercises(nb) for i in ex.solution_indices}
    student = copy.deepcopy(nb)
    cells: list[NotebookNode] = []
    for i, cell in enumerate(student.cells):
        if not is_solution(cell):
            cells.append(cell)
        elif i == 0 or not is_solution(student.cells[i - 1]):
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
        prog="python -m pooltools.student",
        description="Write student copies of the notebooks: solutions removed, outputs cleared.",
    )
    parser.add_argument("--out", default="build/student", help="output folder (build/student)")
    parser.add_argument("notebooks", nargs="*", help="notebooks to convert (default: the series)")
    args = parser.parse_args(argv)
    for path in build_student(args.notebooks or None, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
