"""pooltools.tools.timings: the maintainers' reference run times of the notebooks."""

from __future__ import annotations

import json
import os

import nbformat
import pytest

from pooltools import setup_check
from pooltools.config import machine_info
from pooltools.setup_check import SpeedProbe
from pooltools.tools import timings

REFERENCE = {
    "probe": {"images_per_s": 1000.0},
    "notebooks": {
        "01_a": {"full": {"seconds": 60.0}, "quick": {"seconds": 10.0}},
        "02_b": {"full": {"seconds": 30.0, "probe_images_per_s": 500.0}},
    },
}


def probe_at(images_per_s: float) -> SpeedProbe:
    return SpeedProbe(images_per_s, steps=10, seconds=1.0, device="cpu", batch_size=128, threads=1)


# ------------------------------------------------------------------------------- recording

TINY_NOTEBOOK = [
    "import os, pathlib\nmode = os.environ['POOLTOOLS_QUICK']",
    "out = pathlib.Path(os.environ['SETUP_CHECK_TEST_OUT'])\n"
    "(out / f'ran-{mode}').write_text(os.getcwd())",
]


def test_record_reference_times_a_notebook_and_merges(monkeypatch, tmp_path):
    nb_dir, out = tmp_path / "notebooks", tmp_path / "out"
    nb_dir.mkdir(), out.mkdir()
    notebook = nb_dir / "01_tiny.ipynb"
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in TINY_NOTEBOOK]),
        notebook,
    )
    original = notebook.read_bytes()
    monkeypatch.setenv("SETUP_CHECK_TEST_OUT", str(out))
    monkeypatch.setenv("POOLTOOLS_QUICK", "untouched")
    writes = []
    real_write = timings.write_json_atomic
    monkeypatch.setattr(
        timings, "write_json_atomic", lambda p, o: writes.append(p) or real_write(p, o)
    )
    path = tmp_path / "data" / "reference_timings.json"

    timings.record_reference([notebook], ["full"], path, probe=probe_at(800.0), log=str)
    # the CLI, merging the quick mode into the same file with a real (one-step) probe
    timings.main(["--notebooks", str(notebook), "--modes", "quick",
                  "--out", str(path), "--probe-seconds", "0"])  # fmt: skip

    assert (out / "ran-0").read_text() == str(nb_dir)  # full mode, run in the notebook's folder
    assert (out / "ran-1").read_text() == str(nb_dir)  # quick mode
    assert notebook.read_bytes() == original  # executed a copy, never in place
    assert writes == [path, path] and sorted(p.name for p in path.parent.iterdir()) == [path.name]
    reference = setup_check.load_reference(path)  # valid JSON, valid shape
    recorded = reference["notebooks"]["01_tiny"]
    assert set(recorded) == {"full", "quick"}
    assert recorded["full"]["probe_images_per_s"] == 800.0  # kept from the first recording
    assert recorded["quick"]["probe_images_per_s"] == reference["probe"]["images_per_s"]
    assert all(t["seconds"] > 0 for t in recorded.values())
    machine = reference["machine"]  # the one machine record, as checkpoints store it
    assert machine == {**machine_info(), "threads": machine["threads"]}
    assert os.environ["POOLTOOLS_QUICK"] == "untouched"  # restored after each run


def test_record_reference_refuses_bad_input(tmp_path):
    path = tmp_path / "reference_timings.json"
    with pytest.raises(ValueError, match="modes must be a non-empty subset"):
        timings.record_reference([tmp_path], ["slow"], path, probe=probe_at(1.0))
    with pytest.raises(ValueError, match="no such notebook"):
        timings.record_reference([tmp_path / "nope.ipynb"], path=path, probe=probe_at(1.0))
    notebook = tmp_path / "01_x.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), notebook)
    path.write_text(json.dumps({**REFERENCE, "machine": {"cpu": "another CPU", "cores": 64}}))
    with pytest.raises(ValueError, match="recorded on another machine.*--replace"):
        timings.record_reference([notebook], path=path, probe=probe_at(1.0))


def test_record_reference_can_save_the_full_run_into_the_notebook(monkeypatch, tmp_path):
    notebook = tmp_path / "01_tiny.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os\nprint('mode', os.environ['POOLTOOLS_QUICK'])")]), notebook)  # fmt: skip
    path = tmp_path / "reference_timings.json"
    timings.record_reference(
        [notebook], ["full", "quick"], path, probe=probe_at(1.0), log=str, save_full=True
    )
    (cell,) = nbformat.read(notebook, as_version=4).cells
    assert cell.execution_count == 1
    assert cell.outputs[0].text == "mode 0\n"  # the full run's output, not the quick one's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01_tiny.ipynb", path.name]
