"""A busy port: ``pinpipe dashboard`` prints the same one clean line as ``pinpipe api serve``."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.processes import clean_env


def test_dashboard_and_api_serve_on_a_busy_port_print_one_clean_line(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        errors = {}
        for command in (("dashboard",), ("api", "serve")):
            done = subprocess.run(
                [sys.executable, "-m", "pinpipe", *command, "--workdir", str(workdir), "--port", str(port)],
                env=clean_env(tmp_path),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 1, done.stderr
            errors[command] = [line for line in done.stderr.splitlines() if "API is OPEN" not in line]
    line = f"pinpipe: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert errors[("dashboard",)] == [line]
    assert errors[("api", "serve")] == [line]
