"""pooltools.setup_check: every check on its passing and failing path, the probe, the predictions
and the recording of reference timings (on a tiny two-cell notebook)."""

from __future__ import annotations

import json
import socket
import tomllib
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from PIL import Image

from pooltools import data, setup_check
from pooltools.config import get_device
from pooltools.setup_check import Check, SpeedProbe
from pooltools.train import RECIPE

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["packaging", "tiny parser"])
def version_backend(request, monkeypatch):
    """Run a test with packaging, then again with the fallback parser."""
    if request.param == "tiny parser":
        monkeypatch.setattr(setup_check, "_HAVE_PACKAGING", False)
    return request.param


# ---------------------------------------------------------------------------------- versions


@pytest.mark.parametrize(
    "version, spec, expected",
    [
        ("2.14.1+cpu", ">=2.4", True),  # local tag ignored; 14 > 4 numerically, not as text
        ("2.4", ">=2.4", True),
        ("2.4.0", ">=2.4", True),
        ("2.3.1", ">=2.4", False),
        ("1.24.4", ">=1.25", False),
        ("3.10.12", ">=3.11", False),
        ("3.11.0", ">=3.11", True),
        ("3.0", ">=1.25,<3", False),
        ("2.9", ">=1.25,<3", True),
        ("0.1", "", True),
    ],
)
def test_satisfies(version_backend, version, spec, expected):
    assert setup_check.satisfies(version, spec) is expected


release = st.lists(st.integers(0, 20), min_size=1, max_size=4).map(lambda p: ".".join(map(str, p)))


@settings(max_examples=200, deadline=None)
@given(release, st.sampled_from([">=", ">", "<=", "<", "==", "!="]), release)
def test_tiny_parser_agrees_with_packaging_on_release_versions(version, op, bound):
    expected = SpecifierSet(f"{op}{bound}").contains(Version(version))
    setup_check._HAVE_PACKAGING = False
    try:
        assert setup_check.satisfies(version, f"{op}{bound}") is expected
    finally:
        setup_check._HAVE_PACKAGING = True


def test_tiny_parser_names_the_clauses_it_understands(monkeypatch):
    monkeypatch.setattr(setup_check, "_HAVE_PACKAGING", False)
    with pytest.raises(ValueError, match=r"unsupported version clause '~=1.2'.*>=, >"):
        setup_check.satisfies("1.3", "~=1.2")
    with pytest.raises(ValueError, match="cannot read a version number from 'abc'"):
        setup_check.satisfies("abc", ">=1")


def test_declared_requirements_are_pyprojects():
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    declared = setup_check.declared_requirements()
    assert declared.pop("python") == project["requires-python"]
    from_toml = {}
    for line in project["dependencies"]:
        name, spec = line.split(">=")
        from_toml[name.strip().lower()] = ">=" + spec.strip()
    assert declared == from_toml  # no dev extras: learners don't need them


def test_python_check():
    assert setup_check.check_python().ok
    old = setup_check.check_python("3.10.4", ">=3.11")
    assert not old.ok and "3.10.4 is too old (needs >=3.11)" in old.detail
    assert "python3.11 -m venv" in old.fix


def test_package_check_ok_too_old_and_missing():
    torch_check = setup_check.check_package("torch", ">=2.4")
    assert torch_check.ok and torch_check.detail.startswith(metadata.version("torch"))
    old = setup_check.check_package("numpy", ">=1.25", version="1.24.4")
    assert not old.ok and "too old" in old.detail
    assert 'pip install --upgrade "numpy>=1.25"' in old.fix
    missing = setup_check.check_package("no-such-package-pooltools-test", ">=1.0")
    assert not missing.ok and "not installed" in missing.detail and "make install" in missing.fix


def test_package_checks_cover_python_and_every_package():
    checks = setup_check.check_packages()
    assert [c.name for c in checks][0] == "python"
    assert set(setup_check.PACKAGES) <= {c.name for c in checks}
    assert all(c.ok for c in checks), setup_check.format_report(checks)
    failing = setup_check.check_packages({"python": ">=99", "torch": ">=99"})
    assert {c.name for c in failing if not c.ok} == {"python", "torch"}


def test_pooltools_check(monkeypatch):
    ok = setup_check.check_pooltools()
    assert ok.ok and ok.detail.endswith("imported from pooltools")  # relative: no machine path

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(setup_check.metadata, "version", not_installed)
    check = setup_check.check_pooltools()
    assert not check.ok and "not installed" in check.detail and "restart the kernel" in check.fix

    def no_import(name):
        raise ImportError("No module named 'pooltools'")

    monkeypatch.setattr(setup_check.importlib, "import_module", no_import)
    check = setup_check.check_pooltools()
    assert not check.ok and "cannot be imported" in check.detail and "setup" in check.fix


@pytest.mark.parametrize(
    "ipywidgets, frontend, ok",
    [("8.1.2", "3.0.10", True), ("7.7.1", "1.1.1", True), ("8.1.2", "1.1.1", False),
     ("7.7.1", "3.0.10", False), ("8.1.2", "", False), ("", "3.0.10", False)],
)  # fmt: skip
def test_widgets_check(ipywidgets, frontend, ok):
    check = setup_check.check_widgets(ipywidgets, frontend)
    assert check.ok is ok
    assert (check.fix is None) is ok
    if not ok:
        assert "restart JupyterLab" in check.fix


@pytest.mark.parametrize("front, ok", [("3.0.10", True), ("1.1.1", False)])
def test_widgets_check_reads_the_installed_versions(monkeypatch, front, ok):
    """Without arguments the check asks importlib.metadata, and judges what it says."""
    versions = {"ipywidgets": "8.1.2", "jupyterlab_widgets": front}
    monkeypatch.setattr(setup_check.metadata, "version", versions.__getitem__)
    check = setup_check.check_widgets()
    assert check.ok is ok and f"jupyterlab_widgets {front}" in check.detail


# ---------------------------------------------------------------------------------- CIFAR-10


def test_internet_reachable_opens_a_tcp_connection():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert setup_check.internet_reachable("127.0.0.1", port, timeout=1.0)
    assert not setup_check.internet_reachable("127.0.0.1", port, timeout=1.0)  # closed now


def fake_image_folder(folder: Path, per_class: int = 1) -> Path:
    pixel = np.zeros((32, 32, 3), dtype=np.uint8)
    for split in ("train", "test"):
        for name in data.CIFAR10_CLASSES:
            (folder / split / name).mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(pixel).save(folder / split / name / f"{i}.png")
    return folder


def never(_=None) -> bool:
    raise AssertionError("the network must not be tried when a source is present")


def test_cifar10_from_an_image_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(data.ENV_VAR, str(fake_image_folder(tmp_path / "cifar", per_class=2)))
    check = setup_check.check_cifar10(tmp_path / "data", reachable=never)
    assert check.ok and check.fix is None
    assert check.detail.startswith(data.describe_source(tmp_path / "data"))
    assert "20 train and 20 test images" in check.detail


@pytest.mark.parametrize("layout", ["empty", "missing", "no test split", "empty class", "extra class"])
def test_cifar10_broken_image_folder(monkeypatch, tmp_path, layout):
    folder = tmp_path / "cifar"
    if layout == "empty":
        folder.mkdir()
    elif layout != "missing":
        fake_image_folder(folder)
        for path in (folder / "test").rglob("*.png") if layout == "empty class" else []:
            path.unlink()
        if layout == "extra class":  # load_cifar10 refuses it, so the check must too
            (folder / "train" / "truck2").mkdir()
        if layout == "no test split":
            for path in sorted((folder / "test").rglob("*"), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
            (folder / "test").rmdir()
    monkeypatch.setenv(data.ENV_VAR, str(folder))
    check = setup_check.check_cifar10(tmp_path / "data", reachable=never)
    assert not check.ok and data.ENV_VAR in check.fix
    expected = {"empty": "has no train/", "missing": "does not exist",
                "no test split": "has no test/", "empty class": "has no .jpg",
                "extra class": "unexpected ['truck2']"}[layout]  # fmt: skip
    assert expected in check.detail


def test_cifar10_torchvision_files(monkeypatch, tmp_path):
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    (tmp_path / data.TV_FOLDER).mkdir()
    check = setup_check.check_cifar10(tmp_path, reachable=never)
    assert check.ok and check.detail == data.describe_source(tmp_path)


def test_cifar10_download_needs_the_network(monkeypatch, tmp_path):
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    online = setup_check.check_cifar10(tmp_path, reachable=lambda: True)
    assert online.ok and "170 MB" in online.detail
    offline = setup_check.check_cifar10(tmp_path, reachable=lambda: False)
    assert not offline.ok and "not reachable" in offline.detail
    assert data.ENV_VAR in offline.fix and "170 MB" in offline.fix
    # the default network check is looked up at call time, so it can be patched
    monkeypatch.setattr(setup_check, "internet_reachable", lambda: False)
    assert not setup_check.check_cifar10(tmp_path).ok


# --------------------------------------------------------------------------- device, speed


def test_device_check():
    check = setup_check.check_device()
    assert check.ok and check.name == "device"
    expected = {"cpu": "CPU", "cuda": "CUDA", "mps": "MPS"}[get_device().type]
    assert expected in check.detail


def test_speed_probe_measures_positive_speed_and_keeps_the_rng():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    probe = setup_check.speed_probe(seconds=0.5)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert probe.steps >= 1 and probe.images_per_s > 0 and probe.seconds >= 0.5
    batch = RECIPE.batch_size  # the probe times the recipe's own step
    assert probe.images_per_s == pytest.approx(probe.steps * batch / probe.seconds)
    assert (probe.batch_size, probe.device, probe.model) == (batch, get_device().type, "base")
    assert probe.threads == torch.get_num_threads()


def test_speed_probe_runs_the_training_loops_step(monkeypatch):
    """The probe must time pooltools.train's step with the recipe's loss, not a copy of it."""
    seen = []
    real = setup_check.train_step
    monkeypatch.setattr(setup_check, "train_step",
                        lambda *a: seen.append(a[4]) or real(*a))  # fmt: skip
    assert setup_check.speed_probe(seconds=0).steps == 1
    assert seen == [RECIPE.label_smoothing] * 2  # the warm-up step and the timed one


def test_speed_probe_checks_its_arguments():
    with pytest.raises(ValueError, match="seconds must be a non-negative number"):
        setup_check.speed_probe(seconds=-1)


REFERENCE = {
    "probe": {"images_per_s": 1000.0},
    "notebooks": {
        "01_a": {"full": {"seconds": 60.0}, "quick": {"seconds": 10.0}},
        "02_b": {"full": {"seconds": 30.0, "probe_images_per_s": 500.0}},  # its own probe speed
    },
}


def probe_at(images_per_s: float) -> SpeedProbe:
    return SpeedProbe(images_per_s, steps=10, seconds=1.0, device="cpu", batch_size=128, threads=1)


def test_expected_run_times_scale_by_the_speed_ratio():
    # half the reference speed: twice the time; 02_b was recorded at 500 images/s: unchanged
    expected = {"01_a": {"full": 120.0, "quick": 20.0}, "02_b": {"full": 30.0}}
    assert setup_check.expected_run_times(probe_at(500.0), REFERENCE) == expected
    assert setup_check.expected_run_times(2000.0, REFERENCE)["01_a"] == {"full": 30.0, "quick": 5.0}
    with pytest.raises(ValueError, match="must be positive"):
        setup_check.expected_run_times(0.0, REFERENCE)
    with pytest.raises(ValueError, match="probe.images_per_s must be a positive number"):
        setup_check.expected_run_times(1.0, {"probe": {}, "notebooks": {}})


def test_speed_check_with_and_without_reference():
    assert "no reference timings" in setup_check.check_speed(probe_at(500.0), None).detail
    slower = setup_check.check_speed(probe_at(500.0), REFERENCE)
    assert slower.ok and "training parts to take 2.0x as long as" in slower.detail
    assert "one epoch of CIFAR-10 takes about 2 min" in slower.detail  # 50,000 / 500 = 100 s
    assert "training parts to run 2.0x faster than" in setup_check.check_speed(probe_at(2000.0), REFERENCE).detail
    assert "about as long as" in setup_check.check_speed(probe_at(1010.0), REFERENCE).detail


def test_load_reference(tmp_path):
    path = tmp_path / "reference_timings.json"
    assert setup_check.load_reference(path) is None
    path.write_text(json.dumps(REFERENCE))
    assert setup_check.load_reference(path) == REFERENCE
    path.write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        setup_check.load_reference(path)
    path.write_text(json.dumps({"probe": {"images_per_s": 1}, "notebooks": {"01": {"slow": {}}}}))
    with pytest.raises(ValueError, match="must map 'full'/'quick'.*record it again"):
        setup_check.load_reference(path)


@pytest.mark.parametrize(
    "seconds, text", [(0.2, "1 s"), (42.4, "42 s"), (150, "2 min"), (3599, "1 h 00 min"),
                      (3900, "1 h 05 min")],
)  # fmt: skip
def test_format_duration(seconds, text):
    assert setup_check.format_duration(seconds) == text


def test_format_expected_is_one_row_per_notebook():
    table = setup_check.format_expected({"01_a": {"full": 120.0, "quick": 20.0}, "02_b": {}})
    lines = table.splitlines()
    assert lines[0].split() == ["notebook", "full", "quick"]
    assert lines[1].split() == ["01_a", "~2", "min", "~20", "s"]
    assert lines[2].split() == ["02_b", "-", "-"]


def test_predictions_text():
    assert "No reference timings yet" in setup_check.format_predictions(probe_at(500.0), None)
    text = setup_check.format_predictions(probe_at(500.0), REFERENCE)
    assert "1,000 images/s" in text and "500 images/s" in text
    assert text.endswith(
        setup_check.format_expected(setup_check.expected_run_times(500.0, REFERENCE))
    )


# ------------------------------------------------------------------------------- reporting

CHECKS = [Check("python", True, "3.11.7"), Check("CIFAR-10", False, "<missing>", "set it")]


def test_text_report_marks_each_check_and_gives_fixes_for_failures():
    lines = setup_check.format_report(CHECKS).splitlines()
    assert lines[0].startswith("✅ python") and lines[1].startswith("❌ CIFAR-10")
    assert lines[2].strip() == "fix: set it" and len(lines) == 3


def test_html_report_escapes_and_shows_fixes_only_when_needed():
    table = setup_check.format_html(CHECKS)
    assert table.count("<tr>") == 3 and "&lt;missing&gt;" in table and "<missing>" not in table
    assert "how to fix" in table and "set it" in table
    assert "how to fix" not in setup_check.format_html(CHECKS[:1])


def test_summary():
    assert setup_check.summarize(CHECKS[:1]) == "All checks passed: you are ready for notebook 1."
    assert setup_check.summarize(CHECKS).splitlines() == [
        "1 check failed. Fix, then run again:",
        "  - CIFAR-10: set it",
    ]


def test_cli_prints_the_report(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(setup_check, "internet_reachable", lambda: False)
    monkeypatch.setenv("POOLTOOLS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    assert setup_check.main(["--seconds", "0"]) == 1  # no CIFAR-10 anywhere, offline
    out = capsys.readouterr().out
    assert "✅ python" in out and "❌ CIFAR-10" in out and "1 check failed" in out
