"""One place for the run mode, the device and the seed.

``POOLTOOLS_QUICK=1`` selects the quick mode that CI uses (small seeded subsets, few epochs).
``make test`` sets it; nothing else does, so a learner gets the full mode by default.
"""

from __future__ import annotations

import os
import platform
import random
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = [
    "is_quick",
    "mode",
    "pick",
    "get_device",
    "seed_everything",
    "run_header",
    "cpu_name",
    "machine_info",
    "data_dir",
    "project_root",
    "display_path",
    "machine_line",
]

T = TypeVar("T")
_TRUE = {"1", "true", "yes", "on"}


def is_quick() -> bool:
    """True when ``POOLTOOLS_QUICK`` is set to 1/true/yes/on (read at call time, not import)."""
    return os.environ.get("POOLTOOLS_QUICK", "").strip().lower() in _TRUE


def mode() -> str:
    """``"quick"`` or ``"full"``."""
    return "quick" if is_quick() else "full"


def pick(full: T, quick: T) -> T:
    """Return ``quick`` in quick mode and ``full`` otherwise: ``epochs = pick(10, 1)``."""
    return quick if is_quick() else full


def data_dir() -> Path:
    """Where caches, downloads and checkpoints live.

    ``POOLTOOLS_DATA_DIR`` if set; else the checkout's ``data/`` when pooltools runs from a clone
    (so notebooks, which run inside ``notebooks/``, share one cache with the tests); else ``./data``.
    """
    if os.environ.get("POOLTOOLS_DATA_DIR"):
        return Path(os.environ["POOLTOOLS_DATA_DIR"])
    checkout = project_root()
    return Path("data") if checkout is None else checkout / "data"


def project_root() -> Path | None:
    """The checkout pooltools runs from (the folder with ``pyproject.toml`` and ``notebooks/``),
    or None when pooltools is installed on its own."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "notebooks").is_dir():
        return checkout
    return None


def display_path(path: str | Path) -> str:
    """``path`` as a notebook may print it, without the machine's absolute layout.

    Relative to the project (``data/cifar-10-batches-py``), else to ``$POOLTOOLS_DATA_DIR``, else
    to the home folder (``~/...``), else only its last part (``.../name``); a committed output
    then says the same on every machine.
    """
    path = Path(path).expanduser().resolve()
    anchors: list[tuple[Path, str]] = []
    root = project_root()
    if root is not None:
        anchors.append((root, ""))
    if os.environ.get("POOLTOOLS_DATA_DIR"):
        anchors.append((Path(os.environ["POOLTOOLS_DATA_DIR"]).expanduser().resolve(),
                        "$POOLTOOLS_DATA_DIR"))  # fmt: skip
    anchors.append((Path.home().resolve(), "~"))
    for anchor, name in anchors:
        if path == anchor:
            return name or "."
        if path.is_relative_to(anchor):
            rel = path.relative_to(anchor).as_posix()
            return f"{name}/{rel}" if name else rel
    return f".../{path.name}" if path.name else "/"


def cpu_name() -> str:
    """The CPU's model name (``AMD EPYC``, from /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device | str | None = None) -> dict[str, Any]:
    """The one record of what produced a number (a checkpoint, a timing): CPU, cores, system,
    Python, torch and its threads, and ``device`` (default: :func:`device_name`)."""
    return {
        "cpu": cpu_name(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device) if device is not None else device_name(),
    }


def machine_line(info: dict | None = None) -> str:
    """One line for a machine: ``x86_64, 2 cores, Linux, torch 2.14.1, 2 threads, cpu``.

    ``info``: an environment record such as :func:`pooltools.checkpoint.environment_info` writes
    (keys ``machine``, ``cpu_count``, ``platform``, ``torch``, ``threads``, ``device``, all
    optional); default: this machine. A notebook prints this instead of the raw dict.
    """
    if info is None:
        info = machine_info()
    if not isinstance(info, dict):
        raise TypeError(f"info must be a dict of environment fields, but got {type(info).__name__}")
    parts = []
    if info.get("cpu") or info.get("processor"):
        parts.append(str(info.get("cpu") or info["processor"]))
    if info.get("machine"):
        parts.append(str(info["machine"]))
    if info.get("cpu_count"):
        parts.append(f"{info['cpu_count']} cores")
    if info.get("platform"):
        parts.append(str(info["platform"]).split("-")[0])  # "Linux-6.18...-glibc" -> "Linux"
    if info.get("torch"):
        parts.append(f"torch {str(info['torch']).split('+')[0]}")
    if info.get("threads"):
        n = info["threads"]
        parts.append(f"{n} thread{'' if n == 1 else 's'}")
    if info.get("device"):
        parts.append(str(info["device"]))
    return ", ".join(parts) if parts else "unknown machine"


def get_device() -> torch.device:
    """The best available device: CUDA, then Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices) in one call; return a seeded torch Generator."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA and MPS
    os.environ["PYTHONHASHSEED"] = str(seed)
    return torch.Generator().manual_seed(seed)


def device_name(device: torch.device | None = None) -> str:
    """``cpu``, ``mps``, or ``cuda (<GPU name>)`` for ``device`` (default: :func:`get_device`)."""
    device = get_device() if device is None else device
    return device.type + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else "")


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): how busy the machine was."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def run_header(source: str | None = None) -> str:
    """One-line description of this run: mode, device, threads, machine and its load average (so a
    timing measured beside other work says so), and the data ``source`` if given (a notebook
    passes ``data.describe_source()``).

    Every notebook prints it in its first output, so a reader knows what produced the numbers. It
    holds no absolute path: the data source is named relative to the project or by its variable.
    """
    load = load_average()
    parts = [
        f"mode: {mode()}",
        f"device: {device_name()}",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads",
        f"machine: {platform.machine()} {os.cpu_count()} cores"
        + (f", load {load:.1f}" if load is not None else ""),
    ]
    if source is not None:
        parts.append(f"CIFAR-10: {source}")
    return " | ".join(parts)
