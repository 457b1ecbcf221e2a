"""DuckDB engine: reads the lake in bulk, runs the ``transform`` SQL in-process, writes Delta via delta-rs.

Lake reading: all JSON-lines objects of a kind go through one ``read_json`` call with every field read as
JSON, so each value's JSON type is checked in SQL exactly as ``schema.validate_record`` would (DuckDB alone
would quietly turn ``"25"`` into 25). An object the bulk reader cannot parse (found by bisecting the object
list) or that holds a wrongly typed value is re-read record by record (``engines.lake_input``): its bad
records are quarantined, the rest processed. Data stays inside DuckDB (a scratch database under the
workdir, bounded by ``memory_limit``, spilling to disk) until it is streamed to Delta.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from pinpipe.config import Settings
from pinpipe.engines.base import BatchResult, QuarantinedRecord
from pinpipe.engines.delta import write_delta
from pinpipe.engines.lake_input import LakeObject, local_objects, object_keys, quarantine_table, scan_object
from pinpipe.errors import EngineError
from pinpipe.lake.store import open_store
from pinpipe.schema import FIELDS, KINDS, Kind
from pinpipe.tables import batch_table
from pinpipe.transform.clean import CLEAN_ARROW_SCHEMA, SEQ, cleaned_sql, raw_schema
from pinpipe.transform.dialect import render
from pinpipe.transform.export import sort_output
from pinpipe.transform.queries import OUTPUTS, BatchOptions, output_sql

_FILE_SHIFT = 1 << 40
"""_seq of a lake record = object index * 2^40 + position in the object: arrival order without a sort."""

_NUMBER = {"int": "-?[0-9]+", "float": "-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?"}
_SQL_TYPES = {"int": "BIGINT", "float": "DOUBLE", "str": "VARCHAR", "datetime": "VARCHAR"}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _bulk_select(kind: Kind, paths: list[str]) -> str:
    """read_json of many objects: typed values, ``_ok`` (every value of the expected JSON type), filename."""
    fields = FIELDS[kind]
    columns = "{" + ", ".join(f"{_quote(f)}: 'JSON'" for f in fields) + "}"
    values, checks = [], []
    for f, t in fields.items():
        col, text = f'"{f}"', f'"{f}"::VARCHAR'
        # Checks on the JSON text (no second parse): strings start with a quote, numbers match a pattern.
        if t in ("str", "datetime"):
            values.append(f"{col}->>'$' AS {col}")
            ok = f"starts_with({text}, '\"')"
        else:
            values.append(f"TRY_CAST({text} AS {_SQL_TYPES[t]}) AS {col}")
            ok = f"regexp_full_match({text}, '{_NUMBER[t]}')"
        if t == "int":
            ok += f" AND TRY_CAST({text} AS BIGINT) IS NOT NULL"
        if t == "datetime":
            ok += f" AND TRY_CAST({col}->>'$' AS TIMESTAMP) IS NOT NULL"
        checks.append(f"({col} IS NULL OR {text} = 'null' OR ({ok}))")
    files = "[" + ", ".join(_quote(p) for p in paths) + "]"
    return (
        f"SELECT {', '.join(values)}, ({' AND '.join(checks)}) AS _ok, filename, NULL::BIGINT AS _line"
        f" FROM read_json({files}, format='newline_delimited', records=true, columns={columns},"
        f" filename=true, maximum_object_size=67108864)"
    )


class DuckDBEngine:
    """The embedded batch engine (``--engine duckdb``)."""

    name = "duckdb"

    def __init__(
        self, settings: Settings, memory_limit: str | None = None, threads: int | None = None
    ) -> None:
        self.settings = settings
        self.memory_limit = memory_limit or os.environ.get("PINPIPE_DUCKDB_MEMORY_LIMIT", "2GB")
        self.threads = threads
        self.on_disk = os.environ.get("PINPIPE_DUCKDB_ON_DISK", "") == "1"
        """Keep the scratch data in a database file instead of memory (spilling happens either way)."""

    # -- connections -------------------------------------------------------------------------------------
    def _connect(self, database: str = ":memory:") -> Any:
        import duckdb

        con = duckdb.connect(database)
        scratch = self.settings.workdir.resolve() / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET memory_limit = {_quote(self.memory_limit)}")
        con.execute(f"SET temp_directory = {_quote(str(scratch / 'duckdb-spill'))}")
        if self.threads:
            con.execute(f"SET threads TO {int(self.threads)}")
        return con

    # -- Engine protocol ---------------------------------------------------------------------------------
    def clean(self, raw: Mapping[Kind, pa.Table], options: BatchOptions) -> dict[Kind, pa.Table]:
        from pinpipe.transform.clean import conform_raw

        con = self._connect()
        try:
            for kind in KINDS:
                con.register(f"raw_{kind}", conform_raw(kind, raw.get(kind, pa.table({}))))
            self._create_cleaned(con, options)
            return {k: self._fetch(con, f"SELECT * FROM cleaned_{k}", CLEAN_ARROW_SCHEMA[k]) for k in KINDS}
        finally:
            con.close()

    def run_queries(self, cleaned: Mapping[Kind, pa.Table], options: BatchOptions) -> dict[str, pa.Table]:
        con = self._connect()
        try:
            for kind in KINDS:
                table = cleaned.get(kind)
                con.register(
                    f"cleaned_{kind}", table if table is not None else CLEAN_ARROW_SCHEMA[kind].empty_table()
                )
            return self._outputs(con, options)
        finally:
            con.close()

    def run_batch(self, options: BatchOptions) -> BatchResult:
        started = time.perf_counter()
        settings = self.settings
        scratch = settings.workdir.resolve() / "tmp"
        database = scratch / f"batch-{os.getpid()}.duckdb"
        store = open_store(settings.lake_url)
        con = self._connect()
        con.close()
        for leftover in (database, database.with_suffix(".duckdb.wal")):
            leftover.unlink(missing_ok=True)
        con = self._connect(str(database) if self.on_disk else ":memory:")
        quarantined: list[QuarantinedRecord] = []
        read: dict[Kind, int] = {}
        objects_read: dict[Kind, int] = {}
        try:
            for kind in KINDS:
                keys = object_keys(store, settings.prefix, kind)
                objects_read[kind] = len(keys)
                with local_objects(store, keys, scratch) as objects:
                    bad = self._load_raw(con, kind, objects)
                quarantined.extend(bad)
                read[kind] = con.execute(f"SELECT count(*) FROM raw_{kind}").fetchone()[0] + len(bad)
            self._create_cleaned(con, options)
            for kind in KINDS:
                con.execute(f"DROP VIEW raw_{kind}; DROP TABLE stage_{kind}")
            outputs = self._outputs(con, options)
            tables = self._write(con, outputs, quarantined)
            cleaned_rows = {k: con.execute(f"SELECT count(*) FROM cleaned_{k}").fetchone()[0] for k in KINDS}
        except Exception as exc:
            import duckdb

            if isinstance(exc, duckdb.Error):
                raise EngineError(f"DuckDB failed: {exc}") from exc
            raise
        finally:
            con.close()
            for leftover in (database, database.with_suffix(".duckdb.wal")):
                leftover.unlink(missing_ok=True)
        return BatchResult(
            engine=self.name,
            options=options,
            outputs=outputs,
            records_read=read,
            cleaned_rows=cleaned_rows,
            quarantined=quarantined,
            seconds=time.perf_counter() - started,
            tables=tables,
            objects_read=objects_read,
        )

    # -- steps -------------------------------------------------------------------------------------------
    def _load_raw(self, con: Any, kind: Kind, objects: list[LakeObject]) -> list[QuarantinedRecord]:
        """Fill ``stage_<kind>`` and define the raw view; returns the quarantined records."""
        import duckdb

        schema = raw_schema(kind)
        cols = ", ".join(f'"{f.name}" {_SQL_TYPES[FIELDS[kind][f.name]]}' for f in schema if f.name != SEQ)
        con.execute(f"CREATE TABLE stage_{kind} ({cols}, _ok BOOLEAN, filename VARCHAR, _line BIGINT)")
        index = {str(o.path): i for i, o in enumerate(objects)}
        suspicious: list[LakeObject] = [o for o in objects if o.is_parquet]

        def bulk(chunk: list[LakeObject]) -> None:
            if not chunk:
                return
            try:
                con.execute(f"INSERT INTO stage_{kind} {_bulk_select(kind, [str(o.path) for o in chunk])}")
            except duckdb.Error:
                if len(chunk) == 1:
                    suspicious.append(chunk[0])
                    return
                middle = len(chunk) // 2
                bulk(chunk[:middle])
                bulk(chunk[middle:])

        bulk([o for o in objects if not o.is_parquet])
        flagged = {
            r[0] for r in con.sql(f"SELECT DISTINCT filename FROM stage_{kind} WHERE NOT _ok").fetchall()
        }
        if flagged:
            con.execute(
                f"DELETE FROM stage_{kind} WHERE filename IN"
                f" (SELECT filename FROM stage_{kind} WHERE NOT _ok)"
            )
            suspicious.extend(o for o in objects if str(o.path) in flagged)
        bad: list[QuarantinedRecord] = []
        for obj in suspicious:
            good, rejected = scan_object(kind, obj)
            bad.extend(rejected)
            if good.num_rows:
                rows = good.rename_columns([*good.column_names[:-1], "_line"])
                con.register("scanned", rows)
                names = ", ".join(f'"{n}"' for n in rows.column_names if n != "_line")
                con.execute(
                    f"INSERT INTO stage_{kind} ({names}, _ok, filename, _line)"
                    f" SELECT {names}, true, {_quote(str(obj.path))}, _line FROM scanned"
                )
                con.unregister("scanned")
        con.execute(
            f"CREATE TABLE objects_{kind} AS"
            " SELECT unnest(?::VARCHAR[]) AS filename, unnest(?::BIGINT[]) AS _file",
            [list(index), list(index.values())],
        )
        fields = ", ".join(f's."{f}"' for f in FIELDS[kind])
        con.execute(
            f"CREATE VIEW raw_{kind} AS SELECT {fields},"
            f" o._file * {_FILE_SHIFT} + COALESCE(s._line, s.rowid) AS _seq"
            f" FROM stage_{kind} AS s JOIN objects_{kind} AS o USING (filename)"
        )
        return sorted(bad, key=lambda r: (r.key, r.line or 0))

    def _create_cleaned(self, con: Any, options: BatchOptions) -> None:
        for kind in KINDS:
            sql = render(cleaned_sql(kind, options.keep_duplicates), "duckdb")
            con.execute(f"CREATE TABLE cleaned_{kind} AS {sql}")

    def _outputs(self, con: Any, options: BatchOptions) -> dict[str, pa.Table]:
        return {
            name: sort_output(name, con.sql(output_sql(name, options)).to_arrow_table()) for name in OUTPUTS
        }

    @staticmethod
    def _fetch(con: Any, sql: str, schema: pa.Schema) -> pa.Table:
        table: pa.Table = con.sql(sql).to_arrow_table()
        return table.cast(schema)

    def _write(
        self, con: Any, outputs: dict[str, pa.Table], quarantined: list[QuarantinedRecord]
    ) -> dict[str, str]:
        tables: dict[str, str] = {}
        for kind in KINDS:
            url = batch_table(self.settings, kind)
            reader = con.sql(f"SELECT * FROM cleaned_{kind}").to_arrow_reader(100_000)
            write_delta(url, reader.cast(CLEAN_ARROW_SCHEMA[kind]))
            tables[kind] = url
        for name, table in outputs.items():
            url = batch_table(self.settings, name)
            write_delta(url, table)
            tables[name] = url
        tables["quarantine"] = batch_table(self.settings, "quarantine")
        write_delta(tables["quarantine"], quarantine_table(quarantined))
        return tables
