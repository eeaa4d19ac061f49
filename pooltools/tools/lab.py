"""``make lab``: JupyterLab on ``notebooks/`` for any user, root included, reachable only here.

It binds to 127.0.0.1 (nothing outside this machine can connect) and requires a token: a random
one, passed in the environment (``JUPYTER_TOKEN``, not on the command line where other users
could read it), unless you set ``JUPYTER_TOKEN`` yourself. ``--allow-root`` is added only when
the user is root (containers, cloud notebooks), where Jupyter otherwise refuses to start. It
prints the URL to open, ``http://127.0.0.1:8888/lab?token=...`` (Jupyter hides a token it did
not make itself); the port is exactly ``--port``, and a busy port is an error, not a silent move.
``python -m pooltools.tools.lab --dry-run`` prints the command instead of running it.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["lab_command", "main"]

HOST = "127.0.0.1"
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def lab_command(uid: int, notebook_dir: str | Path = NOTEBOOKS, port: int = 8888) -> list[str]:
    """The ``jupyter lab`` command line for a user with id ``uid`` (``--allow-root`` for 0)."""
    cmd = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={notebook_dir}",
           f"--ServerApp.ip={HOST}", f"--ServerApp.port={port}", "--ServerApp.port_retries=0"]  # fmt: skip
    return cmd + (["--allow-root"] if uid == 0 else [])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pooltools.tools.lab", description=__doc__)
    parser.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    parser.add_argument("--port", type=int, default=8888, help="first port to try (8888)")
    args = parser.parse_args(argv)
    cmd = lab_command(os.geteuid(), port=args.port)
    env = dict(os.environ)
    env.setdefault("JUPYTER_TOKEN", secrets.token_hex(24))
    if args.dry_run:
        print(shlex.join(cmd))
        print(f"token: {len(env['JUPYTER_TOKEN'])} characters, in JUPYTER_TOKEN")
        return 0
    print(f"JupyterLab on {HOST} only. Open http://{HOST}:{args.port}/lab?token={env['JUPYTER_TOKEN']}")
    sys.stdout.flush()
    os.execve(cmd[0], cmd, env)  # replaces this process: Ctrl-C reaches Jupyter directly
    return 0  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
