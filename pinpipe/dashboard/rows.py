"""Rows of a Delta table as the page's JSON shows them.

The dashboard reads tables only through :mod:`pinpipe.delta`, never the lake's raw files, so what it
shows is what the batch job and the stream processor committed.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

import pyarrow as pa


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
