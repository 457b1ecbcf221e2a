"""Reading a Delta table for the page: rows as JSON-ready dicts, plus its version and commit time.

The dashboard only reads tables through this module (delta-rs), never the lake's raw files, so what it
shows is what the batch job and the stream processor committed.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
from deltalake.exceptions import TableNotFoundError

from pinpipe.tables import open_delta


@dataclass(frozen=True)
class DeltaSnapshot:
    """One committed version of a table."""

    table: pa.Table
    version: int
    committed_at: dt.datetime | None


def read_delta(url: str) -> DeltaSnapshot | None:
    """The latest version of the table at ``url``, or None when nothing was committed there yet."""
    try:
        delta = open_delta(url)
    except TableNotFoundError:
        return None
    committed_at = None
    history = delta.history(1)
    if history and "timestamp" in history[0]:
        committed_at = dt.datetime.fromtimestamp(history[0]["timestamp"] / 1000, tz=dt.UTC)
    return DeltaSnapshot(delta.to_pyarrow_table(), delta.version(), committed_at)


def jsonable(value: Any) -> Any:
    """A cell as JSON shows it: timestamps as ISO text (naive, as written), NaN as null."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def table_rows(table: pa.Table) -> list[dict[str, Any]]:
    return [{k: jsonable(v) for k, v in row.items()} for row in table.to_pylist()]
