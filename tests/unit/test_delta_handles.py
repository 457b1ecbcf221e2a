"""``delta.shared_handles``: one open per table, and the handle follows the commits made through it."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from pinpipe import delta
from pinpipe.delta import ParquetFile

SCHEMA = pa.schema([("a", pa.int64())])


def _part(directory: Path, name: str, values: list[int]) -> ParquetFile:
    path = directory / name
    duckdb.sql(f"COPY (SELECT unnest({values})::BIGINT AS a) TO '{path}' (FORMAT parquet)")
    return ParquetFile(name, path.stat().st_size, len(values))


def _rows(url: str) -> list[int]:
    return sorted(delta.read_table(url).column("a").to_pylist())


def test_one_open_per_table_and_commits_move_the_handle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = str(tmp_path / "t")
    delta.write_table(url, pa.table({"a": [1]}, schema=SCHEMA))
    opens: list[str] = []
    real = delta.storage_options

    def counted(u: str) -> dict[str, str] | None:  # called once per open
        opens.append(u)
        return real(u)

    monkeypatch.setattr(delta, "storage_options", counted)
    with delta.shared_handles():
        first = delta.open_table(url)
        delta.write_table(url, pa.table({"a": [2]}, schema=SCHEMA), append=True)
        part = _part(tmp_path / "t", "part-appended.parquet", [3, 4])
        delta.commit_files(url, SCHEMA, [part], append=True)
        assert delta.open_table(url) is first
        assert sorted(first.to_pyarrow_table().column("a").to_pylist()) == [1, 2, 3, 4]
        # the clean-up reads the handle: the files just committed are kept, none is replaced yet
        assert delta.remove_replaced_files(url, 0, str(tmp_path)) == 0
        delta.write_table(url, pa.table({"a": [5]}, schema=SCHEMA))  # replaces the three files
        assert delta.remove_replaced_files(url, 0, str(tmp_path)) == 3
    assert opens == [url]
    assert _rows(url) == [5]


def test_a_table_replaced_through_its_url_is_opened_again(tmp_path: Path) -> None:
    url = str(tmp_path / "t")
    delta.write_table(url, pa.table({"a": [1]}, schema=SCHEMA))
    with delta.shared_handles():
        before = delta.open_table(url)
        part = _part(tmp_path / "t", "part-new.parquet", [7])
        delta.commit_files(url, SCHEMA, [part], append=False)
        after = delta.open_table(url)
        assert after is not before
        assert after.to_pyarrow_table().column("a").to_pylist() == [7]
    assert delta.open_table(url) is not after  # outside, every open reads the log again
