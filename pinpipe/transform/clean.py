"""Cleaning rules (docs/data-rules.md), written once as SQL over views ``raw_pin``/``raw_geo``/``raw_user``.

A raw view holds one row per record as decoded from JSON: the columns of ``schema.FIELDS`` (missing ones
null; ints BIGINT, floats DOUBLE, strings and datetimes VARCHAR) plus ``_seq``, the arrival order (object
key, then line). :data:`CLEAN_SQL` maps each row to its cleaned row (one in, one out, ``_seq`` kept);
:func:`cleaned_sql` adds the duplicate rule on top. Engines register the raw views and run the text as it
is (after :func:`pinpipe.transform.dialect.render`). :func:`clean_table` runs the row rules on an Arrow
table in-process with DuckDB, for the stream processor's micro-batches.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any

from pinpipe.errors import ValidationError
from pinpipe.schema import FIELDS, KINDS, Kind
from pinpipe.transform.dialect import Dialect, render

if TYPE_CHECKING:
    import pyarrow as pa

SEQ = "_seq"
"""Arrival order of the raw views, unique within a kind: the first of a duplicate group is the lowest."""

CLEAN_TYPES: dict[Kind, dict[str, str]] = {
    "pin": {
        "ind": "BIGINT",
        "unique_id": "VARCHAR",
        "title": "VARCHAR",
        "description": "VARCHAR",
        "follower_count": "BIGINT",
        "poster_name": "VARCHAR",
        "tag_list": "VARCHAR",
        "is_image_or_video": "VARCHAR",
        "image_src": "VARCHAR",
        "save_location": "VARCHAR",
        "category": "VARCHAR",
    },
    "geo": {"ind": "BIGINT", "country": "VARCHAR", "coordinates": "DOUBLE[]", "timestamp": "TIMESTAMP"},
    "user": {"ind": "BIGINT", "user_name": "VARCHAR", "age": "BIGINT", "date_joined": "TIMESTAMP"},
}
"""The cleaned tables' columns, in order, with their types (DuckDB's spelling; Arrow's in
:func:`clean_arrow_schema`). Plain text, so a DuckDB run that needs no Arrow object never imports pyarrow
(0.12 s with numpy, a fifth of a small incremental run)."""

CLEAN_COLUMNS: dict[Kind, tuple[str, ...]] = {kind: tuple(types) for kind, types in CLEAN_TYPES.items()}
RAW_TYPES = {"int": "BIGINT", "float": "DOUBLE", "str": "VARCHAR", "datetime": "VARCHAR"}
"""The type of a raw view's column of each ``schema.FIELDS`` type (DuckDB's spelling)."""

_ARROW_TYPES = {"BIGINT": "int64", "DOUBLE": "float64", "VARCHAR": "string"}


def arrow_type(sql_type: str) -> pa.DataType:
    """The Arrow type of a type of :data:`CLEAN_TYPES` (or of a raw column: BIGINT, DOUBLE, VARCHAR)."""
    import pyarrow as pa

    if sql_type.endswith("[]"):
        return pa.list_(arrow_type(sql_type[:-2]))
    if sql_type == "TIMESTAMP":
        return pa.timestamp("us")
    return getattr(pa, _ARROW_TYPES[sql_type])()


@functools.cache
def clean_arrow_schema(kind: Kind) -> pa.Schema:
    """Arrow schema of the cleaned ``kind`` table (:data:`CLEAN_TYPES`)."""
    import pyarrow as pa

    return pa.schema([(name, arrow_type(t)) for name, t in CLEAN_TYPES[kind].items()])


def raw_arrow_type(field_type: str) -> pa.DataType:
    """The Arrow type of a raw column of ``schema.FIELDS`` type ``field_type`` (datetimes stay text)."""
    return arrow_type(RAW_TYPES[field_type])


# follower_count: "N", "Nk" (x1,000), "NM" (x1,000,000); anything else (User Info Error, "") -> NULL.
_FOLLOWERS = """TRY_CAST(ROUND(
      TRY_CAST(CASE WHEN _fc LIKE '%k' OR _fc LIKE '%M' THEN substring(_fc, 1, length(_fc) - 1) ELSE _fc END
        AS DOUBLE)
      * CASE WHEN _fc LIKE '%k' THEN 1000 WHEN _fc LIKE '%M' THEN 1000000 ELSE 1 END
    ) AS BIGINT)"""

CLEAN_SQL: dict[Kind, str] = {
    "pin": f"""SELECT
    index AS ind,
    NULLIF(unique_id, '') AS unique_id,
    CASE WHEN title = 'No Title Data Available' THEN NULL ELSE NULLIF(title, '') END AS title,
    CASE WHEN description LIKE 'No description available%' THEN NULL ELSE NULLIF(description, '') END
      AS description,
    {_FOLLOWERS} AS follower_count,
    CASE WHEN poster_name = 'User Info Error' THEN NULL ELSE NULLIF(poster_name, '') END AS poster_name,
    CASE WHEN tag_list = 'N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e' THEN NULL ELSE NULLIF(tag_list, '') END
      AS tag_list,
    NULLIF(is_image_or_video, '') AS is_image_or_video,
    CASE WHEN image_src = 'Image src error.' THEN NULL ELSE NULLIF(image_src, '') END AS image_src,
    NULLIF(CASE WHEN instr(save_location, '/') > 0 THEN substring(save_location, instr(save_location, '/'))
      ELSE save_location END, '') AS save_location,
    NULLIF(category, '') AS category,
    _seq
  FROM (SELECT *, trim(follower_count) AS _fc FROM raw_pin) AS raw""",
    "geo": """SELECT
    ind,
    NULLIF(country, '') AS country,
    {array}(latitude, longitude) AS coordinates,
    TRY_CAST(timestamp AS {timestamp}) AS timestamp,
    _seq
  FROM raw_geo""",
    "user": """SELECT
    ind,
    first_name || ' ' || last_name AS user_name,
    age,
    TRY_CAST(date_joined AS {timestamp}) AS date_joined,
    _seq
  FROM raw_user""",
}
"""Row rules: ``raw_<kind>`` -> cleaned columns plus ``_seq``. Placeholders: see ``transform.dialect``."""


def needs_arrival_order(kind: Kind, keep_duplicates: bool = False) -> bool:
    """Whether :func:`cleaned_sql` depends on the order of ``_seq`` (pin's first record per unique_id).

    Otherwise ``_seq`` only has to be unique, and an engine may stage the raw rows in any order.
    """
    return kind == "pin" and not keep_duplicates


def arrival_order_matters_sql(staged: str, within: str) -> str:
    """One boolean row: whether ``staged`` (raw pin rows) holds two different records with the same
    unique_id and the same ``within`` value (e.g. the lake object they came from).

    Only then does the first record per unique_id depend on the order of the rows within a ``within``
    group: an engine may stage them in any order within it (faster), and restage them in order when this
    is true. Identical records are the usual duplicates (a post sent twice), and any of them is the first.
    Repeated keys are found by their hash first (one number per row groups faster than the pair), then
    compared exactly.
    """
    fields = ", ".join(FIELDS["pin"])
    key = f"hash({within}, unique_id)"
    ambiguous = (
        f"WITH repeated AS (SELECT {key} AS h FROM {staged} WHERE unique_id <> '' GROUP BY h"
        " HAVING count(*) > 1)\n"
        f"SELECT DISTINCT {within} FROM (SELECT {within}, unique_id FROM (SELECT DISTINCT {within}, {fields}"
        f" FROM {staged} WHERE unique_id <> '' AND {key} IN (SELECT h FROM repeated)) AS records"
        f" GROUP BY {within}, unique_id HAVING count(*) > 1) AS ambiguous"
    )
    return f"SELECT count(*) > 0 FROM ({ambiguous}) AS ambiguous"


def cleaned_sql(kind: Kind, keep_duplicates: bool = False, kept_before: str | None = None) -> str:
    """The cleaned table of a kind (documented column order), with the duplicate rule applied.

    By default pin keeps the first record (lowest ``_seq``) per unique_id, and pins without a unique_id
    once per identical row; geo and user keep each identical cleaned row once. ``keep_duplicates`` keeps
    every record, as the original notebooks' raw joins counted them.

    ``kept_before`` names a table of cleaned rows of this kind already kept from earlier records, for an
    engine that cleans a kind's objects in chunks, oldest first (so its memory stays bounded): a pin whose
    unique_id is there, or a row identical to one there, was kept before and is left out here.

    The first pin per unique_id is found with a semi-join on ``min(_seq)`` per unique_id (``_seq`` is
    unique within a kind) rather than ``row_number() ... = 1``: DuckDB rewrites that window into an
    ``arg_min`` over a struct of every column, about three times slower; both dialects run the IN form as
    a semi-join.
    """
    cols = ", ".join(CLEAN_COLUMNS[kind])
    base = f"WITH c AS {{inline}}({CLEAN_SQL[kind]})\n"
    if keep_duplicates:
        return base + f"SELECT {cols} FROM c"
    if kind == "pin":
        fresh, unkeyed = "", f"SELECT DISTINCT {cols} FROM c WHERE unique_id IS NULL"
        if kept_before:
            fresh = f" AND unique_id NOT IN (SELECT unique_id FROM {kept_before} WHERE unique_id IS NOT NULL)"
            unkeyed = (  # in brackets: UNION ALL and EXCEPT would otherwise apply left to right
                f"(SELECT {cols} FROM c WHERE unique_id IS NULL"
                f" EXCEPT SELECT {cols} FROM {kept_before} WHERE unique_id IS NULL)"
            )
        return base + (
            f"SELECT {cols} FROM c WHERE unique_id IS NOT NULL AND _seq IN"
            f" (SELECT min(_seq) FROM c WHERE unique_id IS NOT NULL{fresh} GROUP BY unique_id)\n"
            f"UNION ALL\n{unkeyed}"
        )
    if kept_before:
        return base + f"SELECT {cols} FROM c EXCEPT SELECT {cols} FROM {kept_before}"
    return base + f"SELECT DISTINCT {cols} FROM c"


def kept_rows_sql(kind: Kind, kept: str, staged: str, repeats: bool = True) -> str:
    """The rows of ``kept`` (a kind's cleaned rows so far) that ``cleaned_sql``'s ``kept_before`` may
    match for the raw records in ``staged``: pins whose unique_id is staged (only that column is read)
    and pins without one; geo and user rows whose ind is staged (new inds are mostly new: Parquet
    statistics skip the rest). Both dialects run the ``IN`` as a semi-join.

    ``repeats=False``: no staged unique_id is a kept one (known otherwise), so only the pins without one
    (Parquet statistics skip the row groups that have none) and no kept unique_id is read."""
    cols = CLEAN_COLUMNS[kind]
    if kind != "pin":
        return f"SELECT {', '.join(cols)} FROM {kept} WHERE ind IN (SELECT ind FROM {staged})"
    ids = ", ".join(c if c == "unique_id" else f"NULL AS {c}" for c in cols)
    if not repeats:
        return f"SELECT {', '.join(cols)} FROM {kept} WHERE unique_id IS NULL"
    return (
        f"SELECT {', '.join(cols)} FROM {kept} WHERE unique_id IS NULL UNION ALL"
        f" SELECT {ids} FROM {kept} WHERE unique_id IN (SELECT NULLIF(unique_id, '') FROM {staged})"
    )


def differing_first_pins_sql(kept: str, dialect: Dialect) -> str:
    """One count: the pins of ``raw_pin`` that are the first of their unique_id and differ from the
    row ``kept`` (cleaned pins kept before) holds for it.

    For an incremental run whose new objects sort before ones cleaned earlier: then a new record may be
    the first of its unique_id over the whole lake, and the cleaned table must be rebuilt (a count above
    zero). Identical records (a post sent twice) are no conflict: either one gives the same row.
    """
    cols = ", ".join(CLEAN_COLUMNS["pin"])
    return (
        f"WITH new AS ({render(cleaned_sql('pin'), dialect)}), old AS (SELECT {cols} FROM {kept}"
        " WHERE unique_id IN (SELECT unique_id FROM new))"
        f" SELECT count(*) FROM (SELECT {cols} FROM new"
        " WHERE unique_id IN (SELECT unique_id FROM old)"
        f" EXCEPT SELECT {cols} FROM old) AS differing"
    )


def record_fields(kind: Kind) -> list[tuple[str, pa.DataType]]:
    """The record fields of ``kind`` with their raw Arrow types."""
    return [(name, raw_arrow_type(t)) for name, t in FIELDS[kind].items()]


def raw_schema(kind: Kind) -> pa.Schema:
    """Arrow schema of a raw view: the record fields, then ``_seq``."""
    import pyarrow as pa

    return pa.schema([*record_fields(kind), (SEQ, pa.int64())])


def raw_table(kind: Kind, values: list[Any]) -> pa.Table:
    """Validated records (``schema.validate_record``) as a raw table without ``_seq``: the known fields,
    unknown ones dropped, an integer in a float field as the nearest double (as a DOUBLE column reads it:
    Arrow refuses integers a double does not hold exactly, such as 2**53 + 1)."""
    import pyarrow as pa

    fields = FIELDS[kind]
    floats = [name for name, t in fields.items() if t == "float"]
    rows = []
    for value in values:
        row = {name: value.get(name) for name in fields}
        for name in floats:
            if isinstance(row[name], int):
                row[name] = float(row[name])
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=pa.schema(record_fields(kind)))


def _conform_column(kind: Kind, name: str, column: Any, target: pa.DataType) -> Any:
    import pyarrow as pa

    source = column.type
    compatible = (
        pa.types.is_null(source)
        or source == target
        or (pa.types.is_integer(target) and pa.types.is_integer(source))
        or (pa.types.is_floating(target) and (pa.types.is_integer(source) or pa.types.is_floating(source)))
        or (pa.types.is_string(target) and (pa.types.is_string(source) or pa.types.is_large_string(source)))
        or (FIELDS[kind].get(name) == "datetime" and pa.types.is_timestamp(source))
    )
    if not compatible:
        raise ValidationError(f"{kind} column {name!r} must be {target}, got {source}")
    try:
        return column.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValidationError(f"{kind} column {name!r}: {exc}") from exc


def conform_raw(kind: Kind, raw: pa.Table) -> pa.Table:
    """``raw`` with exactly the raw-view columns: missing ones null, types widened, extras dropped.

    ``_seq`` is kept if present, else the row position. Incompatible types raise ValidationError.
    """
    import pyarrow as pa

    schema = raw_schema(kind)
    columns = []
    for field in schema:
        if field.name in raw.column_names:
            columns.append(_conform_column(kind, field.name, raw.column(field.name), field.type))
        elif field.name == SEQ:
            columns.append(pa.array(range(raw.num_rows), pa.int64()))
        else:
            columns.append(pa.nulls(raw.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


_local = threading.local()


def _connection() -> Any:
    con = getattr(_local, "con", None)
    if con is None:
        import duckdb

        con = duckdb.connect()
        con.execute("SET threads TO 1")
        _local.con = con
    return con


def clean_table(kind: Kind, raw: pa.Table) -> pa.Table:
    """Clean one batch of raw records (row rules only, no duplicate rule): same rows, same order.

    ``raw`` holds records as decoded from JSON (e.g. ``pa.Table.from_pylist(values)``); any missing
    column counts as null. Returns the cleaned columns of ``kind`` in order.
    """
    if kind not in KINDS:
        raise ValidationError(f"unknown kind {kind!r}")
    con = _connection()
    view = conform_raw(kind, raw)
    con.register(f"raw_{kind}", view)
    try:
        cols = ", ".join(CLEAN_COLUMNS[kind])
        sql = f"SELECT {cols} FROM ({render(CLEAN_SQL[kind], 'duckdb')}) AS cleaned ORDER BY _seq"
        result: pa.Table = con.sql(sql).to_arrow_table()
    finally:
        con.unregister(f"raw_{kind}")
    return result.cast(clean_arrow_schema(kind))


__all__ = [
    "CLEAN_COLUMNS",
    "CLEAN_SQL",
    "CLEAN_TYPES",
    "SEQ",
    "Dialect",
    "arrival_order_matters_sql",
    "clean_arrow_schema",
    "clean_table",
    "cleaned_sql",
    "conform_raw",
    "needs_arrival_order",
    "raw_table",
]
