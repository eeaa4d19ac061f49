"""The notebook header tool on copies: badge under the title, setup cell regenerated, idempotent,
check mode reports without writing, and bad input is refused with what was expected."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from pooltools.tools import notebook_header as nh

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
URL = "https://github.com/someone/some-series"


@pytest.fixture
def copies(tmp_path) -> list[Path]:
    out = []
    for path in NOTEBOOKS:
        shutil.copyfile(path, tmp_path / path.name)
        out.append(tmp_path / path.name)
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "x"\n[project.urls]\nRepository = "{URL}"\n')
    return out


def test_apply_then_check_is_clean_and_a_second_apply_changes_nothing(copies, capsys):
    pyproject = ["--pyproject", str(copies[0].parent / "pyproject.toml")]
    files = [str(p) for p in copies]
    before = {p: nbformat.read(p, as_version=4) for p in copies}
    assert nh.main([*files, *pyproject]) == 1  # check mode: out of date, nothing written
    assert all(nbformat.read(p, as_version=4) == before[p] for p in copies)
    assert nh.main(["--apply", *files, *pyproject]) == 0
    written = {p: p.read_bytes() for p in copies}
    assert nh.main(["--apply", *files, *pyproject]) == 0
    assert {p: p.read_bytes() for p in copies} == written, "idempotent"
    assert "0 of" in capsys.readouterr().out.splitlines()[-1]
    assert nh.main([*files, *pyproject]) == 0
    assert sorted(p.name for p in copies[0].parent.iterdir()) == sorted(
        [p.name for p in copies] + ["pyproject.toml"]), "no temp files left"  # fmt: skip
    for path in copies:
        nb, old = nbformat.read(path, as_version=4), before[path]
        first = next(c for c in nb.cells if c.cell_type == "markdown")
        link = f"https://colab.research.google.com/github/someone/some-series/blob/main/notebooks/{path.name}"
        assert first.source.split("\n\n")[1] == f"[![Open In Colab]({nh.BADGE_IMAGE})]({link})"
        old_first = next(c for c in old.cells if c.cell_type == "markdown")
        def without_badge(text):
            return nh.BADGE_LINE.sub("", text).replace("\n\n\n", "\n\n")

        assert without_badge(first.source) == without_badge(old_first.source)
        setup = [c for c in nb.cells if "setup" in c.metadata.get("tags", [])]
        assert [c.source for c in setup] == [nh.setup_source(URL)]
        assert f'REPO_URL = "{URL}"' in setup[0].source
        assert setup[0].metadata["jupyter"]["source_hidden"] is True  # collapsed
        # everything else as it was: cells, outputs, metadata
        assert len(nb.cells) == len(old.cells) and nb.metadata == old.metadata
        for new_cell, old_cell in zip(nb.cells, old.cells, strict=True):
            if new_cell is not first and new_cell not in setup:
                assert new_cell == old_cell


def test_the_setup_cell_is_valid_python_that_keeps_the_clone_and_install_steps():
    source = nh.setup_source(URL)
    compile(source, "setup", "exec")
    for step in ['"git", "clone", "--depth", "1", REPO_URL', '"pip", "install", "--quiet", "-e"',
                 "enable_custom_widget_manager()", "from google.colab import output"]:  # fmt: skip
        assert step in source


def test_badge_goes_first_when_there_is_no_title():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("Just text."),
                                         nbformat.v4.new_code_cell("", metadata={"tags": ["setup"]})])  # fmt: skip
    nh.with_header(nb, "01_x.ipynb", URL)
    assert nb.cells[0].source == f"{nh.badge_markdown('01_x.ipynb', URL)}\n\nJust text."


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://gitlab.com/a/b", r"must be https://github.com/OWNER/REPO"),
        ('https://github.com/a/b"', r"must be https://github.com/OWNER/REPO"),
        (None, r"but got None"),
    ],
)
def test_a_repository_url_colab_cannot_open_is_refused(tmp_path, url, message):
    line = f"Repository = '{url}'\n" if url else ""
    (tmp_path / "pyproject.toml").write_text(f"[project]\nname = 'x'\n[project.urls]\n{line}")
    with pytest.raises(ValueError, match=message):
        nh.repository_url(tmp_path / "pyproject.toml")


def test_a_notebook_without_a_setup_cell_is_refused():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T")])
    with pytest.raises(ValueError, match=r"01_x.ipynb: expected .* exactly one code cell tagged 'setup'"):
        nh.with_header(nb, "01_x.ipynb", URL)


def test_the_projects_url_is_the_one_in_pyproject():
    assert nh.repository_url() == "https://github.com/pooling-explained/pooling-explained"
