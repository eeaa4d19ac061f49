"""Test-wide settings: a headless matplotlib backend, and torch on one thread."""

from __future__ import annotations

import matplotlib
import pytest
import torch

matplotlib.use("Agg")


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Run every test's torch ops on one thread, then restore the setting.

    The tests use tiny tensors, where a second OpenMP thread only adds hand-off cost; on a busy
    2-core machine a descheduled worker made a 5-step training test take 6 s instead of 0.07 s.
    No tested result depends on the thread count.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
