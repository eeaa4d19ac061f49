"""Maintainers' tool: the reference run times of the notebooks (``make run``).

Runs the speed probe of :mod:`pooltools.setup_check`, executes each notebook in full and quick
mode (optionally saving the full run's outputs into it, stamped for
:mod:`pooltools.tools.freshness`), and writes ``data/reference_timings.json``, from which notebook
0 predicts how long each notebook takes on a learner's machine. A learner never runs this.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pooltools.atomic import write_json_atomic, write_text_atomic
from pooltools.config import load_average, machine_info
from pooltools.setup_check import (
    MODES,
    REFERENCE_FILE,
    SpeedProbe,
    format_duration,
    load_reference,
    reference_path,
    speed_probe,
)

__all__ = ["time_notebook", "record_reference", "main"]


def _load_average() -> float | None:
    load = load_average()
    return None if load is None else round(load, 2)


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Set environment variables for the block (kernels started inside inherit them)."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def time_notebook(
    path: str | Path,
    quick: bool,
    timeout: float = 3600,
    kernel_name: str = "python3",
    save: bool = False,
) -> float:
    """Seconds to execute the notebook at ``path`` top to bottom, kernel start included.

    It runs an in-memory copy with ``POOLTOOLS_QUICK`` set to 1 or 0, in the notebook's own
    folder so its relative paths work, under nbconvert's ``ExecutePreprocessor``. ``save``
    writes the executed notebook back to ``path`` atomically (how the committed outputs are
    made), with only this run's widget state, stamped with the hash of the code cells that
    made them and the mode (:mod:`pooltools.tools.freshness`, which a test checks); otherwise
    the file is never written. A failing cell raises nbconvert's ``CellExecutionError`` and
    leaves the file untouched.
    """
    import nbformat
    from nbconvert.preprocessors import ExecutePreprocessor

    from pooltools.tools import freshness

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    # Widget state is stored from the widgets this run creates; a previous run's (old progress
    # bars, say) would otherwise stay in the file, frozen.
    nb.metadata.pop("widgets", None)
    executor = ExecutePreprocessor(timeout=timeout, kernel_name=kernel_name)
    with _environ(POOLTOOLS_QUICK="1" if quick else "0"):
        start = time.perf_counter()
        executor.preprocess(nb, {"metadata": {"path": str(path.parent.resolve())}})
        seconds = time.perf_counter() - start
    if save:
        freshness.stamp(nb, "quick" if quick else "full")
        write_text_atomic(path, nbformat.writes(nb))
    return seconds


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record_reference(
    notebooks: Sequence[str | Path],
    modes: Sequence[str] = MODES,
    path: str | Path | None = None,
    merge: bool = True,
    probe_seconds: float = 10.0,
    probe: SpeedProbe | None = None,
    timeout: float = 3600,
    log: Callable[[str], None] = print,
    save_full: bool = False,
) -> dict[str, Any]:
    """Run the speed probe, time each notebook in each mode, and write the reference file.

    ``merge`` keeps the other notebooks and modes of an existing file (which must come from a
    machine with the same CPU and core count); each timing stores the probe speed it was
    measured with, so timings from different sessions still scale correctly. The file (default
    ``data/reference_timings.json``) is rewritten atomically after every notebook, so an
    interrupted recording keeps what it finished. ``probe`` skips the probe (tests).
    ``save_full`` writes each full-mode run's outputs back into its notebook (``make run``).
    Returns the written dict.

    Long (about 75 lines) because it is one recording procedure: check, probe, time each notebook, write.
    """
    unknown = sorted(set(modes) - set(MODES))
    if unknown or not modes:
        raise ValueError(f"modes must be a non-empty subset of {MODES}, but got {list(modes)}")
    missing = [str(nb) for nb in notebooks if not Path(nb).is_file()]
    if missing or not notebooks:
        raise ValueError(f"no such notebook(s): {missing or 'none given'}")
    path = reference_path(path)
    machine = machine_info()
    existing = load_reference(path) if merge else None
    if existing is not None:
        before = existing.get("machine", {})
        cores = before.get("cpu_count", before.get("cores"))  # "cores" in older files
        if (before.get("cpu"), cores) != (machine["cpu"], machine["cpu_count"]):
            raise ValueError(
                f"{path} was recorded on another machine ({before.get('cpu')}, {cores} cores); "
                f"record all notebooks again with --replace"
            )
    load_start = _load_average()
    if probe is None:
        log(f"speed probe ({probe_seconds:g} s) ...")
        probe = speed_probe(probe_seconds)
    log(f"  {probe.images_per_s:,.0f} images/s")
    probe_record = {**probe.as_dict(), "images_per_s": round(probe.images_per_s, 2),
                    "seconds": round(probe.seconds, 3)}  # fmt: skip
    result = {
        "about": "Run times of the notebooks on the development machine; see "
        "pooltools/tools/timings.py. Notebook 0 scales them by its probe speed.",
        "recorded_at": _now(),
        "machine": machine,
        "load_average_at_start": load_start,
        "probe": probe_record,
        "notebooks": dict(existing["notebooks"]) if existing else {},
    }
    for nb in notebooks:
        name = Path(nb).stem
        entry = dict(result["notebooks"].get(name, {}))
        for mode in modes:
            log(f"{name} ({mode}) ...")
            load = _load_average()
            seconds = time_notebook(
                nb, quick=mode == "quick", timeout=timeout, save=save_full and mode == "full"
            )
            entry[mode] = {
                "seconds": round(seconds, 2),
                "probe_images_per_s": probe_record["images_per_s"],
                "load_average_at_start": load,
                "recorded_at": _now(),
            }
            log(f"  {format_duration(seconds)} ({seconds:.1f} s)")
        result["notebooks"][name] = entry
        write_json_atomic(path, result)
    log(f"wrote {path}")
    return result


# ------------------------------------------------------------------------------------ CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pooltools.tools.timings",
        description="Time the notebooks in full and quick mode and write data/reference_timings.json "
        "(what notebook 0 predicts run times from); make run calls it.",
    )
    parser.add_argument("--notebooks", nargs="+", required=True, help="notebook files to time")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--out", default=None, help=f"output file (default data/{REFERENCE_FILE})")
    parser.add_argument("--replace", action="store_true",
                        help="start a new file instead of merging into the existing one")  # fmt: skip
    parser.add_argument("--probe-seconds", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=3600, help="per-cell timeout in seconds")
    parser.add_argument("--save-full", action="store_true",
                        help="write each full-mode run's outputs back into its notebook")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    record_reference(
        args.notebooks, args.modes, args.out, merge=not args.replace,
        probe_seconds=args.probe_seconds, timeout=args.timeout, save_full=args.save_full,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
