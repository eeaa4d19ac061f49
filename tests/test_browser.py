"""A real browser drives the explorer in JupyterLab: moving the stride slider changes the shape.

Starts ``jupyter lab`` on 127.0.0.1 (free port, token, temp config/runtime/settings dirs) over a
temp copy of notebook 1 with its outputs cleared (the committed file is never touched), drives
Debian's Chromium headless through Playwright, runs every cell up to the explorer cell, moves the
"stride" slider with the keyboard and checks the "output shape" label against
``pooltools.shapes.pool_output_size``. Leaves a screenshot in ``build/test-artifacts/``.
Skipped only when Playwright or ``/usr/bin/chromium`` is missing.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from pooltools.shapes import pool_output_size
from pooltools.tools.student import clear_outputs

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "01_what_is_max_pooling.ipynb"
EXPLORER_CALL = "widgets.pooling_explorer(toy)"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = ROOT / "build" / "test-artifacts"
SHARED_CIFAR = ROOT.parent / "shared" / "datasets" / "cifar10-jpeg"
LAB_SETTINGS = {  # no virtualized cells, no news or update checks, no autosave
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}
SLOW = 120_000  # ms: kernel start and the first cells (CIFAR-10 loading) on a busy 2-core CPU

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"jupyter lab did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def _stop_server(proc: subprocess.Popen, base: str, token: str) -> None:
    """Ask the server to shut down (it stops its kernels first); terminate it if it won't."""
    try:
        request = urllib.request.Request(f"{base}/api/shutdown", method="POST",
                                         headers={"Authorization": f"token {token}"})  # fmt: skip
        urllib.request.urlopen(request, timeout=10).close()
        proc.wait(timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A running JupyterLab over a temp folder holding an output-free copy of notebook 1."""
    tmp = tmp_path_factory.mktemp("lab")
    work = tmp / "notebooks"
    work.mkdir()
    nbformat.write(clear_outputs(nbformat.read(NOTEBOOK, as_version=4)), work / NOTEBOOK.name)
    settings = tmp / "settings"
    for plugin, values in LAB_SETTINGS.items():
        package, name = plugin.rsplit("/", 1)
        (settings / package).mkdir(parents=True, exist_ok=True)
        (settings / package / f"{name}.jupyterlab-settings").write_text(json.dumps(values))
    env = dict(os.environ)  # POOLTOOLS_* and the rest reach the kernel
    if not env.get("POOLTOOLS_CIFAR10_DIR") and SHARED_CIFAR.is_dir():
        env["POOLTOOLS_CIFAR10_DIR"] = str(SHARED_CIFAR)
    for var, sub in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                     ("JUPYTER_DATA_DIR", "data"), ("IPYTHONDIR", "ipython"),
                     ("JUPYTERLAB_WORKSPACES_DIR", "workspaces")]:  # fmt: skip
        env[var] = str(tmp / sub)
    env["JUPYTERLAB_SETTINGS_DIR"] = str(settings)
    port, token = _free_port(), secrets.token_hex(16)
    log = tmp / "jupyter-lab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}"]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=work, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(f"{base}/api/status?token={token}", proc, log)
        yield {"url": f"{base}/lab/tree/{NOTEBOOK.name}?token={token}", "log": log}
    finally:
        _stop_server(proc, base, token)


@pytest.fixture(scope="module")
def page(lab):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(SLOW)
            yield page
        finally:
            browser.close()


def _explorer_cell() -> tuple[int, tuple[int, int]]:
    """Index of the explorer cell in notebook 1, and the (H, W) of the toy matrix it shows."""
    cells = nbformat.read(NOTEBOOK, as_version=4).cells
    index = next(i for i, c in enumerate(cells) if EXPLORER_CALL in c.source)
    match = re.search(r"reshape\((\d+),\s*(\d+)\)", cells[index].source)
    assert match, f"cell {index} no longer builds `toy` with reshape(H, W)"
    return index, (int(match.group(1)), int(match.group(2)))


def _slider_handle(cell, page, description: str):
    label = page.locator(".widget-label", has_text=re.compile(rf"^{re.escape(description)}$"))
    return cell.locator(".widget-slider", has=label).locator(".noUi-handle")


def _value(handle) -> int:
    return round(float(handle.get_attribute("aria-valuenow")))


def test_moving_the_stride_slider_changes_the_output_shape(lab, page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        cell = _drive_the_explorer(page, lab["url"])
    except BaseException:
        page.screenshot(path=str(ARTIFACTS / "explorer-failure.png"))
        print(f"jupyter lab log:\n{lab['log'].read_text()[-3000:]}")
        raise
    cell.screenshot(path=str(ARTIFACTS / "explorer.png"))


def _drive_the_explorer(page, url: str):
    """Run notebook 1 up to the explorer, move the stride slider, check the label each time;
    return the explorer cell."""
    expect = sync_api.expect
    index, (h, w) = _explorer_cell()

    page.goto(url)
    panel = page.locator(".jp-NotebookPanel").first
    idle = panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    expect(idle).to_have_count(1, timeout=SLOW)  # the kernel has started

    # Select the explorer cell, run every cell above it, then the cell itself.
    cell = panel.locator(".jp-Notebook .jp-Cell").nth(index)
    expect(cell).to_contain_text(EXPLORER_CALL)
    cell.locator(".jp-InputPrompt").click()
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Above Selected Cell")).click()
    cell.locator(".jp-InputPrompt").click()
    page.keyboard.press("Shift+Enter")  # queued after the cells above
    shape = cell.locator(".jp-OutputArea").get_by_text(re.compile(r"^output shape:"))
    errors = panel.locator(  # JupyterLab shows a traceback with the stderr MIME type
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
        has_text="Traceback (most recent call last)",
    )
    expect(shape.or_(errors).first).to_be_visible(timeout=SLOW)  # a failing cell stops the run
    assert errors.count() == 0, f"a cell failed:\n{errors.first.inner_text()[:2000]}"
    expect(idle).to_have_count(1, timeout=SLOW)

    kernel = _value(_slider_handle(cell, page, "kernel_size"))
    stride = _slider_handle(cell, page, "stride")
    figure = cell.locator(".jp-OutputArea img[src^='data:image/png']")
    expect(figure).to_have_count(1)
    seen = []
    for key in [None, "ArrowRight", "ArrowLeft", "ArrowLeft"]:
        before = figure.get_attribute("src")
        if key:
            stride.focus()
            page.keyboard.press(key)
        s = _value(stride)
        oh, ow = pool_output_size(h, kernel, s), pool_output_size(w, kernel, s)
        expect(shape).to_have_text(f"output shape: {oh} × {ow}", timeout=30_000)
        if key:  # the explorer redraws its figure too
            expect(figure).not_to_have_attribute("src", before, timeout=30_000)
        seen.append((s, shape.inner_text()))
    strides = [s for s, _ in seen]
    assert strides == [strides[0], strides[0] + 1, strides[0], strides[0] - 1], strides
    assert len({text for _, text in seen}) == 3, f"the label should change with the stride: {seen}"

    return cell
