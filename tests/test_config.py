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
    monkeypatch.setenv("POOLTOOLS_QUICK", "1")
    header = config.run_header()
    assert "mode: quick" in header and "device: " in header and "CIFAR-10: " in header
