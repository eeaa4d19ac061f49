"""pooltools.config: run mode, device choice, seeding and the run header."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from pooltools import config


@pytest.mark.parametrize(
    "value, quick",
    [("1", True), ("true", True), ("YES", True), ("0", False), ("", False), ("no", False)],
)
def test_quick_mode_is_read_from_the_environment(monkeypatch, value, quick):
    monkeypatch.setenv("POOLTOOLS_QUICK", value)
    assert config.is_quick() is quick
    assert config.mode() == ("quick" if quick else "full")
    assert config.pick("full", "quick") == ("quick" if quick else "full")


def test_full_mode_is_the_default(monkeypatch):
    monkeypatch.delenv("POOLTOOLS_QUICK", raising=False)
    assert config.mode() == "full"


def test_device_is_cpu_without_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert config.get_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert config.get_device() == torch.device("cuda")


def test_seed_everything_makes_all_generators_repeat():
    def draw():
        gen = config.seed_everything(123)
        return (
            random.random(),
            np.random.rand(),
            torch.rand(3).tolist(),
            torch.rand(2, generator=gen).tolist(),
        )

    assert draw() == draw()
    config.seed_everything(124)
    assert torch.rand(3).tolist() != draw()[2]


def test_run_header_names_mode_device_and_data(monkeypatch):
    from pooltools import data

    monkeypatch.setenv("POOLTOOLS_QUICK", "1")
    header = config.run_header(data.describe_source())
    assert "mode: quick" in header and "device: " in header and "CIFAR-10: " in header
    assert "CIFAR-10" not in config.run_header()  # no source given, none named


ABSOLUTE = ("/work/", "/root/", "/home/", "/tmp/", "/Users/", "C:\\")


def _no_absolute_path(text: str, *paths) -> None:
    for marker in (*ABSOLUTE, *(str(p) for p in paths)):
        assert marker not in text, f"{marker!r} in {text!r}"


def test_run_header_names_the_env_folder_by_its_variable(monkeypatch, tmp_path):
    from pooltools import data

    folder = tmp_path / "cifar10-jpeg"
    folder.mkdir()
    monkeypatch.setenv(data.ENV_VAR, str(folder))
    header = config.run_header(data.describe_source())
    assert f"CIFAR-10: ImageFolder at ${data.ENV_VAR} (cifar10-jpeg)" in header
    _no_absolute_path(header, tmp_path)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "gone"))
    assert "(gone, MISSING)" in config.run_header(data.describe_source())


def test_run_header_is_one_line_without_absolute_paths(monkeypatch):
    from pooltools import data

    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.delenv("POOLTOOLS_DATA_DIR", raising=False)
    header = config.run_header(data.describe_source())
    assert "\n" not in header and "{" not in header
    _no_absolute_path(header, config.project_root() or "/nonexistent-root")
    if config.project_root() is not None:
        assert "torchvision" in header and " data/" in header  # relative to the project


def test_display_path_is_relative_to_project_data_dir_or_home(monkeypatch, tmp_path):
    root = config.project_root()
    if root is not None:
        assert config.display_path(root / "data" / "x") == "data/x"
        assert config.display_path(root) == "."
    monkeypatch.setenv("POOLTOOLS_DATA_DIR", str(tmp_path / "caches"))
    assert config.display_path(tmp_path / "caches" / "cifar") == "$POOLTOOLS_DATA_DIR/cifar"
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    assert config.display_path(tmp_path / "me" / "data") == "~/data"
    elsewhere = config.display_path("/opt/somewhere/cifar")
    assert elsewhere == ".../cifar"


def test_machine_line_turns_an_environment_record_into_one_line():
    record = {"torch": "2.14.1+cu130", "device": "cpu", "threads": 2, "machine": "x86_64",
              "platform": "Linux-6.18.44-fc-v657-x86_64-with-glibc2.36", "processor": "",
              "cpu_count": 2, "python": "3.11.7"}  # fmt: skip
    line = config.machine_line(record)
    assert line == "x86_64, 2 cores, Linux, torch 2.14.1, 2 threads, cpu"
    here = config.machine_line()
    assert "\n" not in here and "{" not in here and "cores" in here
    assert config.machine_line({}) == "unknown machine"
    with pytest.raises(TypeError, match="must be a dict"):
        config.machine_line("x86_64")
