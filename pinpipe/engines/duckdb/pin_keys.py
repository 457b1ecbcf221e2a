"""The pin table's unique_ids as compact keys, so a small incremental run learns which new pins repeat a
kept unique_id without reading every kept one.

The rule "a pin's first record per unique_id over every run" makes an incremental run look up its new
unique_ids among the kept ones; reading the kept ids (36-byte strings) was the costliest step of a
10,000-post run on a 1M-post history (~70 ms), while 8-byte keys read in a few ms. Table
:data:`PIN_KEYS` (a batch table) holds one key per kept pin with a unique_id, DuckDB's ``hash`` of it.
Its commits record the bookkeeping digest of the pin rows it describes (``KindState.digest``) and the
DuckDB version (``hash`` may change between versions). A run uses the keys only when both match the pin
table before the run: a staged pin whose key is absent then repeats no kept unique_id for certain, and
the kept ids are read only when some key is present (a repeated post, or two ids sharing a key).
Otherwise (a rebuild, a table the Spark engine appended to, a run killed between the pin commit and this
one, another DuckDB version) the kept ids are read as before and the keys are written from the whole table.
"""

from __future__ import annotations

import json
from typing import Any

from pinpipe.delta import open_table_if_exists
from pinpipe.engines.duckdb.parts import table_source
from pinpipe.engines.duckdb.sql import arrow, fetch_one, quote
from pinpipe.engines.increments import FORMAT, KindState, last_metadata, write_table

PIN_KEYS = "pin_keys"
"""Name of the keys' table among the batch tables (``tables.batch_table``)."""
KEY_TYPES = {"key": "BIGINT"}


def key_sql(column: str) -> str:
    """The key of a unique_id: DuckDB's 64-bit ``hash``, halved to fit Delta's signed ``long``."""
    return f"CAST(hash({column}) >> 1 AS BIGINT)"


def keys_metadata(pin: KindState) -> str:
    import duckdb

    return json.dumps(
        {"format": FORMAT, "pin": pin.digest(), "duckdb": duckdb.__version__}, separators=(",", ":")
    )


def kept_keys(con: Any, url: str, pin: KindState | None) -> str | None:
    """The keys table at ``url`` as a source, if it describes the pin rows of bookkeeping ``pin`` (the
    table before this run) and was written by this DuckDB version; else None."""
    table = None if pin is None else open_table_if_exists(url)
    if table is None or pin is None or last_metadata(url, table) != keys_metadata(pin):
        return None
    return table_source(con, "kept_pin_keys", url, table, KEY_TYPES)


def may_repeat(con: Any, keys: str, staged: str) -> bool:
    """Whether a unique_id staged in ``staged`` (raw pins) may be a kept one: its key is in ``keys``."""
    return bool(
        fetch_one(
            con,
            f"SELECT count(*) > 0 FROM {staged} WHERE NULLIF(unique_id, '') IS NOT NULL"
            f" AND {key_sql('unique_id')} IN (SELECT key FROM {keys})",
        )
    )


def raw_may_repeat(con: Any, keys: str, paths: list[str]) -> bool | None:
    """:func:`may_repeat` of the unique_ids of the JSON-lines objects at ``paths`` (local files) as DuckDB's
    reader reads them, before any check: a superset of those staging takes from that reader, so False
    holds for them too. None when the objects cannot be read so (a malformed line)."""
    import duckdb

    files = "[" + ", ".join(quote(p) for p in paths) + "]"
    raw = (
        f"(SELECT unique_id FROM read_json({files}, format='newline_delimited', records=true,"
        " columns={'unique_id': 'VARCHAR'}))"
    )
    try:
        return may_repeat(con, keys, raw)
    except duckdb.Error:
        return None


def keys_table(con: Any, sources: list[str]) -> Any:
    """The keys of the cleaned pins in ``sources``, as an Arrow table (``sql.arrow``)."""
    selects = [f"SELECT {key_sql('unique_id')} AS key FROM {s} WHERE unique_id IS NOT NULL" for s in sources]
    return arrow(con, " UNION ALL ".join(selects) or "SELECT CAST(NULL AS BIGINT) AS key LIMIT 0")


def write_keys(url: str, data: Any, append: bool, pin: KindState) -> None:
    """Add the keys ``data`` (:func:`keys_table`) to the table at ``url`` (``append``) or replace it with
    them, recording the pin table's bookkeeping ``pin`` they now describe: one commit."""
    write_table(url, data, append, keys_metadata(pin))
