"""Shared fixtures: the real data in data/aicore, one embedded demo of it, and a settings factory on a
temporary workdir."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pinpipe.config import Settings, load_settings
from tests.processes import clean_env

REPO = Path(__file__).resolve().parents[1]
AICORE = REPO / "data" / "aicore"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

pytest_plugins = ["tests.services"]  # session fixtures of the real services started from infra/


@pytest.fixture(scope="session")
def aicore() -> Path:
    """The real source data (read-only); a missing copy fails, never skips."""
    if not (AICORE / "geolocation_data.csv").exists():
        pytest.fail(f"real data not found at {AICORE}: the repository's copy is missing")
    return AICORE


@dataclass(frozen=True)
class AicoreDemo:
    """``pinpipe demo`` of the real data as the original emulator replays it (seed 100, 2,524 iterations,
    no stream): its workdir (lake in ``workdir/lake``, tables in ``workdir/tables``), its ten CSVs and
    what it printed."""

    workdir: Path
    export: Path
    output: str


@pytest.fixture(scope="session")
def aicore_demo(aicore: Path, tmp_path_factory: pytest.TempPathFactory) -> AicoreDemo:
    """The embedded single-process reference run, made once for the session: the Kafka, cluster and Spark
    tests compare their lakes and CSVs with it. Tests only read it; what they write goes elsewhere
    (their own ``engine.tables_url``, export and workdir)."""
    root = tmp_path_factory.mktemp("aicore-demo")
    workdir, export = root / "work", root / "E"
    args = [
        "demo", "--workdir", str(workdir), "--load-dir", str(aicore), "--seed", "100", "--iterations", "2524",
        "--no-sleep", "--no-stream", "--export", str(export),
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "pinpipe", *args],
        capture_output=True, text=True, env=clean_env(root), timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return AicoreDemo(workdir, export, done.stdout + done.stderr)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path / "work"


@pytest.fixture
def settings(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings on a fresh workdir, isolated from the developer's PINPIPE_* variables and pinpipe.toml."""
    for name in list(os.environ):
        if name.startswith("PINPIPE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PINPIPE_CONFIG", str(workdir / "no-such-pinpipe.toml"))
    return load_settings(workdir=workdir)
