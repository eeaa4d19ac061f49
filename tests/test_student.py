"""Student copies: every exercise has a hidden solution, and a copy has no answer code and no
outputs, keeps the scaffold around each stub and the check cells. Checked on every real notebook
of the series and on tiny hand-made ones."""

from __future__ import annotations

import ast
import json

import nbformat
import pytest

from pooltools.tools import student

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
    """Non-trivial answer lines (inside the marked regions, or whole unmarked solution cells):
    code, not blank, not a comment, found nowhere else in the notebook (scaffolds included)."""
    answers, elsewhere = set(), set()
    for c in nb.cells:
        lines = {ln.strip() for ln in c.source.splitlines()}
        if student.is_solution(c):
            answer = {ln.strip() for ln in student.answer_lines(c.source)}
            answers |= answer
            elsewhere |= lines - answer
        else:
            elsewhere |= lines
    return {ln for ln in answers - elsewhere if len(ln) >= 8 and not ln.startswith("#")}


def _is_stub(cell) -> bool:
    return cell.cell_type == "code" and (
        cell.source.startswith("# Your turn") or 'raise NotImplementedError("your turn' in cell.source
    )


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
        jupyter = nb.cells[i].metadata.get("jupyter", {})
        assert jupyter.get("source_hidden") is True, (
            f"solution cell {i} is not collapsed (jupyter.source_hidden)"
        )
        assert jupyter.get("outputs_hidden") is True, (
            f"solution cell {i}'s outputs are not collapsed (jupyter.outputs_hidden)"
        )


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
    stubs = [i for i, c in enumerate(copy.cells) if _is_stub(c)]
    assert len(stubs) == len(found)
    bounds = [ex.markdown_index for ex in found] + [len(copy.cells)]
    for ex, stub, stop in zip(found, stubs, bounds[1:], strict=True):
        assert ex.markdown_index < stub < stop, f"exercise {ex.number}'s stub is not after it"
        cell = copy.cells[stub]
        assert "jupyter" not in cell.metadata, "stub: shown, not hidden"
        assert student.SOLUTION_TAG not in cell.metadata.get("tags", [])
        assert f"exercise {ex.number}" in cell.source
        ast.parse("\n".join(ln for ln in cell.source.splitlines() if not ln.startswith("%")))
    # everything else is kept, in order
    kept = [c.source for c in original.cells if not student.is_solution(c)]
    rest = [c.source for i, c in enumerate(copy.cells) if i not in stubs]
    assert rest[0] == kept[0] and rest[2:] == kept[1:] and "Student copy" in rest[1]


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_student_copy_keeps_the_scaffold_and_the_check_cells(copies, name):
    original, copy = copies[name]
    checks = [c.source for c in original.cells if student.is_check(c)]
    assert [c.source for c in copy.cells if student.is_check(c)] == checks
    marked = [c for c in original.cells if student.is_solution(c) and student.has_markers(c.source)]
    scaffolds = {c.id: c for c in copy.cells if 'raise NotImplementedError("your turn' in c.source}
    for cell in marked:
        stubbed = scaffolds[cell.id].source
        answer = set(student.answer_lines(cell.source))
        for line in cell.source.splitlines():
            if line not in answer and student.BEGIN not in line and student.END not in line:
                assert line in stubbed.splitlines(), f"scaffold line lost: {line!r}"


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
    """So the student copy still runs top to bottom with the answers taken out: a name the
    scaffold around a stub defines is fine, one only the answer defines is not."""
    nb = nbformat.read(path, as_version=4)
    scaffold_names: set[str] = set()  # what the kept code of marked solution cells defines
    code = []  # (is a solution, names only its answer defines, names it reads)
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        defined, read = _names(c.source)
        if student.is_solution(c) and student.has_markers(c.source):
            kept = _names(student.stub_source(c.source))[0]
            scaffold_names |= kept
            defined -= kept
        code.append((student.is_solution(c), defined, read))
    by_others = scaffold_names.union(*(d for sol, d, _ in code if not sol))
    only_in_solutions: set[str] = set()
    for sol, defined, read in code:
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


# --------------------------------------------------------------------------- marked regions

MARKED = '''\
# Scaffold: fill in the function.
def double(x):
    """Twice x."""
    ### BEGIN SOLUTION
    secret_answer_value = 2 * x
    return secret_answer_value
    ### END SOLUTION


print("defined")'''


def _marked_notebook():
    """Exercise 1 with a marked solution and a check cell; exercise 2 in the old format."""
    v4 = nbformat.v4
    hidden = {"tags": ["solution"], "jupyter": {"source_hidden": True, "outputs_hidden": True}}
    sol = v4.new_code_cell(MARKED, metadata=dict(hidden), outputs=[
        v4.new_output("stream", name="stdout", text="defined\n")])  # fmt: skip
    check = v4.new_code_cell("assert double(2) == 4", metadata={"tags": ["check"]})
    old = v4.new_code_cell("old_format_answer = 42", metadata=dict(hidden))
    cells = [v4.new_markdown_cell("# Title"), v4.new_markdown_cell("**Exercise 1.** Double."),
             sol, check, v4.new_markdown_cell("**Exercise 2.** Old."), old]  # fmt: skip
    return v4.new_notebook(cells=cells)


def test_a_marked_region_becomes_a_stub_and_the_scaffold_stays():
    nb = _marked_notebook()
    copy = student.student_copy(nb, "98_marked.ipynb")
    sources = [c.source for c in copy.cells]
    scaffold = copy.cells[3]
    assert scaffold.id == nb.cells[2].id and scaffold.metadata == {}, "shown, no solution tag"
    assert "secret_answer_value" not in _every_text(copy)
    assert "old_format_answer" not in _every_text(copy)
    assert student.BEGIN not in scaffold.source and student.END not in scaffold.source
    for kept in ("# Scaffold: fill in the function.", "def double(x):", '    """Twice x."""',
                 'print("defined")'):  # fmt: skip
        assert kept in scaffold.source.splitlines()
    assert '    raise NotImplementedError("your turn: write your answer here (exercise 1)")' in (
        scaffold.source.splitlines()
    )
    assert sources[4] == "assert double(2) == 4" and student.is_check(copy.cells[4])
    assert sources[6].startswith("# Your turn (exercise 2)"), "the old format still works"
    # the copy runs: the scaffold defines the function, calling it says whose turn it is
    namespace: dict = {}
    exec(scaffold.source, namespace)
    with pytest.raises(NotImplementedError, match="your turn"):
        namespace["double"](2)
    assert scaffold.outputs == [] and nb.cells[2].outputs, "copy cleared, input left alone"


def test_stub_source_keeps_indentation_and_every_region():
    src = "a = 1\n### BEGIN SOLUTION\nb = 2\n### END SOLUTION\nif a:\n\t### BEGIN SOLUTION\n\tc = 3\n\t### END SOLUTION"
    out = student.stub_source(src, "x")
    assert out == ('a = 1\nraise NotImplementedError("your turn: x")\nif a:\n'
                   '\traise NotImplementedError("your turn: x")')  # fmt: skip
    assert student.answer_lines(src) == ["b = 2", "\tc = 3"]
    assert student.answer_lines("no = 'markers'") == ["no = 'markers'"]


@pytest.mark.parametrize(
    "source, message",
    [
        ("### BEGIN SOLUTION\nx = 1", r"line 1 is never closed"),
        ("x = 1\n### END SOLUTION", r"'### END SOLUTION' on line 2 without"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", r"line 2 inside another"),
        ("x = 1", r"has no '### BEGIN SOLUTION'"),
    ],
)
def test_bad_markers_are_refused_with_the_line(source, message):
    with pytest.raises(ValueError, match=message):
        student.stub_source(source)


def test_a_bad_marker_names_the_notebook_and_cell():
    nb = _marked_notebook()
    nb.cells[2].source = MARKED.replace("    ### END SOLUTION\n", "")
    with pytest.raises(ValueError, match=r"98_marked.ipynb, solution cell .* never closed"):
        student.student_copy(nb, "98_marked.ipynb")
