"""Student copies: every exercise has a hidden solution, and a copy has no solution code and no
outputs. Checked on every real notebook of the series and on a tiny hand-made one."""

from __future__ import annotations

import ast
import json

import nbformat
import pytest

from pooltools import student

NOTEBOOKS = student.notebook_paths()


def test_the_series_has_notebooks():
    assert NOTEBOOKS, f"no {student.NOTEBOOK_PATTERN} in {student.NOTEBOOKS_DIR}"


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """{name: (original, student copy)} for every notebook, built once into a temp folder."""
    out = tmp_path_factory.mktemp("student")
    written = student.build_student(out=out)
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    return {
        p.name: (nbformat.read(p, as_version=4), nbformat.read(out / p.name, as_version=4))
        for p in NOTEBOOKS
    }


def _every_text(nb) -> str:
    """All cell sources, outputs and metadata of a notebook, as one searchable string."""
    parts = [json.dumps(nb.metadata, ensure_ascii=False)]
    for cell in nb.cells:
        parts += [cell.source, json.dumps(cell.metadata, ensure_ascii=False)]
        parts += [json.dumps(o, ensure_ascii=False) for o in cell.get("outputs", [])]
    return "\n".join(parts)


def _solution_only_lines(nb) -> set[str]:
    """Non-trivial solution lines: code (not blank, not a comment) found in no other cell."""

    def lines(cells):
        return {ln.strip() for c in cells for ln in c.source.splitlines()}

    solution = lines(c for c in nb.cells if student.is_solution(c))
    elsewhere = lines(c for c in nb.cells if not student.is_solution(c))
    return {ln for ln in solution - elsewhere if len(ln) >= 8 and not ln.startswith("#")}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_exercise_has_a_hidden_solution_before_the_next(path):
    nb = nbformat.read(path, as_version=4)
    found = student.exercises(nb)
    numbers = [ex.number for ex in found]
    assert numbers == list(range(1, len(found) + 1)), f"exercises not numbered 1..n: {numbers}"
    for ex in found:
        assert ex.solution_indices, f"Exercise {ex.number} has no `solution` cell before the next"
    owned = {i for ex in found for i in ex.solution_indices}
    solutions = [i for i, c in enumerate(nb.cells) if student.is_solution(c)]
    assert set(solutions) == owned, f"solution cells outside any exercise: {set(solutions) - owned}"
    for i in solutions:
        hidden = nb.cells[i].metadata.get("jupyter", {}).get("source_hidden")
        assert hidden is True, f"solution cell {i} is not collapsed (jupyter.source_hidden)"


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_student_copy_contains_no_solution_code(copies, name):
    original, copy = copies[name]
    secret = _solution_only_lines(original)
    if any(student.is_solution(c) for c in original.cells):
        assert secret, "solutions exist but none of their lines is distinctive: the check is void"
    text = _every_text(copy)
    leaked = sorted(ln for ln in secret if ln in text)
    assert not leaked, f"solution lines left in the student copy: {leaked[:3]}"
    assert not any(student.is_solution(c) for c in copy.cells)


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_student_copy_has_no_outputs(copies, name):
    _, copy = copies[name]
    for i, cell in enumerate(copy.cells):
        assert "execution" not in cell.metadata, f"cell {i} keeps its run timestamps"
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {i} keeps {len(cell.outputs)} output(s)"
            assert cell.execution_count is None, f"cell {i} keeps execution_count"
    assert "widgets" not in copy.metadata, "the saved widget state is an output too"
    nbformat.validate(copy)


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_student_copy_has_one_clean_stub_per_exercise(copies, name):
    original, copy = copies[name]
    found = student.exercises(copy)
    assert [ex.number for ex in found] == [ex.number for ex in student.exercises(original)]
    stubs = [i for i, c in enumerate(copy.cells) if c.source.startswith("# Your turn")]
    assert len(stubs) == len(found)
    bounds = [ex.markdown_index for ex in found] + [len(copy.cells)]
    for ex, stub, stop in zip(found, stubs, bounds[1:], strict=True):
        assert ex.markdown_index < stub < stop, f"exercise {ex.number}'s stub is not after it"
        cell = copy.cells[stub]
        assert cell.cell_type == "code" and cell.metadata == {}, "stub: no tags, not hidden"
        assert f"(exercise {ex.number})" in cell.source and name in cell.source
    # everything else is kept, in order
    kept = [c.source for c in original.cells if not student.is_solution(c)]
    rest = [c.source for i, c in enumerate(copy.cells) if i not in stubs]
    assert rest[0] == kept[0] and rest[2:] == kept[1:] and "Student copy" in rest[1]


def _names(source: str) -> tuple[set[str], set[str]]:
    """(names a cell defines, names it reads), from its syntax tree; magics are skipped."""
    code = "\n".join(ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!")))
    defined, read = set(), set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Name):
            (defined if isinstance(node.ctx, ast.Store) else read).add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.alias):
            defined.add((node.asname or node.name).split(".")[0])
    return defined, read


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_later_cell_needs_a_name_only_a_solution_defines(path):
    """So the student copy still runs top to bottom with the solutions taken out."""
    nb = nbformat.read(path, as_version=4)
    code = [(student.is_solution(c), _names(c.source)) for c in nb.cells if c.cell_type == "code"]
    by_others = set().union(*(d for sol, (d, _) in code if not sol))
    only_in_solutions: set[str] = set()
    for sol, (defined, read) in code:
        if sol:
            only_in_solutions |= defined - by_others
        else:
            assert not read & only_in_solutions, f"needs {read & only_in_solutions} from a solution"


# --------------------------------------------------------------------------- a tiny notebook


def _tiny_notebook():
    """Exercise 1 with two adjacent solution cells, exercise 2 with none, a run code cell."""
    v4 = nbformat.v4
    ran = v4.new_code_cell("x = 1\nx", execution_count=3, outputs=[
        v4.new_output("execute_result", {"text/plain": "1"}, execution_count=3)])  # fmt: skip
    ran.metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00Z"}
    hidden = {"tags": ["solution"], "jupyter": {"source_hidden": True}}
    sol_a = v4.new_code_cell("# Solution\nanswer_part_one = x + 41", metadata=dict(hidden))
    sol_b = v4.new_code_cell("print(answer_part_one)", metadata=dict(hidden), outputs=[
        v4.new_output("stream", name="stdout", text="42\n")])  # fmt: skip
    cells = [v4.new_markdown_cell("# Title"), ran,
             v4.new_markdown_cell("## Exercises\n\n**Exercise 1.** Add 41."), sol_a, sol_b,
             v4.new_markdown_cell("**Exercise 2.** Think.")]  # fmt: skip
    nb = v4.new_notebook(cells=cells)
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return nb


def test_tiny_notebook_by_hand():
    nb = _tiny_notebook()
    assert student.exercises(nb) == [student.Exercise(1, 2, (3, 4)), student.Exercise(2, 5, ())]
    copy = student.student_copy(nb, "99_tiny.ipynb")
    kinds = [(c.cell_type, c.source.splitlines()[0]) for c in copy.cells]
    assert kinds == [
        ("markdown", "# Title"),
        ("markdown", kinds[1][1]),  # the banner
        ("code", "x = 1"),
        ("markdown", "## Exercises"),
        ("code", "# Your turn (exercise 1): write your solution here,"),  # one stub for both
        ("markdown", "**Exercise 2.** Think."),
    ]
    assert "Student copy" in kinds[1][1] and "notebooks/99_tiny.ipynb" in copy.cells[1].source
    assert copy.cells[2].outputs == [] and copy.cells[2].execution_count is None
    assert copy.cells[2].metadata == {} and "widgets" not in copy.metadata
    assert "answer_part_one" not in _every_text(copy)
    assert nb.cells[1].outputs and student.is_solution(nb.cells[3]), "the input is left alone"


def test_build_student_cli_writes_atomically_and_drops_stale_copies(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    nbformat.write(_tiny_notebook(), src / "01_tiny.ipynb")
    before = (src / "01_tiny.ipynb").read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    (out / "07_renamed_since.ipynb").write_text("{}")
    assert student.main(["--out", str(out), str(src / "01_tiny.ipynb")]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["01_tiny.ipynb"], "no stale or temp files"
    assert (src / "01_tiny.ipynb").read_bytes() == before
    written = nbformat.read(out / "01_tiny.ipynb", as_version=4)
    assert not any(student.is_solution(c) for c in written.cells)


def test_build_student_refuses_an_empty_series(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no notebooks to convert"):
        student.build_student([], out=tmp_path)
