"""environment.yml (the conda route) must list the same packages as pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}  # conda-forge name -> PyPI name
CONDA_ONLY = {"python", "pip"}


def _split(req: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"]) + list(meta["optional-dependencies"]["dev"])
    return dict(_split(r) for r in reqs)


def conda_requirements() -> dict[str, str]:
    deps, in_deps = {}, False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if line.startswith("dependencies:"):
            in_deps = True
            continue
        if in_deps and not line.startswith(" ") and line.strip():
            break
        m = re.match(r"^\s*-\s*([^#\s][^#]*)", line)
        if in_deps and m:
            name, spec = _split(m.group(1).strip())
            if name not in CONDA_ONLY:
                deps[CONDA_NAMES.get(name, name)] = spec
    return deps


def test_same_packages_and_bounds():
    py, conda = pyproject_requirements(), conda_requirements()
    assert set(conda) == set(py), (
        f"only in environment.yml: {sorted(set(conda) - set(py))}; "
        f"only in pyproject.toml: {sorted(set(py) - set(conda))}"
    )
    assert conda == py, "version bounds differ between environment.yml and pyproject.toml"


def test_environment_uses_conda_forge():
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"channels:\s*\n\s*-\s*conda-forge", text)


def test_torch_range_admits_the_installed_version():
    import torch
    from packaging.version import Version

    spec = pyproject_requirements()["torch"]
    assert spec.startswith(">="), "declare a range, never a pin"
    assert Version(torch.__version__.split("+")[0]) >= Version(spec[2:])
