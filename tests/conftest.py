"""Test-wide settings: a headless matplotlib backend and a data cache outside the repo."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
