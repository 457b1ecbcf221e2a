"""From log records to cleaned Arrow rows: JSON decode, schema check, the shared cleaning, dead letters.

Cleaning is never written here: rows go through :func:`pinpipe.transform.clean.clean_table`, the same
definition the batch job runs. A record that is not JSON, is not an object of its kind's shape
(:func:`pinpipe.schema.validate_record`), or that the cleaning rejects becomes a dead letter.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa

from pinpipe.log.base import Record
from pinpipe.schema import Kind, validate_record
from pinpipe.transform.clean import clean_table, raw_table

META_SCHEMA = pa.schema(
    [("_partition", pa.int32()), ("_offset", pa.int64()), ("_arrival", pa.timestamp("us", tz="UTC"))]
)
"""Columns appended after the cleaned columns (docs/data-rules.md) of a stream table: each row's origin."""

DEAD_LETTER_SCHEMA = pa.schema(
    [
        ("stream", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("value", pa.binary()),
        ("error", pa.string()),
        ("arrival", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(slots=True)
class Decoded:
    """One stream's share of a micro-batch."""

    cleaned: pa.Table
    """Cleaned columns (docs/data-rules.md), then ``META_SCHEMA``; a row per valid record, log order."""
    records: list[Record]
    """The valid records, row for row."""
    dead: list[dict[str, Any]]


def _dead(record: Record, error: str) -> dict[str, Any]:
    return {
        "stream": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "value": record.value,
        "error": error,
        "arrival": round(record.timestamp * 1_000_000),
    }


def _loads(data: bytes) -> Any:
    """``json.loads(data)``, through orjson when that gives the same value: when re-encoding orjson's value
    gives ``data`` back byte for byte (compact JSON as the API stores it), every number and string was in
    the one spelling both parsers read alike (orjson reads integers beyond 64 bits as doubles, refuses
    ``NaN`` and lone surrogates: those records take the standard parser)."""
    try:
        value = orjson.loads(data)
        if orjson.dumps(value) == data:
            return value
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        pass
    return json.loads(data)


def _parse(kind: Kind, record: Record) -> tuple[dict[str, Any] | None, str | None]:
    try:
        value = _loads(record.value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"not JSON: {exc}"
    except RecursionError:  # nested deeper than the parser goes (the API refuses such bodies)
        return None, "not JSON: nested too deep"
    problems = validate_record(kind, value)
    if problems:
        return None, "; ".join(problems)
    return value, None


def _clean(kind: Kind, values: list[dict[str, Any]]) -> pa.Table:
    return clean_table(kind, raw_table(kind, values))


def decode(kind: Kind, records: Sequence[Record]) -> Decoded:
    """Parse, check and clean ``records`` of one stream; bad ones become dead letters."""
    values: list[dict[str, Any]] = []
    good: list[Record] = []
    dead: list[dict[str, Any]] = []
    for record in records:
        value, error = _parse(kind, record)
        if value is None:
            dead.append(_dead(record, error or "invalid"))
        else:
            values.append(value)
            good.append(record)
    try:
        cleaned = _clean(kind, values)
    except Exception:  # isolate the records the cleaning rejects, keep the rest
        kept_values, kept_records, parts = [], [], []
        for value, record in zip(values, good, strict=True):
            try:
                parts.append(_clean(kind, [value]))
            except Exception as exc:
                dead.append(_dead(record, f"cleaning failed: {exc}"))
                continue
            kept_values.append(value)
            kept_records.append(record)
        good = kept_records
        cleaned = pa.concat_tables(parts) if parts else _clean(kind, [])
    meta = pa.Table.from_pydict(
        {
            "_partition": [r.partition for r in good],
            "_offset": [r.offset for r in good],
            "_arrival": [int(r.timestamp * 1_000_000) for r in good],
        },
        schema=pa.schema([("_partition", pa.int32()), ("_offset", pa.int64()), ("_arrival", pa.int64())]),
    )
    for name in META_SCHEMA.names:
        column = meta.column(name).cast(META_SCHEMA.field(name).type)
        cleaned = cleaned.append_column(META_SCHEMA.field(name), column)
    dead.sort(key=lambda d: (d["partition"], d["offset"]))
    return Decoded(cleaned, good, dead)


def dead_letter_table(rows: list[dict[str, Any]]) -> pa.Table:
    plain = DEAD_LETTER_SCHEMA.set(5, pa.field("arrival", pa.int64()))
    return pa.Table.from_pylist(rows, schema=plain).cast(DEAD_LETTER_SCHEMA)
