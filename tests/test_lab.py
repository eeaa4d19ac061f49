"""`make lab` works for root and for everyone else: 127.0.0.1 only, a token, and --allow-root
exactly when the user is root. The command line is checked for both kinds of user; then the real
server is started as whoever runs the tests and must answer with the token and refuse without."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pooltools.tools import lab

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("uid", "allow_root"), [(0, True), (1000, False)], ids=["root", "user"])
def test_command_line_for_root_and_for_a_normal_user(uid, allow_root):
    cmd = lab.lab_command(uid, "nb", port=9999)
    assert cmd[:3] == [sys.executable, "-m", "jupyterlab"]
    assert "--ServerApp.ip=127.0.0.1" in cmd and "--ServerApp.port=9999" in cmd
    assert "--ServerApp.port_retries=0" in cmd  # the printed URL's port is the one it uses
    assert "--notebook-dir=nb" in cmd
    assert ("--allow-root" in cmd) is allow_root
    assert not [a for a in cmd if "token" in a.lower()], "the token stays off the command line"


def test_make_lab_runs_the_module(monkeypatch):
    # --no-print-directory: run from `make test`, the nested make would add "Leaving directory"
    dry = subprocess.run(["make", "-n", "--no-print-directory", "-W", "pyproject.toml", "lab"],
                         cwd=ROOT, text=True, capture_output=True, check=True).stdout  # fmt: skip
    assert "-m pooltools.tools.lab" in dry.strip().splitlines()[-1]


def test_dry_run_prints_the_command_for_this_user(capsys):
    assert lab.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert ("--allow-root" in out) is (os.geteuid() == 0)
    assert "--ServerApp.ip=127.0.0.1" in out and "token: 48 characters" in out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:  # not listening yet
        return 0


def test_lab_starts_for_this_user_and_wants_the_token(tmp_path):
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_TOKEN": token, "BROWSER": "true"}  # "true": open no browser
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR",
                "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR"):  # fmt: skip
        env[var] = str(tmp_path / var.lower())
    log = tmp_path / "lab.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pooltools.tools.lab", "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while _status(f"{base}/api/status?token={token}") != 200:
            assert proc.poll() is None, f"jupyter lab exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no answer in 120 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        assert _status(f"{base}/api/status") == 403, "it must refuse a request without the token"
        assert f"Open http://127.0.0.1:{port}/lab?token={token}" in log.read_text(), "the URL to open"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
