"""The batch job end to end on a file lake: quarantine, Delta tables, CSV export, the real aicore data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable

from pinpipe.cli import cli
from pinpipe.config import Settings
from pinpipe.delta import local_table_dir, open_table, read_table
from pinpipe.engines import get_engine, run_batch
from pinpipe.engines.duckdb.outputs import AGGREGATES
from pinpipe.engines.duckdb.pin_keys import PIN_KEYS
from pinpipe.errors import ConfigError
from pinpipe.locations import delta_uri
from pinpipe.schema import FIELDS, KEY_FIELD, KINDS, Kind, topic_name
from pinpipe.tables import batch_table
from pinpipe.transform.clean import clean_table
from pinpipe.transform.export import format_number
from pinpipe.transform.queries import OUTPUTS, BatchOptions
from tests.aicore import replay


def write_lake(settings: Settings, kind: str, objects: list[bytes]) -> list[str]:
    topic = topic_name(settings.prefix, kind)  # type: ignore[arg-type]
    root = settings.workdir / "lake" / "topics" / topic / "partition=0"
    root.mkdir(parents=True, exist_ok=True)
    keys = []
    for i, data in enumerate(objects):
        name = f"{topic}+0+{i * 1000:010d}.json"
        (root / name).write_bytes(data)
        keys.append(f"topics/{topic}/partition=0/{name}")
    return keys


def lines(*records: object) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


USER = {"ind": 1, "first_name": "A", "last_name": "B", "age": 30, "date_joined": "2016-01-01 00:00:00"}


def pin(ind: int, unique_id: str | None, title: str) -> dict[str, object]:
    return {
        "index": ind, "unique_id": unique_id, "title": title, "description": "d", "poster_name": "p",
        "follower_count": "5k", "tag_list": "t", "is_image_or_video": "image", "image_src": "s",
        "downloaded": 1, "save_location": "Local save in /data/x", "category": "art",
    }  # fmt: skip


def test_bad_lines_are_quarantined_and_the_rest_processed(settings: Settings) -> None:
    good = lines(USER, {**USER, "ind": 2})
    truncated = lines({**USER, "ind": 3}) + b'{"ind": 4, "first_na'
    wrong = lines({**USER, "ind": 5, "age": "30"}, {**USER, "ind": 6}) + b"not json at all\n" + lines([1, 2])
    keys = write_lake(settings, "user", [good, truncated, wrong])
    result = run_batch(settings, BatchOptions())
    found = sorted((q.key, q.line, q.reason.split(" ")[0]) for q in result.quarantined)
    assert found == [(keys[1], 2, "not"), (keys[2], 1, "wrong"), (keys[2], 3, "not"), (keys[2], 4, "wrong")]
    assert "field 'age' must be int" in result.quarantined[1].reason
    assert result.records_read["user"] == 8
    assert result.cleaned_rows["user"] == 4  # ind 1, 2, 3, 6
    assert sorted(read_table(batch_table(settings, "user")).column("ind").to_pylist()) == [1, 2, 3, 6]
    assert read_table(batch_table(settings, "quarantine")).num_rows == 4
    assert result.outputs["users_joined_by_year"].to_pylist() == [
        {"post_year": 2016, "number_users_joined": 4}
    ]


GEO = {"ind": 1, "timestamp": "2020-01-01 00:00:00", "latitude": 1.5, "longitude": -2, "country": "X"}
WRONG_GEO_TEXTS = [  # each value's JSON type is wrong; json.dumps would not write NaN/Infinity unquoted
    '"ind": "7"', '"ind": 7.0', '"ind": 1e2', '"ind": 1180591620717411303424', '"ind": true',
    '"latitude": "1.5"', '"latitude": NaN', '"latitude": Infinity', '"latitude": false',
    '"country": 5', '"country": [1]', '"country": {"a": 1}', '"timestamp": "yesterday"', '"timestamp": 5',
    '"country": true', '"country": -1.5e3', '"country": 1e400', '"country": NaN', '"country": -Infinity',
    '"timestamp": 20200101', '"timestamp": {"a": 1}', '"timestamp": false',
]  # fmt: skip


def with_raw_value(record: dict[str, object], text: str) -> bytes:
    """One JSON line: ``record`` with one field written as raw JSON text (``'"ind": 7.0'``)."""
    field = text.split(":")[0].strip('"')
    rest = json.dumps({k: v for k, v in record.items() if k != field})
    return (rest[:-1] + ", " + text + "}\n").encode()


def test_the_bulk_reader_flags_every_wrongly_typed_value(settings: Settings) -> None:
    """The fast reader checks JSON types on the value's text: each wrong one must still reach the exact
    reader and be quarantined, while lawful edge values (an int for a float, -0, null) are kept."""
    fine = [
        {**GEO, "ind": 100, "latitude": 5},
        {**GEO, "ind": 101, "country": None},
        {**GEO, "ind": 102, "longitude": -0.0},
        {**GEO, "ind": 103, "latitude": 1e-300},
    ]
    # strings that look like other JSON values are lawful: the bulk reader cannot tell, the exact one keeps
    lookalikes = [
        {**GEO, "ind": 104 + i, "country": text} for i, text in enumerate(["5", "true", "[1]", "NaN"])
    ]
    wrong = [with_raw_value(GEO, text) for text in WRONG_GEO_TEXTS]
    keys = write_lake(settings, "geo", [lines(*fine), lines(*lookalikes), *wrong])
    result = run_batch(settings, BatchOptions())
    assert sorted(q.key for q in result.quarantined) == sorted(keys[2:])
    kept = read_table(batch_table(settings, "geo")).to_pylist()
    assert sorted(r["ind"] for r in kept) == list(range(100, 108))
    assert sorted(r["country"] for r in kept if r["ind"] >= 104) == ["5", "NaN", "[1]", "true"]


NON_STRINGS = ["5", "-0", "2.5", "1e400", "-1.5e3", "1180591620717411303424", "true", "false", "[]",
               '[1, "x"]', "{}", '{"a": [1]}', "NaN", "Infinity", "-Infinity"]  # fmt: skip
"""JSON values of every type but string, as written on a line (NaN and Infinity: DuckDB reads them)."""
LOOKALIKES = ["5", "-0", "true", "null", "[1]", '{"a": 1}', "NaN", '"quoted"', "2023", ""]
"""Strings whose text looks like another JSON value: lawful, and kept exactly as they are."""
SAMPLES: dict[str, dict[str, object]] = {"pin": pin(1, "u1", "t"), "geo": GEO, "user": USER}


@pytest.mark.parametrize("kind", ["pin", "geo", "user"])
def test_every_string_field_rejects_every_non_string_and_keeps_lookalike_strings(
    settings: Settings, kind: Kind
) -> None:
    """The fast read takes string fields as VARCHAR, where DuckDB renders any JSON value as text; a value of
    another JSON type must still be quarantined, and a string that merely looks like one kept as it is."""
    sample = SAMPLES[kind]
    key_field = KEY_FIELD[kind]
    texts = [f for f, t in FIELDS[kind].items() if t in ("str", "datetime")]
    wrong = [with_raw_value({**sample, key_field: 1000 + i}, f'"{field}": {literal}')
             for i, (field, literal) in enumerate((f, v) for f in texts for v in NON_STRINGS)]  # fmt: skip
    strings = [f for f, t in FIELDS[kind].items() if t == "str"]
    alike = [{**sample, key_field: 10 + i, field: text}
             for i, (field, text) in enumerate((f, v) for f in strings for v in LOOKALIKES)]  # fmt: skip
    keys = write_lake(settings, kind, [lines(sample), lines(*alike), *wrong])  # one wrong value per object:
    result = run_batch(settings, BatchOptions(keep_duplicates=True))  # a flag it lacked would show
    assert sorted((q.key, q.line) for q in result.quarantined) == [(k, 1) for k in keys[2:]]
    assert result.records_read[kind] == 1 + len(alike) + len(wrong)
    kept = read_table(batch_table(settings, kind)).to_pylist()
    expected = clean_table(kind, pa.Table.from_pylist([sample, *alike])).to_pylist()
    assert len(kept) == 1 + len(alike) and {r["ind"]: r for r in kept} == {r["ind"]: r for r in expected}


def test_cli_exit_status_and_warning_with_quarantine(settings: Settings, tmp_path: Path) -> None:
    write_lake(settings, "user", [lines(USER) + b"{oops\n"])
    runner = CliRunner()
    args = ["batch", "run", "--workdir", str(settings.workdir), "--quiet", "--export", str(tmp_path / "E")]
    ok = runner.invoke(cli, args)
    assert ok.exit_code == 0, ok.output
    assert "WARNING: 1 lake record(s) quarantined" in ok.output
    again = runner.invoke(cli, [*args, "--strict"])  # nothing new read: nothing quarantined by this run
    assert again.exit_code == 0 and "WARNING" not in again.output, again.output
    strict = runner.invoke(cli, [*args, "--strict", "--full-refresh"])
    assert strict.exit_code == 3


def test_reruns_delete_the_files_they_replaced_once_older_than_the_retention(settings: Settings) -> None:
    """An overwrite keeps the files it replaces, so older versions stay readable; later runs delete them
    once older than --retain-hours (and a failed run's stray files), or a daily job grows every table."""
    write_lake(settings, "user", [lines(USER, {**USER, "ind": 2})])
    runner = CliRunner()
    args = ["batch", "run", "--workdir", str(settings.workdir), "--quiet"]
    for extra in ([], ["--full-refresh"]):  # the default retention: a week; the second replaces the files
        assert runner.invoke(cli, [*args, *extra]).exit_code == 0
    users = batch_table(settings, "user")
    assert DeltaTable(delta_uri(users), version=0).to_pyarrow_table().num_rows == 2
    directory = local_table_dir(users)
    assert directory is not None and len(list(directory.glob("*.parquet"))) == 2
    (directory / "part-stray-c000.snappy.parquet").write_bytes(b"left by a failed run")

    third = runner.invoke(cli, [*args, "--retain-hours", "0"])
    assert third.exit_code == 0, third.output
    assert "replaced files deleted" in " ".join(third.output.split())  # rich wraps at 80 columns
    for name in [*KINDS, *OUTPUTS, "quarantine", AGGREGATES, PIN_KEYS]:
        url = batch_table(settings, name)
        directory = local_table_dir(url)
        assert directory is not None
        live = {Path(uri).name for uri in open_table(url).file_uris()}
        assert {p.name for p in directory.glob("*.parquet")} == live, name
    assert sorted(read_table(users).column("ind").to_pylist()) == [1, 2]


def test_a_failed_clean_up_is_a_warning_and_the_job_completes(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    write_lake(settings, "user", [lines(USER)])

    def refuse(url: str, retain_hours: int, root: str) -> int:
        raise OSError("permission denied")

    monkeypatch.setattr("pinpipe.delta.remove_replaced_files", refuse)
    result = run_batch(settings, BatchOptions())
    assert result.cleaned_rows["user"] == 1 and result.files_removed == 0
    assert (
        len(result.tables) == len(caplog.records) == 16
    )  # 3 cleaned, 10 outputs, quarantine, aggregates, keys
    assert "could not delete the replaced files of" in caplog.records[0].getMessage()
    assert "permission denied" in caplog.records[0].getMessage()


def test_an_unknown_engine_is_a_clear_error(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="unknown batch engine 'nope': choose one of duckdb, spark"):
        get_engine("nope", settings)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (41500, "41500"),
        (41500.0, "41500"),
        (41500.5, "41500.5"),
        (0.1, "0.1"),
        (1e16, "10000000000000000"),
        (1e-7, "0.0000001"),
        (-3.25, "-3.25"),
        (1000003.5, "1000003.5"),
    ],
)
def test_csv_number_format(value: float, text: str) -> None:
    assert format_number(value) == text


def test_real_aicore_data_gives_ten_csvs_with_spec_headers(
    settings: Settings, aicore: Path, tmp_path: Path
) -> None:
    rows = replay(aicore)
    for kind in ("pin", "geo", "user"):
        records = [r[kind] for r in rows if r.get(kind) is not None]
        write_lake(settings, kind, [lines(*records[i : i + 1000]) for i in range(0, len(records), 1000)])
    export = tmp_path / "E"
    result = CliRunner().invoke(
        cli, ["batch", "run", "--workdir", str(settings.workdir), "--export", str(export)]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in export.iterdir()) == sorted(f"{n}.csv" for n in OUTPUTS)
    for name, output in OUTPUTS.items():
        with (export / f"{name}.csv").open() as handle:
            table = list(csv.reader(handle))
        assert tuple(table[0]) == output.columns
        assert len(table) > 1, name
    with (export / "users_joined_by_year.csv").open() as handle:
        years = [int(r["post_year"]) for r in csv.DictReader(handle)]
    assert years == sorted(years) and set(years) <= {2015, 2016, 2017}  # users joined 2015-10..2017-10
    with (export / "median_followers_by_age_group.csv").open() as handle:
        groups = [r["age_group"] for r in csv.DictReader(handle)]
    assert groups == ["18-24", "25-35", "36-50", "50+"]
    with (export / "top_country_by_followers.csv").open() as handle:
        (top,) = list(csv.DictReader(handle))
    assert int(top["follower_count"]) > 1_000_000
    for kind in ("pin", "geo", "user"):
        assert read_table(batch_table(settings, kind)).num_rows > 2000
