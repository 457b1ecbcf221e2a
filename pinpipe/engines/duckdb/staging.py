"""Lake objects into DuckDB: the ``stage_<kind>`` table and the ``raw_<kind>`` view the cleaning reads.

All JSON-lines objects of a kind go through one ``read_json`` call that checks each value's JSON type in
SQL as ``schema.validate_record`` would (DuckDB alone would quietly turn ``"25"`` into 25;
:func:`bulk_select`). Objects it flags are read again with every field as JSON text, and an object that
still holds a wrongly typed value, or that the bulk reader cannot parse (found by bisecting the object
list), is re-read record by record (``engines.lake_input``): its bad records are quarantined, the rest
staged.
"""

from __future__ import annotations

from typing import Any

from pinpipe.engines.base import QuarantinedRecord
from pinpipe.engines.duckdb.sql import quote
from pinpipe.engines.lake_input import NUMBER_LIKE, LakeObject, scan_object
from pinpipe.locations import duckdb_path
from pinpipe.schema import FIELDS, Kind
from pinpipe.transform.clean import RAW_TYPES

FILE_SHIFT = 1 << 40
"""_seq of a lake record = object index * 2^40 + position in the object: arrival order without a sort."""


def bulk_select(kind: Kind, objects: dict[int, str], exact: bool = False) -> str:
    """read_json of many objects (index -> local path): typed values, ``_ok`` (every value of the expected
    JSON type) and the object's index (from the reader's ``file_index``).

    ``exact``: every field is read as JSON and its type checked on the JSON text, as
    ``schema.validate_record`` would (DuckDB alone would quietly turn ``"25"`` into 25). Otherwise string
    fields (but :data:`NUMBER_LIKE`) are read as VARCHAR, a quarter less CPU for pins: DuckDB renders any
    non-string value read into VARCHAR as JSON text (5, true, {"a":1}), so a value that is valid JSON and
    not a quoted string is flagged, never passed. ``_ok`` is then false for a few genuine strings too (a
    title "2023"): their objects are read again exactly.
    """
    fields = FIELDS[kind]
    strings = {f for f, t in fields.items() if t in ("str", "datetime")}
    fast = set() if exact else strings - NUMBER_LIKE.get(kind, frozenset())
    columns = ", ".join(f"{quote(f)}: '{'VARCHAR' if f in fast else 'JSON'}'" for f in fields)
    values, checks = [], []
    for f, t in fields.items():
        col, text = f'"{f}"', f'"{f}"::VARCHAR'
        if f in fast:  # VARCHAR: a non-string value arrives as its JSON text (see above)
            value, null = col, f"{col} IS NULL"
            ok = f"NOT (json_valid({col}) AND NOT starts_with({col}, '\"'))"
        else:
            # Checks on the JSON text (no second parse): a string starts with a quote; an int's text is
            # exactly what its BIGINT prints back (1.0, 1e2, 2**70 are not ints); a float's text casts to a
            # finite DOUBLE (DuckDB's reader accepts NaN and Infinity, JSON does not). A conservative miss
            # (-0) only sends the object to the record-by-record reader.
            null = f"{col} IS NULL OR {text} = 'null'"
            if t in ("str", "datetime"):
                value, ok = f"{col}->>'$'", f"starts_with({text}, '\"')"
            else:
                value = f"TRY_CAST({text} AS {RAW_TYPES[t]})"
                ok = f"CAST({value} AS VARCHAR) = {text}" if t == "int" else f"isfinite({value})"
        if t == "datetime":  # a date and time that exist: printed back the same (no year 0000, no 24:00)
            ok += f" AND CAST(TRY_CAST({value} AS TIMESTAMP) AS VARCHAR) = {value}"
        values.append(f"{value} AS {col}")
        checks.append(f"({null} OR coalesce({ok}, false))")
    files = "[" + ", ".join(quote(p) for p in objects.values()) + "]"
    indexes = "[" + ", ".join(str(i) for i in objects) + "]"
    return (
        f"SELECT {', '.join(values)}, ({' AND '.join(checks)}) AS _ok,"
        f" list_extract(CAST({indexes} AS BIGINT[]), CAST(file_index AS BIGINT) + 1) AS _file,"
        " NULL::BIGINT AS _line"
        f" FROM read_json({files}, format='newline_delimited', records=true, columns={{{columns}}})"
    )


def load_raw(con: Any, kind: Kind, objects: dict[int, LakeObject], ordered: bool) -> list[QuarantinedRecord]:
    """Fill ``stage_<kind>`` with ``objects`` (index in the kind's key order -> object) and define the
    ``raw_<kind>`` view; returns the quarantined records (:func:`drop_stage` removes both).

    ``_seq`` = object index * 2^40 + the row's place: its line when ``ordered`` (DuckDB then keeps
    insertion order while reading, about a fifth slower), else merely unique.
    """
    import duckdb

    cols = ", ".join(f'"{name}" {RAW_TYPES[t]}' for name, t in FIELDS[kind].items())
    con.execute(f"CREATE TABLE stage_{kind} ({cols}, _ok BOOLEAN, _file BIGINT, _line BIGINT)")
    suspicious: set[int] = {i for i, o in objects.items() if o.is_parquet}

    def bulk(chunk: list[int], exact: bool) -> None:
        if not chunk:
            return
        try:
            paths = {i: duckdb_path(objects[i].path) for i in chunk}
            con.execute(f"INSERT INTO stage_{kind} {bulk_select(kind, paths, exact)}")
        except duckdb.InvalidInputException:  # unparseable input; other errors (memory) are real
            if len(chunk) == 1:
                suspicious.add(chunk[0])
                return
            middle = len(chunk) // 2
            bulk(chunk[:middle], exact)
            bulk(chunk[middle:], exact)

    def take_flagged() -> list[int]:
        """Objects with a row not known to be well typed; their rows leave the stage."""
        flagged = con.sql(f"SELECT DISTINCT _file FROM stage_{kind} WHERE NOT _ok").fetchall()
        if flagged:
            con.execute(
                f"DELETE FROM stage_{kind} WHERE _file IN (SELECT _file FROM stage_{kind} WHERE NOT _ok)"
            )
        return sorted(r[0] for r in flagged)

    # rowid = line order; this connection's own setting: another cursor may stage another kind meanwhile
    con.execute(f"SET SESSION preserve_insertion_order = {str(ordered).lower()}")
    try:
        bulk([i for i in sorted(objects) if i not in suspicious], exact=False)
        bulk(take_flagged(), exact=True)
    finally:
        con.execute("SET SESSION preserve_insertion_order = false")
    suspicious.update(take_flagged())
    bad: list[QuarantinedRecord] = []
    for i in sorted(suspicious):
        good, rejected = scan_object(kind, objects[i])
        bad.extend(rejected)
        if good.num_rows:
            rows = good.rename_columns([*good.column_names[:-1], "_line"])
            con.register("scanned", rows)
            names = ", ".join(f'"{n}"' for n in rows.column_names if n != "_line")
            con.execute(
                f"INSERT INTO stage_{kind} ({names}, _ok, _file, _line)"
                f" SELECT {names}, true, {i}, _line FROM scanned"
            )
            con.unregister("scanned")
    fields = ", ".join(f'"{f}"' for f in FIELDS[kind])
    con.execute(
        f"CREATE VIEW raw_{kind} AS SELECT {fields},"
        f" _file * {FILE_SHIFT} + COALESCE(_line, rowid) AS _seq FROM stage_{kind}"
    )
    return sorted(bad, key=lambda r: (r.key, r.line or 0))


def drop_stage(con: Any, kind: Kind) -> None:
    con.execute(f"DROP VIEW raw_{kind}")
    con.execute(f"DROP TABLE stage_{kind}")
