"""Helpers for tests that run pinpipe commands and servers as subprocesses."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (servers started by tests listen there)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(tmp: Path) -> dict[str, str]:
    """The environment of a pinpipe subprocess, free of the developer's PINPIPE_* settings and
    pinpipe.toml, so a test sees only the flags it passes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PINPIPE_")}
    env["PINPIPE_CONFIG"] = str(tmp / "no-such-pinpipe.toml")
    return env


def run_pinpipe(*args: str, workdir: Path, timeout: float) -> str:
    """``python -m pinpipe ARGS --workdir W`` in a clean environment; asserts it succeeded, returns stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "pinpipe", *args, "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        env=clean_env(workdir),
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout
