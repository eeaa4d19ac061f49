"""Is this machine ready for the series? Versions, widgets, CIFAR-10, device and training speed.

Every check returns a :class:`Check`: its name, whether it passed, what it found and, when it
failed, how to fix it. ``notebooks/00_setup_check.ipynb`` runs them one by one; in a terminal::

    python -m pooltools.setup_check                  # the whole report, with a 10 s speed probe

The maintainers' ``make run`` (:mod:`pooltools.tools.timings`) stores each notebook's run time
with the probe speed of the development machine in ``data/reference_timings.json``; a learner's
probe then predicts how long each notebook takes on their machine:
``reference seconds x reference images/s / measured images/s``.
"""

from __future__ import annotations

import argparse
import html
import importlib
import importlib.metadata as metadata
import json
import os
import platform
import re
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from pooltools import data
from pooltools.config import data_dir, display_path, get_device, pick
from pooltools.models import build_model
from pooltools.train import RECIPE, make_optimizer, train_step

try:  # packaging ships with pip/jupyter almost everywhere; the tiny parser below is the fallback
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version
except ImportError:  # pragma: no cover - exercised by monkeypatching _HAVE_PACKAGING
    SpecifierSet = Version = InvalidVersion = None  # type: ignore[assignment,misc]

__all__ = [
    "Check",
    "SpeedProbe",
    "PACKAGES",
    "REFERENCE_FILE",
    "satisfies",
    "declared_requirements",
    "check_python",
    "check_package",
    "check_packages",
    "check_pooltools",
    "check_widgets",
    "internet_reachable",
    "check_cifar10",
    "check_device",
    "speed_probe",
    "check_speed",
    "load_reference",
    "reference_path",
    "expected_run_times",
    "format_duration",
    "format_expected",
    "format_predictions",
    "format_report",
    "format_html",
    "summarize",
    "main",
]

_HAVE_PACKAGING = SpecifierSet is not None
DIST = "pooltools"
# Checked even if pooltools' metadata cannot be read (then without their minimum versions).
PACKAGES: tuple[str, ...] = (
    "torch", "torchvision", "numpy", "matplotlib", "ipywidgets", "jupyterlab", "tqdm",
    "pillow", "nbformat", "nbconvert",
)  # fmt: skip
REFERENCE_FILE = "reference_timings.json"
MODES = ("full", "quick")
CIFAR10_TRAIN_IMAGES = 50_000
CIFAR10_HOST, CIFAR10_PORT = "www.cs.toronto.edu", 443  # where torchvision downloads CIFAR-10
# ipywidgets major version -> the jupyterlab_widgets major version its JupyterLab front end needs
WIDGETS_FRONTEND = {7: 1, 8: 3}
INSTALL_FIX = (
    "run `make install` in the repository (or `pip install -e .`), then restart the kernel"
)


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``fix`` says what to do when ``ok`` is false (None when it passed)."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None


# --------------------------------------------------------------------------------- versions


def _release(text: str) -> tuple[int, ...]:
    """Leading release numbers of a version, trailing zeros dropped: ``"2.4.0+cpu"`` -> (2, 4)."""
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", text)
    if match is None:
        raise ValueError(f"cannot read a version number from {text!r}")
    parts = [int(p) for p in match.group(1).split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


_OPS: dict[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]] = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
}


def satisfies(version: str, spec: str) -> bool:
    """True if ``version`` meets ``spec`` (e.g. ``">=2.4"``, ``">=1.25,<3"``; empty: anything).

    Uses ``packaging`` when installed (pre-releases and local tags such as ``+cpu`` allowed);
    otherwise a tiny parser that compares release numbers only (``1.26rc1`` counts as ``1.26``).
    """
    if _HAVE_PACKAGING:
        try:
            return SpecifierSet(spec).contains(Version(version), prereleases=True)
        except InvalidVersion:
            pass  # an odd version string: fall back to its leading numbers
    have = _release(version)
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        match = re.fullmatch(r"(>=|<=|==|!=|>|<)\s*([\w.+!*-]+)", clause)
        if match is None:
            raise ValueError(
                f"unsupported version clause {clause!r}; allowed: >=, >, <=, <, ==, !="
            )
        op, bound = match.groups()
        if not _OPS[op](have, _release(bound)):
            return False
    return True


def declared_requirements(dist: str = DIST) -> dict[str, str]:
    """The version specifiers ``dist`` declares, read from its installed metadata.

    ``{"python": ">=3.11", "numpy": ">=1.25", ...}``: ``Requires-Python`` first, then every
    requirement that is not an extra (dev tools are not needed to follow the notebooks). Names are
    lower case. Raises ``importlib.metadata.PackageNotFoundError`` if ``dist`` is not installed.
    """
    meta = metadata.metadata(dist)
    out = {"python": (meta.get("Requires-Python") or "").replace(" ", "")}
    for line in metadata.requires(dist) or []:
        requirement, _, marker = line.partition(";")
        if "extra" in marker:
            continue
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)", requirement)
        if match:
            name, spec = match.groups()
            out[name.lower().replace("_", "-")] = spec.replace(" ", "").strip("()")
    return out


def _needs(spec: str) -> str:
    return f" (needs {spec})" if spec else ""


def check_python(version: str | None = None, spec: str | None = None) -> Check:
    """This interpreter against pooltools' ``Requires-Python`` (both overridable for tests)."""
    version = platform.python_version() if version is None else version
    if spec is None:
        spec = _declared().get("python", "")
    if satisfies(version, spec):
        return Check("python", True, f"{version}{_needs(spec)}")
    return Check(
        "python",
        False,
        f"{version} is too old{_needs(spec)}",
        "create the environment with a newer Python: `python3.11 -m venv .venv && make install`, "
        "or `conda env create -f environment.yml`; then pick that kernel",
    )


def check_package(name: str, spec: str = "", version: str | None = None) -> Check:
    """Is distribution ``name`` installed, in a version that meets ``spec``?

    ``version`` overrides the installed version (tests); ``""`` means "not installed".
    """
    if version is None:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = ""
    pin = f'"{name}{spec}"' if spec else name
    if not version:
        return Check(name, False, f"not installed{_needs(spec)}", INSTALL_FIX)
    if not satisfies(version, spec):
        return Check(
            name,
            False,
            f"{version} is too old{_needs(spec)}",
            f"run `make install` (or `pip install --upgrade {pin}`), then restart the kernel",
        )
    return Check(name, True, f"{version}{_needs(spec)}")


def _declared() -> dict[str, str]:
    try:
        return declared_requirements()
    except metadata.PackageNotFoundError:
        return {}


def check_packages(requirements: dict[str, str] | None = None) -> list[Check]:
    """Python and every package the series needs, each against its declared minimum."""
    requirements = _declared() if requirements is None else requirements
    checks = [check_python(spec=requirements.get("python", ""))]
    names = [n for n in requirements if n != "python"]
    names += [n for n in PACKAGES if n not in requirements]
    return checks + [check_package(n, requirements.get(n, "")) for n in names]


def check_pooltools() -> Check:
    """Can ``pooltools`` be imported, and is it installed (so its metadata can be read)?"""
    try:
        module = importlib.import_module("pooltools")
    except ImportError as exc:
        return Check(
            "pooltools", False, f"cannot be imported ({exc})", "run the first cell (setup) again"
        )
    where = display_path(Path(module.__file__).resolve().parent)
    try:
        version = metadata.version(DIST)
    except metadata.PackageNotFoundError:
        return Check(
            "pooltools",
            False,
            f"imported from {where}, but not installed, so its requirements cannot be read",
            "restart the kernel (the setup cell installed it), or run `make install`",
        )
    return Check("pooltools", True, f"{version}, imported from {where}")


def check_widgets(ipywidgets: str | None = None, jupyterlab_widgets: str | None = None) -> Check:
    """Do ipywidgets and JupyterLab's widget front end (``jupyterlab_widgets``) fit together?

    ipywidgets 8 needs jupyterlab_widgets 3, ipywidgets 7 needs 1; with a mismatch sliders show
    up as text. Versions are overridable for tests; ``""`` means "not installed".
    """
    found = {}
    for name, given in [("ipywidgets", ipywidgets), ("jupyterlab_widgets", jupyterlab_widgets)]:
        if given is None:
            try:
                given = metadata.version(name)
            except metadata.PackageNotFoundError:
                given = ""
        found[name] = given
    fix = (
        'run `pip install --upgrade "ipywidgets>=8" "jupyterlab_widgets>=3"` in the environment '
        "that runs JupyterLab, then restart JupyterLab and reload the browser tab"
    )
    missing = [name for name, v in found.items() if not v]
    if missing:
        return Check("widgets", False, f"{' and '.join(missing)} not installed", fix)
    major = _release(found["ipywidgets"])[0]
    front = _release(found["jupyterlab_widgets"])[0]
    detail = f"ipywidgets {found['ipywidgets']}, jupyterlab_widgets {found['jupyterlab_widgets']}"
    if WIDGETS_FRONTEND.get(major) != front:
        needed = WIDGETS_FRONTEND.get(major)
        why = f"ipywidgets {major} needs jupyterlab_widgets {needed}" if needed else "unknown pair"
        return Check("widgets", False, f"{detail}: {why}", fix)
    return Check("widgets", True, f"{detail}: a matching pair")


# --------------------------------------------------------------------------------- CIFAR-10


def internet_reachable(
    host: str = CIFAR10_HOST, port: int = CIFAR10_PORT, timeout: float = 3.0
) -> bool:
    """True if a TCP connection to ``host:port`` opens within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def check_cifar10(
    root: str | Path | None = None, reachable: Callable[[], bool] | None = None
) -> Check:
    """Which CIFAR-10 source ``pooltools.data.load_cifar10`` would use; downloads nothing.

    ``POOLTOOLS_CIFAR10_DIR`` (checked for the ImageFolder layout), else torchvision's files in
    ``root`` (default: the project's ``data/``), else a download; only then is the network tried
    (``reachable()``, default :func:`internet_reachable`: a 3 s connect to the download server).
    """
    root = data_dir() if root is None else Path(root)
    reachable = internet_reachable if reachable is None else reachable
    source = data.describe_source(root)
    how = (
        f"set {data.ENV_VAR} to a CIFAR-10 ImageFolder copy (train/<class>/*.jpg, "
        f"test/<class>/*.jpg), or copy torchvision's {data.TV_FOLDER} folder into {root.resolve()}, "
        "or go online so torchvision can download it (about 170 MB)"
    )
    folder = os.environ.get(data.ENV_VAR, "").strip()
    if folder:
        images = Path(folder).expanduser().resolve()
        try:  # the layout check that load_cifar10 itself runs
            counts = {
                split: sum(len(files) for files in data.list_image_folder(images, split, root))
                for split in ("train", "test")
            }
        except data.CIFAR10NotFoundError as error:
            return Check(
                "CIFAR-10", False, "; ".join(error.looked_at),
                f"point {data.ENV_VAR} at a folder with train/<class>/ and test/<class>/ "
                f"(the 10 classes), or unset it so torchvision loads (or downloads) it into "
                f"{display_path(root)}",
            )  # fmt: skip
        sizes = f"{counts['train']:,} train and {counts['test']:,} test images"
        cached = f"decoded on first use, then cached in {display_path(root)}"
        return Check("CIFAR-10", True, f"{source}: {sizes} ({cached})")
    if (root / data.TV_FOLDER).is_dir():
        return Check("CIFAR-10", True, source)
    if reachable():
        return Check(
            "CIFAR-10", True,
            f"{source}; {CIFAR10_HOST} is reachable, so notebook 1 downloads it (about 170 MB) "
            "on first use",
        )  # fmt: skip
    return Check("CIFAR-10", False, f"{source}, and {CIFAR10_HOST} is not reachable", how)


# ------------------------------------------------------------------------- device and speed


def check_device() -> Check:
    """The device the notebooks will use (``pooltools.config.get_device``): any one works."""
    device = get_device()
    if device.type == "cuda":
        return Check("device", True, f"CUDA GPU ({torch.cuda.get_device_name()})")
    if device.type == "mps":
        return Check("device", True, "Apple GPU (MPS)")
    return Check(
        "device", True,
        f"CPU ({os.cpu_count()} cores, torch uses {torch.get_num_threads()} threads): every "
        "notebook is made to run on a CPU",
    )  # fmt: skip


@dataclass(frozen=True)
class SpeedProbe:
    """What :func:`speed_probe` measured: training images per second of the ``base`` model."""

    images_per_s: float
    steps: int
    seconds: float
    device: str
    batch_size: int
    threads: int
    model: str = "base"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def speed_probe(
    seconds: float = 10.0,
    device: torch.device | str | None = None,
    seed: int = 0,
) -> SpeedProbe:
    """Train ``base`` with :data:`pooltools.train.RECIPE` (its architecture, batch size,
    optimizer and loss) on random batches for about ``seconds`` of wall time; return its speed.

    Each step is the training loop's own: batch crop + flip, channels_last, then
    :func:`pooltools.train.train_step`. One warm-up step is not timed; at least one step is.
    The caller's random state is left untouched.
    """
    if not seconds >= 0:
        raise ValueError(f"seconds must be a non-negative number, but got {seconds!r}")
    device = torch.device(device) if device is not None else get_device()
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model("base", **RECIPE.model_kwargs)
    model = model.to(device, memory_format=torch.channels_last).train()
    optimizer = make_optimizer(model, RECIPE)
    batch_size = RECIPE.batch_size
    images = torch.randn(batch_size, 3, 32, 32, generator=generator)  # (B, 3, 32, 32)
    labels = torch.randint(0, 10, (batch_size,), generator=generator).to(device)  # (B,)

    def step() -> None:
        x = data.random_crop_flip(images, generator).to(device)  # (B, 3, 32, 32) channels_last
        x = x.contiguous(memory_format=torch.channels_last)
        train_step(model, optimizer, x, labels, RECIPE.label_smoothing)

    step()  # warm-up: first-call allocations and kernel selection
    _synchronize(device)
    steps, start = 0, time.perf_counter()
    while steps == 0 or time.perf_counter() - start < seconds:
        step()
        steps += 1
        if device.type != "cpu":
            _synchronize(device)
    elapsed = time.perf_counter() - start
    return SpeedProbe(
        images_per_s=steps * batch_size / elapsed,
        steps=steps,
        seconds=elapsed,
        device=device.type,
        batch_size=batch_size,
        threads=torch.get_num_threads(),
    )


# ------------------------------------------------------------------------ reference timings


def reference_path(path: str | Path | None) -> Path:
    return data_dir() / REFERENCE_FILE if path is None else Path(path)


def _check_reference(obj: Any, where: str) -> dict[str, Any]:
    """Raise ``ValueError`` (saying what is wrong) unless ``obj`` is a reference-timings dict."""

    def bad(what: str) -> ValueError:
        return ValueError(
            f"{where}: {what}; record it again with `python -m pooltools.tools.timings "
            "--notebooks notebooks/0[1-4]*.ipynb`"
        )

    if not isinstance(obj, dict) or not isinstance(obj.get("notebooks"), dict):
        raise bad("expected an object with a 'notebooks' object")
    speed = obj.get("probe", {}).get("images_per_s") if isinstance(obj.get("probe"), dict) else None
    if not isinstance(speed, (int, float)) or speed <= 0:
        raise bad(f"probe.images_per_s must be a positive number, got {speed!r}")
    for name, modes in obj["notebooks"].items():
        if not isinstance(modes, dict) or not set(modes) <= set(MODES):
            raise bad(f"notebooks.{name} must map 'full'/'quick' to timings, got {modes!r}")
        for mode, entry in modes.items():
            ok = isinstance(entry, dict) and isinstance(entry.get("seconds"), (int, float))
            if not ok or entry["seconds"] < 0:
                raise bad(f"notebooks.{name}.{mode}.seconds must be a number >= 0, got {entry!r}")
    return obj


def load_reference(path: str | Path | None = None) -> dict[str, Any] | None:
    """The committed reference timings (default ``data/reference_timings.json``); None if absent.

    Raises ``ValueError`` if the file exists but is not valid reference timings.
    """
    path = reference_path(path)
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); record it again") from None
    return _check_reference(obj, str(path))


def expected_run_times(
    probe: SpeedProbe | float, reference: dict[str, Any]
) -> dict[str, dict[str, float]]:
    """Predicted seconds per notebook and mode: ``reference seconds x reference speed / speed``.

    ``probe`` is a :class:`SpeedProbe` or images/s. Each timing is scaled by the probe speed it
    was recorded with (``probe_images_per_s``, else the file's ``probe.images_per_s``). An
    estimate: training-heavy parts scale with the probe, the rest (plots, imports) less.
    """
    speed = probe.images_per_s if isinstance(probe, SpeedProbe) else float(probe)
    if not speed > 0:
        raise ValueError(f"the measured speed must be positive, but got {speed!r} images/s")
    reference = _check_reference(reference, "reference")
    default = reference["probe"]["images_per_s"]
    return {
        name: {
            mode: entry["seconds"] * entry.get("probe_images_per_s", default) / speed
            for mode, entry in modes.items()
        }
        for name, modes in reference["notebooks"].items()
    }


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min``, ``1 h 05 min``: rounded as an estimate should be."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def format_expected(expected: dict[str, dict[str, float]]) -> str:
    """A text table: one row per notebook, expected full and quick run times."""
    width = max([len("notebook"), *map(len, expected)])
    lines = [f"{'notebook':<{width}}  {'full':>10}  {'quick':>10}"]
    for name, modes in sorted(expected.items()):
        cells = [f"~{format_duration(modes[m])}" if m in modes else "-" for m in MODES]
        lines.append(f"{name:<{width}}  {cells[0]:>10}  {cells[1]:>10}")
    return "\n".join(lines)


def format_predictions(probe: SpeedProbe, reference: dict[str, Any] | None) -> str:
    """The expected run time of every notebook on this machine, or why there is none."""
    if reference is None:
        return (
            f"No reference timings yet (data/{REFERENCE_FILE} is missing), so no run-time "
            "predictions."
        )
    machine = reference.get("machine", {})
    where = (
        f"{machine.get('cpu', 'the development machine')}, {machine.get('threads', '?')} threads"
    )
    return (
        f"Expected run times on this machine: the reference run times ({where}, "
        f"{reference['probe']['images_per_s']:,.0f} images/s) scaled by the probe speed "
        f"({probe.images_per_s:,.0f} images/s). Estimates: training-heavy parts scale with "
        "this; the rest (imports, plots) less.\n\n"
        + format_expected(expected_run_times(probe, reference))
    )


def check_speed(probe: SpeedProbe, reference: dict[str, Any] | None) -> Check:
    """The probe's speed, compared with the reference machine's when there is one."""
    epoch = format_duration(CIFAR10_TRAIN_IMAGES / probe.images_per_s)
    measured = (
        f"{probe.images_per_s:,.0f} training images/s ({probe.device}, {probe.threads} threads, "
        f"batch {probe.batch_size}, {probe.steps} steps in {probe.seconds:.1f} s), so one epoch "
        f"of CIFAR-10 takes about {epoch}"
    )
    if reference is None:
        return Check("speed", True, f"{measured}; no reference timings, so no predictions")
    ratio = reference["probe"]["images_per_s"] / probe.images_per_s
    compare = f"take {ratio:.1f}x as long as" if ratio >= 1.05 else (
        "take about as long as" if ratio > 0.95 else f"run {1 / ratio:.1f}x faster than")  # fmt: skip
    return Check(
        "speed", True,
        f"{measured}; expect the training parts to {compare} on the reference machine",
    )  # fmt: skip


# ------------------------------------------------------------------------------- reporting


def format_report(checks: Sequence[Check]) -> str:
    """Plain text, one line per check (✅/❌), each failure followed by its fix."""
    width = max((len(c.name) for c in checks), default=0)
    lines = []
    for c in checks:
        lines.append(f"{'✅' if c.ok else '❌'} {c.name:<{width}}  {c.detail}")
        if not c.ok and c.fix:
            lines.append(f"   {'':<{width}}  fix: {c.fix}")
    return "\n".join(lines)


def format_html(checks: Sequence[Check]) -> str:
    """The same as :func:`format_report`, as a small HTML table for a notebook (with a "how to
    fix" column only when something failed)."""
    fixes = any(not c.ok for c in checks)
    head = "<tr><th></th><th>check</th><th>result</th>" + ("<th>how to fix</th>" * fixes) + "</tr>"
    left = "<td style='text-align:left'>{}</td>"
    rows = "".join(
        f"<tr><td>{'✅' if c.ok else '❌'}</td><td><b>{html.escape(c.name)}</b></td>"
        + left.format(html.escape(c.detail))
        + (left.format(html.escape(c.fix or "") if not c.ok else "") if fixes else "")
        + "</tr>"
        for c in checks
    )
    return f"<table>{head}{rows}</table>"


def summarize(checks: Sequence[Check]) -> str:
    """The closing line: "All checks passed: ..." or the list of what to fix."""
    failed = [c for c in checks if not c.ok]
    if not failed:
        return "All checks passed: you are ready for notebook 1."
    lines = [f"{len(failed)} check{'s' if len(failed) > 1 else ''} failed. Fix, then run again:"]
    lines += [f"  - {c.name}: {c.fix or c.detail}" for c in failed]
    return "\n".join(lines)


def environment_checks(reachable: Callable[[], bool] | None = None) -> list[Check]:
    """Every check but the speed probe, in the notebook's order."""
    return [
        *check_packages(),
        check_pooltools(),
        check_widgets(),
        check_cifar10(reachable=reachable),
        check_device(),
    ]


# ------------------------------------------------------------------------------------ CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pooltools.setup_check",
        description="Check this machine for the pooling-explained notebooks.",
    )
    parser.add_argument("--seconds", type=float, default=None,
                        help="length of the speed probe (default: 10, quick mode 3; 0 skips it)")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    checks = environment_checks()
    seconds = pick(10.0, 3.0) if args.seconds is None else args.seconds
    predictions = ""
    if seconds > 0:
        print(f"measuring training speed for {seconds:g} s ...", flush=True)
        probe = speed_probe(seconds)
        reference = load_reference()
        checks.append(check_speed(probe, reference))
        predictions = "\n" + format_predictions(probe, reference) + "\n"
    print(format_report(checks))
    print(predictions)
    print(summarize(checks))
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
