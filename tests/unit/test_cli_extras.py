"""A missing optional extra names the command that installs it, and the demo checks its extras before it
deletes anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import pinpipe
from pinpipe._optional import require
from pinpipe.errors import MissingDependencyError
from tests.processes import clean_env

BLOCK_KAFKA = "import sys; sys.modules['confluent_kafka'] = None; from pinpipe.cli import run; run()"
"""Runs pinpipe as if the kafka extra were not installed."""
ROOT = Path(pinpipe.__file__).resolve().parents[1]


def test_a_missing_extra_names_the_command_that_installs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)
    monkeypatch.chdir(ROOT)
    with pytest.raises(MissingDependencyError) as caught:
        require("confluent_kafka", "kafka")
    message = str(caught.value)
    pip = Path(sys.executable).parent / "pip"
    shown = pip.relative_to(ROOT) if pip.is_relative_to(ROOT) else pip  # .venv/bin/pip from the root
    assert message.endswith(f"install it with {shown} install -e '.[kafka]'"), message


def test_the_demo_checks_its_extras_before_deleting_the_last_run(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    (workdir / "lake").mkdir(parents=True)
    (workdir / "source.db").write_bytes(b"the last run's source")
    (workdir / "lake" / "object.json").write_bytes(b"{}\n")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCK_KAFKA,
            "demo",
            "--workdir",
            str(workdir),
            "--log",
            "kafka://127.0.0.1:1",
        ],
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "confluent_kafka is not installed" in done.stderr and "install -e '" in done.stderr, done.stderr
    assert "[kafka]'" in done.stderr
    assert (workdir / "source.db").read_bytes() == b"the last run's source"
    assert (workdir / "lake" / "object.json").exists()
