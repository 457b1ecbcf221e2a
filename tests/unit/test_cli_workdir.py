"""Commands that read a workdir refuse a missing one (one line, non-zero, nothing created); commands that
create one say so; ``batch run`` on an empty lake warns."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import clean_env


def pinpipe(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m pinpipe ARGS`` run from ``cwd`` in a clean environment."""
    return subprocess.run(
        [sys.executable, "-m", "pinpipe", *args],
        cwd=cwd,
        env=clean_env(cwd.parent),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


READERS = [
    ("status",),
    ("metrics",),
    ("batch", "run"),
    ("sink", "run", "--until-idle"),
    ("stream", "run", "--until-idle"),
    ("dashboard", "--port", "0"),
]


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_a_reader_refuses_a_missing_workdir_and_creates_nothing(tmp_path: Path, command: tuple[str]) -> None:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    done = pinpipe(folder, *command)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr == f"pinpipe: error: no workdir at {folder / '.pinpipe'}: " + (
        "run this from the folder holding .pinpipe, give --workdir DIR, or create one with `pinpipe demo` "
        "(or source seed/load and api serve)\n"
    )
    assert done.stdout == "" and list(folder.iterdir()) == []


def test_a_reader_needs_no_workdir_when_it_reads_nothing_there(tmp_path: Path) -> None:
    done = pinpipe(tmp_path, "status", "--json", "--log", "memory://")
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_creator_says_it_creates_the_workdir(tmp_path: Path) -> None:
    done = pinpipe(tmp_path, "source", "seed", "--rows", "5", "-q")
    assert done.returncode == 0, done.stderr
    assert f"pinpipe: creating the workdir {tmp_path / '.pinpipe'}" in done.stderr
    assert (tmp_path / ".pinpipe" / "source.db").is_file()
    again = pinpipe(tmp_path, "source", "seed", "--rows", "5", "-q", "--replace")
    assert "creating the workdir" not in again.stderr


def test_batch_run_on_an_empty_lake_warns(tmp_path: Path) -> None:
    (tmp_path / ".pinpipe").mkdir()
    done = pinpipe(tmp_path, "batch", "run", "-q")
    assert done.returncode == 0, done.stderr
    lake = (tmp_path / ".pinpipe" / "lake").as_uri()
    assert f"WARNING: the lake {lake} holds no records of prefix 0a1b2c3d4e5f" in done.stderr, done.stderr
    assert "pinpipe sink run --until-idle" in done.stderr
