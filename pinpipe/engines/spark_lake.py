"""Reading a kind's lake objects into Spark, with the DuckDB engine's quarantine semantics.

Spark reads the JSON-lines objects as text lines (split on ``\\n`` only, as the record-by-record reader
does) and parses each with ``from_json`` into the record's typed columns, the way a plain Spark job reads
JSON, in one pass whose result is cached for the two reads of it (per-object verdicts, then the rows).
Spark's parser alone is not exact (it would quietly turn ``5`` into the string ``"5"`` and ``"NaN"`` into a
double), so each line also gets ``_ok``, true only when the line is plainly valid: an object, every int an
integer in range, every float finite, every string field not the text Spark makes of a non-string value
(a number, true/false, an object or array) unless read as VARIANT (:data:`lake_input.NUMBER_LIKE`, whose
real values often look like numbers: their JSON type is checked exactly), datetimes in the wire format
and a real date and time (printed back the same, year 1 or later: no 2020-02-30, year 0000 or
24:00:00), no invalid UTF-8 and no surrogate escape (``\\uD800``-``\\uDFFF``: Spark reads a lone one as
``?``): ``schema.validate_record``'s rules. Any line that is not plainly valid flags its whole object,
which is then re-read record by record in Python by ``engines.lake_input.scan_object``, the same code
the DuckDB engine uses, so both engines quarantine the same records with the same reasons and keep the
same good ones. Parquet objects always take that exact path, as in the DuckDB engine.

``_seq`` orders records as in DuckDB: object index (key order) first, then line order within the object.
Spark's text reader reads each piece of a file (one piece unless the file is split) in order into one
partition, so the offset where the piece starts (``_metadata.file_block_start``) and Spark's row id
(increasing within a partition) order the lines of an object as they were written; objects read exactly
use the line number. The first pin per unique_id is then the one DuckDB keeps without a pass to find
objects where the order matters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from pinpipe.engines.base import QuarantinedRecord
from pinpipe.engines.lake_input import NUMBER_LIKE, local_objects, object_keys, scan_object
from pinpipe.lake.store import FileStore, ObjectStore
from pinpipe.locations import file_url, hadoop_uri
from pinpipe.schema import FIELDS, Kind
from pinpipe.transform.clean import SEQ, record_fields


def _seq(block: str = "_block") -> str:
    """``_seq`` (DECIMAL(38, 0)): the object's index ``_file`` (< 2^27), the offset ``block`` its piece
    starts at (< 2^36, 64 GiB; 0 for an object read exactly, in one piece) and ``_line``, increasing with
    the line within the piece (< 2^63): line order within the object."""
    return f"CAST(_file AS DECIMAL(38, 0)) * {1 << 99} + CAST({block} AS DECIMAL(38, 0)) * {1 << 63} + _line"


_SPARK_TYPES = {"int": "bigint", "float": "double", "str": "string", "datetime": "string"}
_WIRE_DATETIME = "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"
_WIRE = "'yyyy-MM-dd HH:mm:ss'"
_NON_STRING = r"^([\[{\"]|(-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?|true|false)$)"
"""The text Spark's JSON reader makes of a non-string value read into a string column: a number (as sent,
or Java's spelling of a double: ``100.0``, ``1.0E10``), ``true``/``false``, compact JSON of an object or
array, a quoted non-finite number. A string that looks like one of these is flagged too (read exactly)."""
_FIRST = "('[', '{', '\"', 't', 'f', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9')"
_SURROGATE_ESCAPE = r"\\u[dD][89a-fA-F]"
"""A ``\\uD800``-``\\uDFFF`` escape: Spark reads a lone one as '?', Python keeps a pair or refuses a lone
one later; either way the exact reader decides."""
_SPACE = r"' \t\r'"


@dataclass
class RawKind:
    """One kind's raw records in Spark (view ``raw_<kind>``) and what was set aside."""

    frame: Any
    typed: Any
    """The cached parsed lines behind ``frame`` (None without JSON objects): unpersist when done."""
    records_read: int
    objects_read: int
    quarantined: list[QuarantinedRecord]


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def object_url(store: ObjectStore, lake_url: str, key: str) -> str:
    """The URL Spark reads an object at: ``file:///...`` or ``s3://bucket/prefix/key`` (S3A)."""
    if isinstance(store, FileStore):
        return hadoop_uri(file_url(store.root.resolve() / key))
    return f"{hadoop_uri(lake_url).rstrip('/')}/{key}"


def _field_check(field: str, kind_type: str, variant: bool) -> tuple[str, str]:
    """(typed value, plainly valid) of one field of the parsed struct ``j``."""
    value = f"j.`{field}`"
    if variant:
        shape = f"schema_of_variant({value})"
        return f"variant_get({value}, '$', 'string')", f"{shape} = 'STRING' OR {shape} = 'VOID'"
    if kind_type == "float":  # Spark also reads "NaN", "Infinity" (strings) and 1e400 into a double
        ok = f"NOT isnan({value}) AND abs({value}) != double('Infinity')"
    elif kind_type == "str":
        ok = f"NOT (substring({value}, 1, 1) IN {_FIRST} AND {value} RLIKE {_quote(_NON_STRING)})"
    elif kind_type == "datetime":  # no other JSON value's text matches the wire format
        # and a date and time that exist: printed back the same (no 2020-02-30, no year 0000, no 24:00:00)
        stamp = f"try_to_timestamp({value}, {_WIRE})"  # proleptic: it reads year 0000 as 1 BC
        exists = f"coalesce(date_format({stamp}, {_WIRE}) = {value} AND year({stamp}) >= 1, false)"
        ok = f"{value} RLIKE {_quote(_WIRE_DATETIME)} AND {exists}"
    else:  # int: Spark's parser takes nothing but an integer in range into a bigint
        ok = "true"
    return value, ok


def typed_select(kind: Kind, lines: str = "lines", keep: str = "_file, _line") -> str:
    """Per line of ``lines`` (the columns ``keep`` and ``line``): ``keep``, the typed fields and ``_ok``
    (plainly valid, see the module doc). One ``from_json`` per line; a line that is not a JSON object, or
    holds a value the typed column refuses, lands in ``_corrupt_record``."""
    variants = NUMBER_LIKE.get(kind, frozenset())
    fields = FIELDS[kind]
    types = [f"`{f}` {'variant' if f in variants else _SPARK_TYPES[t]}" for f, t in fields.items()]
    schema = ", ".join([*types, "_corrupt_record string"])
    values, checks = [], []
    for field, kind_type in fields.items():
        value, ok = _field_check(field, kind_type, field in variants)
        values.append(f"{value} AS `{field}`")
        checks.append(f"(j.`{field}` IS NULL OR ({ok}))")
    line_ok = (
        f"j IS NOT NULL AND j._corrupt_record IS NULL"
        f" AND trim(LEADING {_SPACE} FROM line) LIKE '{{%' AND trim(TRAILING {_SPACE} FROM line) LIKE '%}}'"
        " AND is_valid_utf8(line)"
        f" AND (instr(line, '\\\\u') = 0 OR NOT line RLIKE {_quote(_SURROGATE_ESCAPE)})"
    )
    return (
        f"SELECT {keep}, {', '.join(values)}, ({line_ok} AND {' AND '.join(checks)}) AS _ok"
        f" FROM (SELECT {keep}, line, from_json(line, {_quote(schema)}, map('mode', 'PERMISSIVE')) AS j"
        f" FROM {lines}) AS parsed"
    )


def _lines(
    spark: Any, store: ObjectStore, lake_url: str, keys: list[str], index: dict[str, int], kind: Kind
) -> str:
    """A view of every non-blank line of the objects ``keys``: its object's index (``_file``), where the
    piece of the object it was read from starts (``_block``), Spark's row id (``_line``: increasing within
    the piece) and the text; returns its name."""
    text = spark.read.option("lineSep", "\n").text([object_url(store, lake_url, k) for k in keys])
    # objects are matched by their last two key segments (partition=<p>/<name>), unique per topic
    tails = ", ".join(f"({_quote('/'.join(k.split('/')[-2:]))}, {index[k]})" for k in keys)
    text.select("value", "_metadata.file_path", "_metadata.file_block_start").createOrReplaceTempView(
        f"lake_text_{kind}"
    )
    # a local relation: a list given to createDataFrame would start Python workers to broadcast it
    spark.sql(
        f"SELECT tail, CAST(_file AS BIGINT) AS _file FROM VALUES {tails} AS f(tail, _file)"
    ).createOrReplaceTempView(f"lake_files_{kind}")
    spark.sql(  # no shuffle between the text and the row id: the lines of a piece keep their order
        "SELECT /*+ BROADCAST(f) */ f._file, t.file_block_start AS _block,"
        " monotonically_increasing_id() AS _line, t.value AS line"
        f" FROM lake_text_{kind} AS t JOIN lake_files_{kind} AS f"
        " ON substring_index(t.file_path, '/', -2) = f.tail WHERE trim(t.value) != ''"
    ).createOrReplaceTempView(f"lines_{kind}")
    return f"lines_{kind}"


def _verdicts(spark: Any, kind: Kind) -> tuple[set[int], int]:
    """(objects to read exactly, records in the others) from the cached ``typed_<kind>``."""
    per_file = spark.sql(
        f"SELECT _file, count(*) AS n, bool_and(_ok) AS ok FROM typed_{kind} GROUP BY _file"
    ).collect()
    flagged = {r["_file"] for r in per_file if not r["ok"]}
    return flagged, sum(r["n"] for r in per_file if r["_file"] not in flagged)


def read_kind(
    spark: Any,
    store: ObjectStore,
    lake_url: str,
    prefix: str,
    kind: Kind,
    scratch: Path,
    only: list[str] | None = None,
) -> RawKind:
    """Register ``raw_<kind>`` (``transform.clean.raw_schema`` columns, ``_seq`` a decimal) from the lake;
    see the module doc.

    ``only``: the keys to read (those an incremental run cleans, in key order); None: every object."""
    keys = object_keys(store, prefix, kind) if only is None else only
    json_keys = [k for k in keys if not k.endswith(".parquet")]
    index = {k: i for i, k in enumerate(keys)}
    names = ", ".join(f"`{f}`" for f in FIELDS[kind])
    exact: list[str] = [k for k in keys if k.endswith(".parquet")]
    good = None
    count = 0
    typed = None
    if json_keys:
        lines = _lines(spark, store, lake_url, json_keys, index, kind)
        typed = spark.sql(typed_select(kind, lines, "_file, _block, _line")).cache()
        typed.createOrReplaceTempView(f"typed_{kind}")
        flagged, count = _verdicts(spark, kind)
        exact.extend(keys[i] for i in sorted(flagged))
        flagged_sql = ", ".join(str(i) for i in sorted(flagged)) or "-1"
        good = spark.sql(
            f"SELECT {names}, {_seq()} AS _seq FROM typed_{kind} WHERE _file NOT IN ({flagged_sql})"
        )
    bad: list[QuarantinedRecord] = []
    scanned: list[pa.Table] = []
    with local_objects(store, sorted(exact, key=index.__getitem__), scratch) as objects:
        for obj in objects:
            table, rejected = scan_object(kind, obj)
            bad.extend(rejected)
            if table.num_rows:  # its _seq is the line: _line here (one piece), _seq as for the others
                lines = table.rename_columns(["_line" if c == SEQ else c for c in table.column_names])
                scanned.append(
                    lines.append_column("_file", pa.array([index[obj.key]] * table.num_rows, pa.int64()))
                )
    frame = good
    if scanned or frame is None:
        arrow = pa.concat_tables(scanned) if scanned else _exact_schema(kind).empty_table()
        count += arrow.num_rows
        extra = spark.createDataFrame(arrow, schema=_spark_schema(kind)).selectExpr(
            *(f"`{f}`" for f in FIELDS[kind]), f"{_seq('0')} AS _seq"
        )
        frame = extra if frame is None else frame.unionByName(extra)
    frame.createOrReplaceTempView(f"raw_{kind}")
    return RawKind(frame, typed, count + len(bad), len(keys), sorted(bad, key=lambda r: (r.key, r.line or 0)))


def _exact_schema(kind: Kind) -> pa.Schema:
    """Records read exactly: the raw columns, ``_line`` and ``_file`` (see :func:`_seq`)."""
    return pa.schema([*record_fields(kind), ("_line", pa.int64()), ("_file", pa.int64())])


def _spark_schema(kind: Kind) -> str:
    fields = [f"`{f}` {_SPARK_TYPES[t]}" for f, t in FIELDS[kind].items()]
    return ", ".join([*fields, "_line bigint", "_file bigint"])
