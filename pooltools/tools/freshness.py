"""Do a notebook's committed outputs come from its current code?

``make run`` executes each notebook and, with :func:`stamp`, stores in its metadata
(``metadata.pooltools.freshness``) the SHA-256 of its code cells' sources and the mode it ran in
(``full`` or ``quick``). :func:`problem` compares that record with the code the file has now: a
code cell edited, added, removed or moved after the run makes the hash differ, so the outputs
beside it are stale. Markdown cells and outputs are not hashed (editing prose needs no re-run).
Run ``python -m pooltools.tools.freshness notebooks/*.ipynb`` to check from a shell.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat
from nbformat import NotebookNode

__all__ = ["MODES", "code_hash", "stamp", "problem", "main"]

KEY = "freshness"  # under metadata["pooltools"]
MODES = ("full", "quick")
RERUN = "run `make run` to execute it again and refresh its outputs"


def code_hash(nb: NotebookNode) -> str:
    """SHA-256 (hex) of the notebook's code cells' sources, in order (a JSON list, so cell
    boundaries count: splitting or merging two cells changes it)."""
    sources = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    return hashlib.sha256(json.dumps(sources, ensure_ascii=False).encode("utf-8")).hexdigest()


def stamp(nb: NotebookNode, mode: str) -> NotebookNode:
    """Record in ``nb``'s metadata (in place; also returned) that its outputs were just made by
    running its current code cells in ``mode``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, but got {mode!r}")
    record = {"code_sha256": code_hash(nb), "mode": mode}
    nb.metadata.setdefault("pooltools", {})[KEY] = record
    return nb


def problem(nb: NotebookNode, name: str, mode: str | None = "full") -> str | None:
    """Why the outputs of notebook ``name`` are not known to come from its code (or ``None``
    when they do): no record of a run, code changed since, or a run in another ``mode`` than
    required (``mode=None`` accepts any)."""
    record = nb.metadata.get("pooltools", {}).get(KEY)
    if not isinstance(record, dict) or "code_sha256" not in record:
        return f"{name}: no record of the run that made its outputs; {RERUN}"
    if record["code_sha256"] != code_hash(nb):
        return f"{name}: its code cells changed after the run that made its outputs; {RERUN}"
    if mode is not None and record.get("mode") != mode:
        return (
            f"{name}: its outputs come from a {record.get('mode')!r} run, not {mode!r}; {RERUN}"
        )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pooltools.tools.freshness",
        description="Check that each notebook's outputs come from its current code cells.",
    )
    parser.add_argument("notebooks", nargs="+", help="notebook files")
    parser.add_argument("--mode", choices=[*MODES, "any"], default="full",
                        help="the mode the outputs must come from (default full)")  # fmt: skip
    args = parser.parse_args(argv)
    mode = None if args.mode == "any" else args.mode
    problems = [problem(nbformat.read(p, as_version=4), Path(p).name, mode)
                for p in args.notebooks]  # fmt: skip
    for line in filter(None, problems):
        print(line)
    stale = sum(p is not None for p in problems)
    print(f"{len(problems) - stale} of {len(problems)} notebooks up to date")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
