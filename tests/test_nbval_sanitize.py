"""The nbval sanitizer (tests/nbval_sanitize.cfg): each rule masks the machine-specific text it is
for, leaves the numbers a cell computes alone, and is wired into the Makefile's nbval target."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CFG = ROOT / "tests" / "nbval_sanitize.cfg"


def rules() -> list[tuple[str, str]]:
    parser = configparser.ConfigParser(interpolation=None)  # how nbval reads it
    parser.read(CFG)
    return [(parser[s]["regex"], parser[s]["replace"]) for s in parser.sections()]


def sanitize(text: str) -> str:
    for regex, replace in rules():
        text = re.sub(regex, replace, text)
    return text


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("loaded /home/ann/data/cifar.npz, 5 files", "loaded <PATH>, 5 files"),
        ("cache: /work/main/data/x.npy", "cache: <PATH>"),
        (r"C:\Users\ann\data ok", "<PATH> ok"),
        ("<function f at 0x7f3a2b1c4d50>", "<function f at <ADDRESS>>"),
        ("torch 2.14.1+cu130, 2 threads", "torch 2.14.1, 2 threads"),
    ],
)
def test_each_rule_masks_what_it_is_for(text, clean):
    assert sanitize(text) == clean


def test_computed_numbers_and_relative_paths_are_left_alone():
    text = "output shape: 3 × 3\nmax 0.5/1.0 at (1, 2); data/checkpoints/base.pt 84.94 %"
    assert sanitize(text) == text


def test_checked_outputs_keep_their_numbers():
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code" and cell.source.startswith("# NBVAL_CHECK_OUTPUT"):
                for out in cell.outputs:
                    text = out.get("text", "") or str(out.get("data", {}).get("text/plain", ""))
                    assert re.findall(r"\d+", sanitize(text)) == re.findall(r"\d+", text)


def test_make_nbval_uses_it():
    assert "--sanitize-with tests/nbval_sanitize.cfg" in (ROOT / "Makefile").read_text()
