"""Helpers for tests that run pinpipe commands and servers as subprocesses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx


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


class ApiServer:
    """``pinpipe api serve`` in a subprocess; stopped by the test (SIGTERM or kill -9)."""

    def __init__(self, workdir: Path, port: int, env: dict[str, str]) -> None:
        self.workdir, self.port, self.env = workdir, port, env
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "pinpipe", "api", "serve", "--workdir", str(self.workdir)]
        command += ["--port", str(self.port)]
        self.process = subprocess.Popen(
            command, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.process.stdout is not None
        seen = []
        while True:  # the "listening" line is printed once the server accepts requests
            line = self.process.stdout.readline()
            seen.append(line)
            if f"listening on {self.url}" in line:
                break
            if not line or len(seen) > 50:
                self.process.kill()
                raise AssertionError("pinpipe api serve did not start:\n" + "".join(seen))
        assert httpx.get(f"{self.url}/readyz", timeout=10).status_code == 200
        # keep draining its output so the server never blocks on a full pipe
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def kill9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            assert self.process.wait(timeout=20) == 0  # graceful shutdown
