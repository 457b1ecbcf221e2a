"""The source on MariaDB and PostgreSQL (started by infra/mariadb.sh and infra/postgres.sh): the real
files load as they are, and the emulator draws exactly the rows it draws on SQLite, value by value and
type by type (floats, datetimes as text, unicode, trailing spaces)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pinpipe.cli import cli
from pinpipe.locations import sqlite_url
from tests.aicore import replay

SERVERS = [
    pytest.param("mariadb_url", marks=pytest.mark.mariadb, id="mariadb"),
    pytest.param("postgres_url", marks=pytest.mark.postgres, id="postgres"),
]
FILES = {"pin": "pinterest_data.jsonl", "geo": "geolocation_data.csv", "user": "user_data.csv"}


def typed(value: object) -> object:
    """A JSON value with its Python types spelled out, so 1, 1.0 and "1" differ."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    return (type(value).__name__, value)


def run(*args: str) -> tuple[str, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout, result.stderr


def load_aicore(url: str, aicore: Path) -> None:
    files = [arg for kind, name in FILES.items() for arg in (f"--{kind}", str(aicore / name))]
    run("source", "load", "--db", url, *files, "--replace", "--no-progress")


def emulate(url: str, seed: int, iterations: int) -> list[dict[str, object]]:
    out, _ = run(
        "emulate",
        "--db",
        url,
        "--seed",
        str(seed),
        "--iterations",
        str(iterations),
        "--no-sleep",
        "--dry-run",
    )
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize("server", SERVERS)
def test_aicore_on_a_server_replays_the_seed100_oracle_exactly(
    server: str, request: pytest.FixtureRequest, aicore: Path
) -> None:
    url: str = request.getfixturevalue(server)
    load_aicore(url, aicore)
    got = emulate(url, 100, 2524)
    oracle = replay(aicore)
    assert len(got) == len(oracle) == 2524
    for step, (mine, expected) in enumerate(zip(got, oracle, strict=True)):
        assert list(mine) == ["pin", "geo", "user"]
        for kind in ("pin", "geo", "user"):
            assert list(mine[kind]) == list(expected[kind]), (step, kind)  # type: ignore[call-overload]
            assert typed(mine[kind]) == typed(expected[kind]), (step, kind)


@pytest.mark.parametrize("server", SERVERS)
def test_seeded_rows_on_a_server_are_the_rows_seeded_in_sqlite(
    server: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url: str = request.getfixturevalue(server)
    sqlite = sqlite_url(tmp_path / "source.db")
    for db in (sqlite, url):
        run("source", "seed", "--db", db, "--rows", "3000", "--seed", "7", "--replace", "--no-progress")
    on_sqlite, on_server = emulate(sqlite, 11, 400), emulate(url, 11, 400)
    assert on_server == on_sqlite
    assert [typed(r) for r in on_server] == [typed(r) for r in on_sqlite]
    assert sum(1 for r in on_server if r.get("pin")) > 50  # rows 0..2999 of 0..11000 were drawn
