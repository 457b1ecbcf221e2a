"""Load real rows into the source database from CSV or JSON Lines files (chosen by extension).

The files in ``data/aicore`` load as they are: a leading unnamed column (a pandas index written by
``to_csv``) is dropped, values are converted to the column types of :data:`pinpipe.schema.FIELDS`
(datetimes parsed from ``%Y-%m-%d %H:%M:%S`` or ISO text). All files load in one transaction, so a bad
row or a duplicate key leaves the database as it was.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from pinpipe.errors import SourceError
from pinpipe.schema import FIELDS, KEY_FIELD, SOURCE_TABLES, Kind
from pinpipe.source.database import TABLES, insert_rows
from pinpipe.source.progress import row_progress

CHUNK_ROWS = 5000
CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


class RowError(ValueError):
    """A value that cannot become its column's type (``line``: where in the file, when known)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise RowError("a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            number = float(text)
            if number.is_integer():
                return int(number)
    raise RowError("not an integer")


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise RowError("a boolean")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return float(value.strip())
    raise RowError("not a number")


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, str):
        return datetime.fromisoformat(value.strip())
    raise RowError("not a datetime string")


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise RowError("not a string")


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "int": _to_int,
    "float": _to_float,
    "datetime": _to_datetime,
    "str": _to_str,
}


def convert_row(kind: Kind, raw: Mapping[str, Any], *, from_csv: bool) -> dict[str, Any]:
    """One file row as a table row: every column present (missing ones None), values typed.

    In CSV an empty cell of a numeric or datetime column is NULL; text keeps the empty string.
    """
    unknown = [name for name in raw if name not in FIELDS[kind]]
    if unknown:
        raise RowError(f"unknown column(s) {', '.join(map(repr, unknown))} for {SOURCE_TABLES[kind]}")
    row: dict[str, Any] = {}
    for field, type_name in FIELDS[kind].items():
        value = raw.get(field)
        if value is None or (from_csv and value == "" and type_name != "str"):
            row[field] = None
            continue
        try:
            row[field] = _CONVERT[type_name](value)
        except (RowError, ValueError) as exc:
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            raise RowError(f"field '{field}' must be {type_name}, got {shown}") from exc
    if row[KEY_FIELD[kind]] is None:
        raise RowError(f"missing key '{KEY_FIELD[kind]}'")
    return row


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        drop_first = header[0] == "" or header[0].startswith("Unnamed")
        names = header[1:] if drop_first else header
        for values in reader:
            if not values:
                continue
            cells = values[1:] if drop_first else values
            if len(cells) != len(names):
                raise RowError(f"{len(cells)} values for {len(names)} columns", reader.line_num)
            yield reader.line_num, dict(zip(names, cells, strict=True))


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RowError(f"invalid JSON ({exc.msg})", number) from exc
            if not isinstance(value, dict):
                raise RowError("a line must be a JSON object", number)
            yield number, value


def check_file(path: Path) -> bool:
    """Whether ``path`` is CSV (True) or JSON Lines (False); SourceError when missing or of unknown type."""
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + JSONL_SUFFIXES:
        raise SourceError(f"{path}: unknown file type {suffix or '(none)'}: use .csv or .jsonl")
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    return suffix in CSV_SUFFIXES


def read_rows(kind: Kind, path: Path) -> Iterator[dict[str, Any]]:
    """Typed rows of ``kind`` from a CSV or JSON Lines file; errors name the file and line."""
    from_csv = check_file(path)
    source = _csv_rows(path) if from_csv else _jsonl_rows(path)
    line = 0
    try:
        for number, raw in source:
            line = number
            yield convert_row(kind, raw, from_csv=from_csv)
    except RowError as exc:
        where = exc.line or line
        raise SourceError(f"{path}:{where}: bad {kind} row: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise SourceError(f"{path}: bad CSV: {exc}") from exc


@dataclass(frozen=True)
class LoadResult:
    counts: dict[Kind, int]
    """Rows loaded per kind."""


def load_files(
    engine: Engine, files: Mapping[Kind, Path], *, replace: bool = False, progress: bool = True
) -> LoadResult:
    """Load each kind's file into its table, all in one transaction.

    Without ``replace`` a key that is already in the table (or twice in a file) is an error; with it
    the given tables are emptied first.
    """
    for path in files.values():
        check_file(path)
    counts: dict[Kind, int] = {}
    try:
        with engine.begin() as conn, row_progress(progress) as bar:
            for kind, path in files.items():
                table = SOURCE_TABLES[kind]
                task = bar.add_task(f"load {table}", total=None, info=path.name)
                if replace:
                    conn.execute(TABLES[kind].delete())
                chunk: list[dict[str, Any]] = []
                counts[kind] = 0
                for row in read_rows(kind, path):
                    chunk.append(row)
                    if len(chunk) >= CHUNK_ROWS:
                        _insert(conn, kind, chunk, path)
                        counts[kind] += len(chunk)
                        bar.update(task, completed=counts[kind])
                        chunk = []
                _insert(conn, kind, chunk, path)
                counts[kind] += len(chunk)
                bar.update(task, completed=counts[kind], total=counts[kind])
    except SQLAlchemyError as exc:
        raise SourceError(f"load failed: {str(getattr(exc, 'orig', exc)).splitlines()[0]}") from exc
    return LoadResult(counts)


def _insert(conn: Any, kind: Kind, chunk: list[dict[str, Any]], path: Path) -> None:
    try:
        insert_rows(conn, kind, chunk)
    except IntegrityError as exc:
        key = KEY_FIELD[kind]
        raise SourceError(
            f"{path}: duplicate {key} in {SOURCE_TABLES[kind]} (keys {chunk[0][key]}..{chunk[-1][key]} "
            "of this chunk): the table already holds it or the file repeats it; use --replace"
        ) from exc
