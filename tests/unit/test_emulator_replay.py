"""The emulator's compatible mode: the seed-100 replay oracle, the draw sequence and missing rows."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pinpipe.cli import cli
from pinpipe.config import Settings, load_settings
from pinpipe.locations import sqlite_url
from pinpipe.source.database import TABLES, open_source
from pinpipe.source.emulator import EmulatorOptions, draw_rows, run_emulator
from pinpipe.source.load import load_files
from tests.aicore import replay


@pytest.fixture(scope="module")
def aicore_db(aicore: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The three aicore files loaded into a temporary SQLite database (its URL)."""
    url = sqlite_url(tmp_path_factory.mktemp("aicore") / "source.db")
    engine = open_source(url)
    files = {"pin": "pinterest_data.jsonl", "geo": "geolocation_data.csv", "user": "user_data.csv"}
    load_files(engine, {kind: aicore / name for kind, name in files.items()}, progress=False)  # type: ignore[misc]
    engine.dispose()
    return url


def _typed(value: object) -> object:
    """A JSON value with its Python types spelled out, so 1 and 1.0 and True differ."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    return (type(value).__name__, value)


def test_dry_run_equals_seed100_replay_record_by_record(
    aicore: Path, aicore_db: str, settings: Settings
) -> None:
    args = ["emulate", "--db", aicore_db, "--seed", "100", "--iterations", "2524", "--no-sleep", "--dry-run"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    oracle = (aicore / "seed100_replay_first2524.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(oracle) == 2524
    for step, (line, expected_line) in enumerate(zip(lines, oracle, strict=True)):
        got, expected = json.loads(line), json.loads(expected_line)
        assert list(got) == ["pin", "geo", "user"]
        for kind in ("pin", "geo", "user"):
            assert list(got[kind]) == list(expected[kind]), (step, kind)  # column order too
            assert _typed(got[kind]) == _typed(expected[kind]), (step, kind)
    assert "2524 iterations" in result.stderr and "errors: 0" in result.stderr


def test_draw_sequence_and_no_sleep_keeps_it(aicore: Path) -> None:
    draws = draw_rows(100)
    oracle = replay(aicore)[:200]
    got = [next(draws) for _ in oracle]
    assert [row for _, row in got[:3]] == [7528, 2863, 5730]
    assert got == [(o["sleep_s"], o["random_row"]) for o in oracle]


def test_sleeps_are_the_drawn_values_unless_no_sleep(aicore_db: str, settings: Settings) -> None:
    mine = load_settings(workdir=settings.workdir, **{"source.url": aicore_db})
    slept: list[float] = []
    out = io.StringIO()
    run_emulator(mine, EmulatorOptions(iterations=20, dry_run=True), out=out, sleep=slept.append)
    expected = [s for s, _ in (next(d) for d in [draw_rows(100)] * 20)]
    assert slept == [s for s in expected if s]
    slept.clear()
    out_no_sleep = io.StringIO()
    run_emulator(
        mine, EmulatorOptions(iterations=20, dry_run=True, sleep=False), out=out_no_sleep, sleep=slept.append
    )
    assert slept == [] and out_no_sleep.getvalue() == out.getvalue()


def test_missing_row_is_skipped_for_its_table_only(
    aicore_db: str, settings: Settings, tmp_path: Path
) -> None:
    """Seed 100 draws 7528, 2863, 5730: delete geo 2863 and user 5730 from a copy of the database."""
    copy = tmp_path / "copy.db"
    copy.write_bytes(Path(aicore_db.removeprefix("sqlite:///")).read_bytes())
    url = sqlite_url(copy)
    engine = open_source(url)
    with engine.begin() as conn:
        conn.execute(TABLES["geo"].delete().where(TABLES["geo"].c.ind == 2863))
        conn.execute(TABLES["user"].delete().where(TABLES["user"].c.ind == 5730))
    engine.dispose()
    out = io.StringIO()
    mine = load_settings(workdir=settings.workdir, **{"source.url": url})
    summary = run_emulator(mine, EmulatorOptions(iterations=4, sleep=False, dry_run=True), out=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["pin"]["index"] for line in lines] == [7528, 2863, 5730, 8304]
    assert lines[1]["geo"] is None and lines[1]["user"]["ind"] == 2863
    assert lines[2]["user"] is None and lines[2]["geo"]["ind"] == 5730
    assert lines[3]["geo"]["ind"] == 8304  # the sequence went on unchanged
    assert summary.skipped == {"pinterest_data": 0, "geolocation_data": 1, "user_data": 1}
    assert "geolocation_data=1" in summary.line()


def test_rate_paces_iterations_instead_of_the_drawn_sleeps(aicore_db: str, settings: Settings) -> None:
    mine = load_settings(workdir=settings.workdir, **{"source.url": aicore_db})
    slept: list[float] = []
    options = EmulatorOptions(iterations=6, dry_run=True, rate=10.0)
    summary = run_emulator(mine, options, out=io.StringIO(), sleep=slept.append)
    assert summary.iterations == 6
    assert len(slept) == 5  # the fake sleep does not advance time: iteration i waits until i/10 s
    assert all(0 < s <= (i + 1) / 10 for i, s in enumerate(slept)) and slept == sorted(slept)
    assert slept[-1] > 0.3  # paced by the rate, not by the drawn 0/1 s sleeps


def test_help_of_every_command(settings: Settings) -> None:
    runner = CliRunner()
    for args, needle in (
        (["emulate", "--help"], "--dry-run"),
        (["source", "--help"], "seed"),
        (["source", "seed", "--help"], "--seed"),
        (["source", "load", "--help"], "--replace"),
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0 and needle in result.output, args


def test_ctrl_c_ends_the_run_with_a_summary(aicore_db: str, settings: Settings) -> None:
    mine = load_settings(workdir=settings.workdir, **{"source.url": aicore_db})
    calls: list[float] = []

    def sleep(seconds: float) -> None:
        calls.append(seconds)
        if len(calls) == 3:
            raise KeyboardInterrupt

    out = io.StringIO()
    summary = run_emulator(
        mine, EmulatorOptions(dry_run=True), out=out, sleep=sleep
    )  # no --iterations: forever
    assert summary.interrupted and "interrupted" in summary.line()
    assert summary.iterations == len(out.getvalue().splitlines()) >= 2


def test_skip_continues_a_run_with_the_same_seed(aicore_db: str, settings: Settings) -> None:
    """--skip N then --iterations M sends what iterations N..N+M-1 of one longer run sent."""
    mine = load_settings(workdir=settings.workdir, **{"source.url": aicore_db})
    whole, tail = io.StringIO(), io.StringIO()
    run_emulator(mine, EmulatorOptions(iterations=30, dry_run=True, sleep=False), out=whole)
    summary = run_emulator(mine, EmulatorOptions(iterations=12, skip=18, dry_run=True, sleep=False), out=tail)
    assert tail.getvalue().splitlines() == whole.getvalue().splitlines()[18:]
    assert summary.iterations == 12
