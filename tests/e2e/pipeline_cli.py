"""Running the pipeline the way a user does, one ``pinpipe`` command per subprocess, for the e2e tests.

Commands run with a clean environment (no developer ``PINPIPE_*`` variables, no pinpipe.toml), so a
test sees only the flags it passes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from pinpipe.config import Settings, load_settings
from tests.processes import clean_env as clean_env  # re-exported for the e2e tests
from tests.processes import free_port as free_port


def pinpipe(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``pinpipe ARGS``; a non-zero exit fails the test with the command's output."""
    done = subprocess.run(
        [sys.executable, "-m", "pinpipe", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, (
        f"pinpipe {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done


def location_flags(workdir: Path, log: str | None = None, prefix: str | None = None) -> list[str]:
    flags = ["--workdir", str(workdir)]
    if log is not None:
        flags += ["--log", log]
    if prefix is not None:
        flags += ["--prefix", prefix]
    return flags


def load_aicore(flags: list[str], aicore: Path, env: dict[str, str]) -> None:
    """``pinpipe source load`` of the three real tables into the workdir's source database."""
    pinpipe(
        "source", "load", *flags,
        "--pin", str(aicore / "pinterest_data.jsonl"),
        "--geo", str(aicore / "geolocation_data.csv"),
        "--user", str(aicore / "user_data.csv"),
        "--no-progress",
        env=env,
    )  # fmt: skip


def expected_rows(flags: list[str], iterations: int, env: dict[str, str]) -> list[dict[str, Any]]:
    """What the emulator will send, iteration by iteration (``emulate --dry-run``; null: row missing)."""
    done = pinpipe("emulate", *flags, "--iterations", str(iterations), "--no-sleep", "--dry-run", env=env)
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


class ApiProcess:
    """``pinpipe api serve`` on a free port in a subprocess; stopped by the test.

    Its output goes to ``log_path``, not a pipe: a pipe nobody reads fills up (librdkafka logs every
    reconnect during a broker outage) and blocks the server's logging, and so its requests.
    """

    def __init__(self, flags: list[str], env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [sys.executable, "-m", "pinpipe", "api", "serve", *flags, "--port", str(self.port)]
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ApiProcess:
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while f"listening on {self.url}" not in self.output():  # printed once it accepts requests
            assert self.process.poll() is None, f"pinpipe api serve exited:\n{self.output()}"
            assert time.monotonic() < deadline, f"pinpipe api serve did not start:\n{self.output()}"
            time.sleep(0.1)
        assert httpx.get(f"{self.url}/readyz", timeout=30).status_code == 200
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __exit__(self, *exc: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def settings_for(workdir: Path, prefix: str | None = None) -> Settings:
    """Settings as the subprocesses see them (for table locations)."""
    overrides = {"prefix": prefix} if prefix else {}
    return load_settings(workdir=workdir, **overrides)
