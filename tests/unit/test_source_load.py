"""Loading the real aicore files into the source database, and the database's portability."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.schema import CreateTable

from pinpipe.cli import cli
from pinpipe.errors import SourceError
from pinpipe.locations import sqlite_url
from pinpipe.schema import Kind
from pinpipe.source.database import TABLES, SqlRowReader, count_rows, open_source
from pinpipe.source.load import load_files


def _files(aicore: Path) -> list[str]:
    return [
        "--pin", str(aicore / "pinterest_data.jsonl"),
        "--geo", str(aicore / "geolocation_data.csv"),
        "--user", str(aicore / "user_data.csv"),
    ]  # fmt: skip


def test_load_aicore_prints_counts_and_keeps_types(aicore: Path, tmp_path: Path, settings: object) -> None:
    url = sqlite_url(tmp_path / "src.db")
    result = CliRunner().invoke(cli, ["source", "load", "--db", url, "--no-progress", *_files(aicore)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "pinterest_data: 3607 rows",
        "geolocation_data: 11154 rows",
        "user_data: 11154 rows",
    ]
    engine = open_source(url, create=False)
    assert count_rows(engine) == {"pin": 3607, "geo": 11154, "user": 11154}
    with engine.connect() as conn:
        geo = conn.execute(sa.select(TABLES["geo"]).where(TABLES["geo"].c.ind == 0)).one()
        user = conn.execute(sa.select(TABLES["user"]).where(TABLES["user"].c.ind == 0)).one()
        pin = conn.execute(sa.select(TABLES["pin"]).where(TABLES["pin"].c["index"] == 0)).one()
    assert geo == (0, datetime(2019, 1, 1, 7, 21, 13), -88.8298, -170.188, "Albania")
    assert user == (0, "Adam", "Acosta", 20, datetime(2015, 10, 21, 21, 26, 45))
    assert pin.downloaded is None and pin.follower_count == "2M" and pin.description.endswith("…\xa0")
    reader = SqlRowReader(engine)
    empty_title = reader.read(5658)["pin"]
    assert empty_title is not None and empty_title["title"] == ""
    assert reader.read(2)["pin"] is None  # the real pin table is incomplete
    reader.close()
    engine.dispose()


def test_duplicates_fail_whole_load_unless_replace(aicore: Path, tmp_path: Path) -> None:
    engine = open_source(sqlite_url(tmp_path / "src.db"))
    user: dict[Kind, Path] = {"user": aicore / "user_data.csv"}
    assert load_files(engine, user, progress=False).counts == {"user": 11154}
    with pytest.raises(SourceError, match=r"duplicate ind in user_data.*--replace"):
        load_files(engine, {"geo": aicore / "geolocation_data.csv", **user}, progress=False)
    assert count_rows(engine) == {"pin": 0, "geo": 0, "user": 11154}  # one transaction: geo rolled back
    assert load_files(engine, user, replace=True, progress=False).counts == {"user": 11154}
    assert count_rows(engine)["user"] == 11154
    engine.dispose()


def test_bad_row_names_file_and_line_and_loads_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "users.csv"
    bad.write_text(
        ",ind,first_name,last_name,age,date_joined\n0,0,A,B,20,2015-10-21 21:26:45\n1,1,C,D,old,x\n"
    )
    engine = open_source(sqlite_url(tmp_path / "src.db"))
    with pytest.raises(SourceError, match=r"users\.csv:3: bad user row: field 'age' must be int, got 'old'"):
        load_files(engine, {"user": bad}, progress=False)
    assert count_rows(engine)["user"] == 0
    extra = tmp_path / "geo.jsonl"
    extra.write_text('{"ind": 1, "country": "X", "colour": "red"}\n')
    with pytest.raises(SourceError, match=r"geo\.jsonl:1: .*unknown column\(s\) 'colour'"):
        load_files(engine, {"geo": extra}, progress=False)
    engine.dispose()


def _pinpipe(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PINPIPE_CONFIG": str(cwd / "none.toml")}
    return subprocess.run(
        [sys.executable, "-m", "pinpipe", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["source", "load", "--user", "nope.csv"], "nope.csv: no such file"),
        (["source", "load", "--user", "users.xml"], "unknown file type .xml"),
        (["source", "load", "--db", "nosuchdb://x/y", "--user", "users.csv"], "unsupported database URL"),
        (["source", "load", "--db", "not a url", "--user", "users.csv"], "invalid database URL"),
        (["source", "seed", "--db", "mysql+pymysql://u:secret@h:notaport/db"], "invalid database URL"),
        (["source", "seed", "--db", "postgresql+psycopg://u:secret@127.0.0.1:1/db"], "cannot open database"),
        (["emulate", "--dry-run", "--iterations", "1"], "no source database at"),
    ],
)
def test_bad_cli_input_is_one_line_and_nonzero(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "users.xml").write_text("<users/>")
    (tmp_path / "users.csv").write_text(",ind,first_name,last_name,age,date_joined\n")
    done = _pinpipe(*args, "--workdir", str(tmp_path / "w"), cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in done.stderr, done.stderr
    assert "secret" not in done.stderr


def test_ddl_is_portable_to_mysql_and_postgresql() -> None:
    my = str(CreateTable(TABLES["pin"]).compile(dialect=mysql.dialect()))
    assert "`index` INTEGER NOT NULL" in my and "AUTO_INCREMENT" not in my
    assert "CHARSET=utf8mb4" in my and "description TEXT" in my
    geo = str(CreateTable(TABLES["geo"]).compile(dialect=mysql.dialect()))
    assert "timestamp DATETIME" in geo and "latitude DOUBLE" in geo
    pg = str(CreateTable(TABLES["pin"]).compile(dialect=postgresql.dialect()))
    assert '"index" INTEGER NOT NULL' in pg and "SERIAL" not in pg
    user = str(CreateTable(TABLES["user"]).compile(dialect=postgresql.dialect()))
    assert "date_joined TIMESTAMP WITHOUT TIME ZONE" in user
