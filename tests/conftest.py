"""Shared fixtures: the real data in data/aicore and a settings factory on a temporary workdir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pinpipe.config import Settings, load_settings

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
