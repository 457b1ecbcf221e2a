"""Reading a kind's lake objects into Spark, with the DuckDB engine's quarantine semantics.

Spark reads every JSON-lines object whole (``wholetext``), splits it into numbered lines and parses each
with ``try_parse_json`` (a VARIANT), so each value's JSON type is checked exactly, as
``schema.validate_record`` would (a plain JSON reader would quietly turn ``"25"`` into 25). The check is
deliberately strict: any line that is not plainly valid (not an object, a wrong JSON type, an integer out of
range, a float that is not finite, a datetime not in the wire format or not a real date and time, a
surrogate escape, a duplicated key, bytes that are not UTF-8) flags its whole
object, which is then re-read record by record in Python by ``engines.lake_input.scan_object``, the same
code the DuckDB engine uses, so both engines quarantine the same records with the same reasons and keep
the same good ones. Parquet objects always take that exact path, as in the DuckDB engine.

``_seq`` (arrival order: object index in key order * 2^40 + line) orders duplicates as in DuckDB.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from pinpipe.engines.base import QuarantinedRecord
from pinpipe.engines.lake_input import local_objects, object_keys, scan_object
from pinpipe.lake.store import FileStore, ObjectStore
from pinpipe.locations import file_url, hadoop_uri
from pinpipe.schema import FIELDS, Kind
from pinpipe.transform.clean import raw_schema

FILE_SHIFT = 1 << 40
_INTS = "('TINYINT', 'SMALLINT', 'INT', 'BIGINT')"
_SPARK_TYPES = {"int": "bigint", "float": "double", "str": "string", "datetime": "string"}
_WIRE_DATETIME = "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"
_WIRE = "'yyyy-MM-dd HH:mm:ss'"
_SURROGATE_ESCAPE = "\\\\u[dD][89a-fA-F]"
"""A ``\\uD800``-``\\uDFFF`` escape: Spark reads a lone one as '?', Python keeps it and refuses it later."""


@dataclass
class RawKind:
    """One kind's raw records in Spark (view ``raw_<kind>``) and what was set aside."""

    frame: Any
    typed: Any
    """The persisted parsed lines behind ``frame`` (None without JSON objects): unpersist when done."""
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


def typed_select(kind: Kind) -> str:
    """Per line of ``lines`` (``_file``, ``_line``, ``line``): typed fields and ``_ok`` (plainly valid).

    One ``from_json`` per line into VARIANT fields (a JSON that is not an object, or not JSON, lands in
    ``_corrupt_record``); ``schema_of_variant`` gives each value's JSON type.
    """
    fields = FIELDS[kind]
    schema = ", ".join([*(f"`{f}` variant" for f in fields), "_corrupt_record string"])
    values, checks = [], []
    for field, kind_type in fields.items():
        value = f"j.`{field}`"
        shape = f"schema_of_variant({value})"
        typed = f"try_variant_get({value}, '$', '{_SPARK_TYPES[kind_type]}')"
        values.append(f"{typed} AS `{field}`")
        if kind_type == "int":
            ok = f"{shape} IN {_INTS}"
        elif kind_type == "float":
            # a finite double: 1e400 and a 400-digit integer read as Infinity, NaN is a JSON extension
            finite = f"NOT isnan({typed}) AND abs({typed}) < double('Infinity')"
            ok = f"({shape} IN {_INTS} OR {shape} LIKE 'DECIMAL%' OR {shape} = 'DOUBLE') AND {finite}"
        elif kind_type == "str":
            ok = f"{shape} = 'STRING'"
        else:
            # the wire format, and a date and time that exist: printed back the same (no 2020-02-30,
            # no year 0000, no 24:00:00)
            text = f"variant_get({value}, '$', 'string')"
            stamp = f"try_to_timestamp({text}, {_WIRE})"  # proleptic: it reads year 0000 as 1 BC
            exists = f"coalesce(date_format({stamp}, {_WIRE}) = {text} AND year({stamp}) >= 1, false)"
            ok = f"({shape} = 'STRING' AND regexp_like({text}, {_quote(_WIRE_DATETIME)}) AND {exists})"
        # a missing field gives NULL: allowed, as is an explicit JSON null (VOID); a value of the right
        # JSON type that does not fit the column (an integer past BIGINT) is not plainly valid either
        checks.append(f"coalesce({shape} = 'VOID' OR ({ok} AND {typed} IS NOT NULL), true)")
    return (
        f"SELECT _file, _line, {', '.join(values)},"
        f" (j IS NOT NULL AND j._corrupt_record IS NULL AND instr(line, '\\uFFFD') = 0"
        f" AND NOT regexp_like(line, {_quote(_SURROGATE_ESCAPE)})"
        f" AND {' AND '.join(checks)}) AS _ok"
        f" FROM (SELECT _file, _line, line, from_json(line, {_quote(schema)}, map('mode', 'PERMISSIVE')) AS j"
        f" FROM lines) AS parsed"
    )


def read_kind(
    spark: Any,
    store: ObjectStore,
    lake_url: str,
    prefix: str,
    kind: Kind,
    scratch: Path,
    only: list[str] | None = None,
) -> RawKind:
    """Register ``raw_<kind>`` (``transform.clean.raw_schema`` columns) from the lake; see module doc.

    ``only``: the keys to read (those an incremental run cleans, in key order); None: every object."""
    from pyspark import StorageLevel

    keys = object_keys(store, prefix, kind) if only is None else only
    json_keys = [k for k in keys if not k.endswith(".parquet")]
    index = {k: i for i, k in enumerate(keys)}
    names = ", ".join(f"`{f}`" for f in FIELDS[kind])
    exact: list[str] = [k for k in keys if k.endswith(".parquet")]
    good = None
    count = 0
    typed = None
    if json_keys:
        reader = spark.read.format("text").option("wholetext", "true")
        text = reader.load([object_url(store, lake_url, k) for k in json_keys])
        # objects are matched by their last two key segments (partition=<p>/<name>), unique per topic
        tail = [("/".join(k.split("/")[-2:]), index[k]) for k in json_keys]
        text.select("value", "_metadata.file_path").createOrReplaceTempView("lake_text")
        spark.createDataFrame(tail, "tail string, _file bigint").createOrReplaceTempView("lake_files")
        spark.sql(
            "SELECT f._file, x.pos + 1 AS _line, x.line FROM lake_text AS t"
            " JOIN lake_files AS f ON substring_index(t.file_path, '/', -2) = f.tail"
            " LATERAL VIEW posexplode(split(t.value, '\\n')) x AS pos, line"
            " WHERE trim(x.line) != ''"
        ).createOrReplaceTempView("lines")
        typed = spark.sql(typed_select(kind)).persist(StorageLevel.DISK_ONLY)
        typed.createOrReplaceTempView(f"typed_{kind}")
        per_file = spark.sql(
            f"SELECT _file, count(*) AS n, bool_and(_ok) AS ok FROM typed_{kind} GROUP BY _file"
        ).collect()
        flagged = {r["_file"] for r in per_file if not r["ok"]}
        count = sum(r["n"] for r in per_file if r["ok"])
        exact.extend(keys[i] for i in sorted(flagged))
        flagged_sql = ", ".join(str(i) for i in sorted(flagged)) or "-1"
        good = spark.sql(
            f"SELECT {names}, _file * {FILE_SHIFT} + _line AS _seq FROM typed_{kind}"
            f" WHERE _file NOT IN ({flagged_sql})"
        )
    bad: list[QuarantinedRecord] = []
    scanned: list[pa.Table] = []
    with local_objects(store, sorted(exact, key=index.__getitem__), scratch) as objects:
        for obj in objects:
            table, rejected = scan_object(kind, obj)
            bad.extend(rejected)
            if table.num_rows:
                seq = pa.compute.add(table.column("_seq"), index[obj.key] * FILE_SHIFT)
                scanned.append(table.set_column(table.schema.get_field_index("_seq"), "_seq", seq))
    frame = good
    if scanned or frame is None:
        arrow = pa.concat_tables(scanned) if scanned else raw_schema(kind).empty_table()
        count += arrow.num_rows
        extra = spark.createDataFrame(arrow, schema=_spark_schema(kind))
        frame = extra if frame is None else frame.unionByName(extra)
    frame.createOrReplaceTempView(f"raw_{kind}")
    return RawKind(frame, typed, count + len(bad), len(keys), sorted(bad, key=lambda r: (r.key, r.line or 0)))


def _spark_schema(kind: Kind) -> str:
    fields = [f"`{f}` {_SPARK_TYPES[t]}" for f, t in FIELDS[kind].items()]
    return ", ".join([*fields, "_seq bigint"])
