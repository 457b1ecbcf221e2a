"""DuckDB engine: reads the lake in bulk, runs the ``transform`` SQL in-process, writes Delta via delta-rs.

Lake reading: all JSON-lines objects of a kind go through one ``read_json`` call that checks each value's
JSON type in SQL as ``schema.validate_record`` would (DuckDB alone would quietly turn ``"25"`` into 25;
:func:`_bulk_select`). Objects it flags are read again with every field as JSON text, and an object that
still holds a wrongly typed value, or that the bulk reader cannot parse (found by bisecting the object
list), is re-read record by record (``engines.lake_input``): its bad records are quarantined, the rest
processed. Data stays inside DuckDB (a scratch database under the workdir, bounded by ``memory_limit``,
spilling to disk) until DuckDB writes it as Parquet for Delta. A kind bigger than the memory allows is
staged and cleaned in chunks of consecutive objects (:func:`_chunks`).
"""

from __future__ import annotations

import logging
import os
import resource
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from pinpipe.config import Settings
from pinpipe.delta import ParquetFile, local_table_dir, open_table, replace_table
from pinpipe.engines.base import BatchResult, QuarantinedRecord
from pinpipe.engines.increments import (
    PRECEDES_KEPT,
    Fingerprinter,
    KindPlan,
    QuarantineBook,
    commit_parts,
    plan_run,
    plan_summary,
    rebuild_plan,
    write_table,
)
from pinpipe.engines.lake_input import NUMBER_LIKE, LakeObject, local_objects, scan_object
from pinpipe.errors import EngineError
from pinpipe.lake.store import FileStore, open_store
from pinpipe.locations import duckdb_path
from pinpipe.schema import FIELDS, KINDS, Kind
from pinpipe.tables import batch_table
from pinpipe.transform.clean import (
    CLEAN_ARROW_SCHEMA,
    CLEAN_COLUMNS,
    SEQ,
    arrival_order_matters_sql,
    cleaned_sql,
    differing_first_pins_sql,
    kept_rows_sql,
    needs_arrival_order,
    raw_schema,
)
from pinpipe.transform.dialect import render
from pinpipe.transform.export import sort_output
from pinpipe.transform.queries import COLUMNS_READ, JOINS, OUTPUTS, BatchOptions, join_sql, output_sql

_FILE_SHIFT = 1 << 40
"""_seq of a lake record = object index * 2^40 + position in the object: arrival order without a sort."""

_MAX_MEMORY = 2 << 30
_MIN_MEMORY = 256 << 20


def _memory_limit(lake_bytes: int) -> int:
    """Three fifths of the lake's size, between 256 MB and 2 GB: the job's peak (the limit plus ~150 MB of
    Python and Arrow) stays below the size of what it reads.

    DuckDB spills beyond it (sorts, joins and tables, to ``workdir/tmp``); a kind too big to stage and clean
    within it is cleaned in chunks (:data:`_STAGE_MEMORY`). At 1M posts the peak is 0.74x the raw size.
    """
    return max(_MIN_MEMORY, min(_MAX_MEMORY, lake_bytes * 3 // 5))


_STAGE_MEMORY = 1.8
"""DuckDB memory per byte of raw JSON staged and cleaned at once without spilling: 445 MB of pin objects
(1M posts) stage in 352 MB, and cleaning them into Parquet peaked at ~800 MB. A kind bigger than the memory
limit / this is cleaned in chunks of objects: at 1M posts (limit 432 MB) the pins in two, 2.7-2.9 s,
against 3.1-3.4 s for a single pass that spilled ~170 MB."""

_BATCH_ROWS = 122_880
"""Rows per Arrow record batch streamed from DuckDB to Delta (a multiple of DuckDB's 2,048-row vectors)."""
_log = logging.getLogger(__name__)

_DUCKDB_TYPES = {
    pa.int64(): "BIGINT",
    pa.string(): "VARCHAR",
    pa.list_(pa.float64()): "DOUBLE[]",
    pa.timestamp("us"): "TIMESTAMP",
}
"""The DuckDB spelling of each Arrow type in ``CLEAN_ARROW_SCHEMA``: the Parquet DuckDB writes matches it."""
_SQL_TYPES = {"int": "BIGINT", "float": "DOUBLE", "str": "VARCHAR", "datetime": "VARCHAR"}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _bulk_select(kind: Kind, objects: dict[int, str], exact: bool = False) -> str:
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
    columns = ", ".join(f"{_quote(f)}: '{'VARCHAR' if f in fast else 'JSON'}'" for f in fields)
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
                value = f"TRY_CAST({text} AS {_SQL_TYPES[t]})"
                ok = f"CAST({value} AS VARCHAR) = {text}" if t == "int" else f"isfinite({value})"
        if t == "datetime":  # a date and time that exist: printed back the same (no year 0000, no 24:00)
            ok += f" AND CAST(TRY_CAST({value} AS TIMESTAMP) AS VARCHAR) = {value}"
        values.append(f"{value} AS {col}")
        checks.append(f"({null} OR coalesce({ok}, false))")
    files = "[" + ", ".join(_quote(p) for p in objects.values()) + "]"
    indexes = "[" + ", ".join(str(i) for i in objects) + "]"
    return (
        f"SELECT {', '.join(values)}, ({' AND '.join(checks)}) AS _ok,"
        f" list_extract(CAST({indexes} AS BIGINT[]), CAST(file_index AS BIGINT) + 1) AS _file,"
        " NULL::BIGINT AS _line"
        f" FROM read_json({files}, format='newline_delimited', records=true, columns={{{columns}}})"
    )


class DuckDBEngine:
    """The embedded batch engine (``--engine duckdb``)."""

    name = "duckdb"

    def __init__(
        self,
        settings: Settings,
        memory_limit: str | None = None,
        threads: int | None = None,
        chunk_bytes: int | None = None,
    ) -> None:
        self.settings = settings
        self.chunk_bytes = chunk_bytes
        """Raw bytes of objects staged and cleaned at once; None: sized from the memory limit."""
        self.memory_limit = memory_limit or settings.engine.duckdb_memory_limit or None
        """DuckDB ``memory_limit``; None: sized from the lake by :func:`_memory_limit` (spills beyond it)."""
        self.threads = threads
        self.on_disk = settings.engine.duckdb_on_disk
        """Keep the scratch data in a database file instead of memory (spilling happens either way)."""

    # -- connections -------------------------------------------------------------------------------------
    def _connect(self, database: str = ":memory:") -> Any:
        import duckdb

        scratch = self.settings.workdir.resolve() / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)  # also holds the on-disk scratch database
        con = duckdb.connect(database)
        con.execute(f"SET memory_limit = {_quote(self.memory_limit or f'{_MAX_MEMORY}B')}")
        con.execute(f"SET temp_directory = {_quote(str(scratch / 'duckdb-spill'))}")
        # Row order only matters while staging raw records (see _load_raw); elsewhere it costs parallelism.
        con.execute("SET preserve_insertion_order = false")
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

    def run_batch(self, options: BatchOptions, full_refresh: bool = False) -> BatchResult:
        """Clean the lake objects the cleaned tables do not hold yet (all with ``full_refresh``), append
        them, and recompute the ten outputs from the cleaned tables (``engines.increments``)."""
        started = time.perf_counter()
        settings = self.settings
        scratch = settings.workdir.resolve() / "tmp"
        database = scratch / f"batch-{os.getpid()}.duckdb"
        store = open_store(settings.lake_url)
        for leftover in (database, database.with_suffix(".duckdb.wal")):
            leftover.unlink(missing_ok=True)
        con = self._connect(str(database) if self.on_disk else ":memory:")
        quarantine, plans = plan_run(store, settings, options, full_refresh)
        if self.memory_limit is None and isinstance(store, FileStore):
            todo_bytes = sum(p.info[k][0] for p in plans.values() for k in p.todo)
            con.execute(f"SET memory_limit = '{_memory_limit(todo_bytes)}B'")
        phase = _PhaseLog()
        quarantined: list[QuarantinedRecord] = []
        read: dict[Kind, int] = {}
        objects_read: dict[Kind, int] = {}
        fingerprints = Fingerprinter()
        try:
            cleaned_rows: dict[Kind, int] = {}
            tables: dict[str, str] = {}
            for kind in KINDS:  # one kind at a time, in chunks: only a chunk's raw rows in memory
                plan = plans[kind]
                if not plan.rebuild and plan.todo and self._precedes_kept(con, plan, store, scratch, options):
                    plan = plans[kind] = rebuild_plan(plan, PRECEDES_KEPT)
                objects_read[kind] = len(plan.todo)
                with local_objects(store, plan.todo, scratch) as objects:
                    for obj in objects:
                        fingerprints.add(obj.key, obj.path, plan.info.get(obj.key))
                    cleaned = self._clean_kind(
                        con, plan, objects, options, scratch, phase, fingerprints, quarantine
                    )
                quarantined.extend(cleaned.quarantined)
                read[kind] = cleaned.records_read
                tables[kind], cleaned_rows[kind] = cleaned.url, cleaned.rows
            outputs = self._outputs(con, options, drop_cleaned=True)
            phase.done("ten outputs")
            tables.update(self._write_outputs(outputs))
            tables["quarantine"] = quarantine.url
            phase.done("write outputs")
        except Exception as exc:
            import duckdb

            if isinstance(exc, duckdb.Error):
                raise EngineError(f"DuckDB failed: {exc}") from exc
            raise
        finally:
            fingerprints.close()
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
            **plan_summary(plans),
        )

    # -- steps -------------------------------------------------------------------------------------------
    def _load_raw(
        self, con: Any, kind: Kind, objects: dict[int, LakeObject], ordered: bool
    ) -> list[QuarantinedRecord]:
        """Fill ``stage_<kind>`` with ``objects`` (index in the kind's key order -> object) and define the
        ``raw_<kind>`` view; returns the quarantined records.

        ``_seq`` = object index * 2^40 + the row's place: its line when ``ordered`` (DuckDB then keeps
        insertion order while reading, about a fifth slower), else merely unique.
        """
        import duckdb

        schema = raw_schema(kind)
        cols = ", ".join(f'"{f.name}" {_SQL_TYPES[FIELDS[kind][f.name]]}' for f in schema if f.name != SEQ)
        con.execute(f"CREATE TABLE stage_{kind} ({cols}, _ok BOOLEAN, _file BIGINT, _line BIGINT)")
        suspicious: set[int] = {i for i, o in objects.items() if o.is_parquet}

        def bulk(chunk: list[int], exact: bool) -> None:
            if not chunk:
                return
            try:
                paths = {i: duckdb_path(objects[i].path) for i in chunk}
                con.execute(f"INSERT INTO stage_{kind} {_bulk_select(kind, paths, exact)}")
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

        con.execute(f"SET preserve_insertion_order = {str(ordered).lower()}")  # rowid = line order
        try:
            bulk([i for i in sorted(objects) if i not in suspicious], exact=False)
            bulk(take_flagged(), exact=True)
        finally:
            con.execute("SET preserve_insertion_order = false")
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
            f" _file * {_FILE_SHIFT} + COALESCE(_line, rowid) AS _seq FROM stage_{kind}"
        )
        return sorted(bad, key=lambda r: (r.key, r.line or 0))

    def _create_cleaned(self, con: Any, options: BatchOptions) -> None:
        for kind in KINDS:
            sql = render(cleaned_sql(kind, options.keep_duplicates), "duckdb")
            con.execute(f"CREATE TABLE cleaned_{kind} AS {sql}")

    def _outputs(self, con: Any, options: BatchOptions, drop_cleaned: bool = False) -> dict[str, pa.Table]:
        """The ten outputs; the two joins they read are built once, then the cleaned tables may go."""
        for join in JOINS:
            con.execute(f"CREATE TEMP TABLE {join} AS {join_sql(join)}")
        statements = {name: output_sql(name, options, joins_built=True) for name in OUTPUTS}
        if drop_cleaned:  # free memory: keep only the cleaned tables an output still reads directly
            for kind in KINDS:
                if not any(f"cleaned_{kind}" in sql for sql in statements.values()):
                    con.execute(f"DROP TABLE cleaned_{kind}")
        try:
            return {
                name: sort_output(name, con.sql(sql).to_arrow_table()) for name, sql in statements.items()
            }
        finally:
            for join in JOINS:
                con.execute(f"DROP TABLE {join}")

    @staticmethod
    def _fetch(con: Any, sql: str, schema: pa.Schema) -> pa.Table:
        table: pa.Table = con.sql(sql).to_arrow_table()
        return table.cast(schema)

    def _clean_kind(
        self,
        con: Any,
        plan: KindPlan,
        objects: list[LakeObject],
        options: BatchOptions,
        scratch: Path,
        phase: _PhaseLog,
        fingerprints: Fingerprinter,
        quarantine: QuarantineBook,
    ) -> _Cleaned:
        """Stage, clean and write the objects of ``plan`` chunk by chunk (:func:`_chunks`, oldest first);
        appended to the kind's table (incremental) or replacing it (``plan.rebuild``), with the kind's
        bookkeeping in the same commit (``engines.increments``).

        Each chunk's cleaned rows become one Parquet part of the Delta table, written by DuckDB itself
        (``COPY``: parallel, streaming, within ``memory_limit``); the rows a chunk must not repeat are read
        back from the parts before it and, when incremental, from the table (``cleaned_sql``'s
        ``kept_before``: of the table only the rows that can match, see ``kept_rows_sql``). delta-rs
        then commits the parts (local tables) or uploads them (remote ones). The columns the outputs need
        are read back into ``cleaned_<kind>``, so the wide cleaned rows are never held in memory.

        Rows are staged in any order within an object (about a fifth faster to read): pin is restaged in
        arrival order only when a chunk holds differing records with one unique_id in one object
        (``arrival_order_matters_sql``), since only then does its first record depend on that order.
        """
        kind = plan.kind
        url = batch_table(self.settings, kind)
        incremental = plan.rebuild is None
        history = _register_history(con, kind, url) if incremental else None
        directory = local_table_dir(url)
        target = directory if directory is not None else scratch / f"cleaned-{os.getpid()}"
        target.mkdir(parents=True, exist_ok=True)
        budget = self.chunk_bytes or _chunk_bytes(con)
        chunks = (
            _chunks([o.path.stat().st_size for o in objects], budget) if objects or not incremental else []
        )
        ordered = needs_arrival_order(kind, options.keep_duplicates)
        parts: list[ParquetFile] = []
        quarantined: list[QuarantinedRecord] = []
        records = 0
        cols = ", ".join(f'"{c}"' for c in CLEAN_COLUMNS[kind])
        try:
            for number, chunk in enumerate(chunks, start=1):
                label = kind if len(chunks) == 1 else f"{kind} {number}/{len(chunks)}"
                chunk_objects = {i: objects[i] for i in chunk}
                bad = self._load_raw(con, kind, chunk_objects, ordered=False)
                if ordered and _fetch_one(con, arrival_order_matters_sql(f"stage_{kind}", "_file")):
                    _drop_stage(con, kind)
                    bad = self._load_raw(con, kind, chunk_objects, ordered=True)
                quarantined.extend(bad)
                records += _count(con, f"stage_{kind}") + len(bad)
                phase.done(f"read lake: {label}")
                sources = [] if history is None else [kept_rows_sql(kind, history, f"stage_{kind}")]
                if parts:
                    sources.append(f"SELECT {cols} FROM {_read_parts(target, parts)}")
                kept = f"kept_{kind}" if sources and not options.keep_duplicates else None
                if kept:
                    con.execute(f"CREATE OR REPLACE VIEW {kept} AS " + " UNION ALL ".join(sources))
                sql = render(cleaned_sql(kind, options.keep_duplicates, kept), "duckdb")
                parts.extend(self._copy_cleaned(con, kind, sql, target, number))
                con.execute(f"DROP VIEW IF EXISTS kept_{kind}")
                _drop_stage(con, kind)
                phase.done(f"clean + write: {label}")
            columns = ", ".join(f'"{c}"' for c in COLUMNS_READ[kind])
            sources = [] if history is None else [f"SELECT {columns} FROM {history}"]
            if parts:
                sources.append(f"SELECT {columns} FROM {_read_parts(target, parts)}")
            con.execute(f"CREATE TABLE cleaned_{kind} AS " + " UNION ALL ".join(sources))
            rows = _count(con, f"cleaned_{kind}")
            if plan.todo or not incremental:
                quarantine.record(kind, plan.todo, quarantined, rebuild=not incremental)
                state = plan.state_after(options, fingerprints.result(plan.todo))
                self._commit(url, kind, target, parts, incremental, state.to_json())
                phase.done(f"commit: {kind}")
        finally:
            if directory is None:
                for part in parts:
                    (target / part.name).unlink(missing_ok=True)
        return _Cleaned(url, rows, records, quarantined)

    @staticmethod
    def _commit(
        url: str, kind: Kind, target: Path, parts: list[ParquetFile], append: bool, metadata: str
    ) -> None:
        """One commit: the new parts (appended, or replacing the table) and the kind's bookkeeping."""
        schema = CLEAN_ARROW_SCHEMA[kind]
        if local_table_dir(url) is not None:
            commit_parts(url, schema, parts, append, metadata)
            return
        import pyarrow.dataset as ds

        dataset = ds.dataset([str(target / p.name) for p in parts], schema=schema)
        write_table(url, dataset.scanner(batch_size=_BATCH_ROWS).to_reader().cast(schema), append, metadata)

    def _precedes_kept(
        self, con: Any, plan: KindPlan, store: Any, scratch: Path, options: BatchOptions
    ) -> bool:
        """Whether a new pin is the first record of its unique_id over the whole lake although the table
        holds a differing one (``differing_first_pins_sql``): then the table must be rebuilt."""
        if plan.kind != "pin" or options.keep_duplicates or not plan.out_of_order():
            return False
        history = _register_history(con, "pin", batch_table(self.settings, "pin"))
        with local_objects(store, plan.todo, scratch) as objects:
            self._load_raw(con, "pin", dict(enumerate(objects)), ordered=True)
        try:
            conflicts = _fetch_one(con, differing_first_pins_sql(history, "duckdb"))
        finally:
            _drop_stage(con, "pin")
        return bool(conflicts)

    @staticmethod
    def _copy_cleaned(con: Any, kind: Kind, cleaned: str, target: Path, number: int) -> list[ParquetFile]:
        """One Parquet part of the cleaned ``kind`` table, its columns typed as ``CLEAN_ARROW_SCHEMA``."""
        select = "SELECT " + ", ".join(
            f'CAST("{f.name}" AS {_DUCKDB_TYPES[f.type]}) AS "{f.name}"' for f in CLEAN_ARROW_SCHEMA[kind]
        )
        path = target / f"part-{number:05d}-{uuid.uuid4()}-c000.snappy.parquet"
        stats = con.execute(
            f"COPY ({select} FROM ({cleaned}) AS c) TO {_quote(str(path))}"
            " (FORMAT parquet, COMPRESSION snappy, RETURN_STATS)"
        ).fetchall()
        return [ParquetFile(Path(r[0]).name, int(r[2]), int(r[1])) for r in stats]

    def _write_outputs(self, outputs: dict[str, pa.Table]) -> dict[str, str]:
        tables: dict[str, str] = {}
        for name, table in outputs.items():
            tables[name] = batch_table(self.settings, name)
            replace_table(tables[name], table)
        return tables


class _PhaseLog:
    """Logs (DEBUG) each phase's wall and CPU seconds: what the benchmark prints with ``--phases``."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def done(self, name: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        _log.debug(
            "%-22s %6.2f s wall %6.2f s CPU, peak RSS so far %5.0f MiB",
            name,
            wall - self.wall,
            cpu - self.cpu,
            peak,
        )
        self.wall, self.cpu = wall, cpu


def _fetch_one(con: Any, sql: str) -> Any:
    """The single value ``sql`` returns; fetched whole, since DuckDB refuses a new query while a result
    is half-read."""
    return con.execute(sql).fetchall()[0][0]


def _count(con: Any, table: str) -> int:
    count: int = _fetch_one(con, f"SELECT count(*) FROM {table}")
    return count


def _drop_stage(con: Any, kind: Kind) -> None:
    con.execute(f"DROP VIEW raw_{kind}")
    con.execute(f"DROP TABLE stage_{kind}")


@dataclass(frozen=True)
class _Cleaned:
    """What cleaning one kind produced: its Delta table, rows written, records read and quarantined."""

    url: str
    rows: int
    records_read: int
    quarantined: list[QuarantinedRecord]


def _register_history(con: Any, kind: Kind, url: str) -> str:
    """The rows the table at ``url`` holds, as a source DuckDB reads columnar and pruned: its Parquet
    files (local tables) or delta-rs' Arrow dataset (remote ones)."""
    table = open_table(url)
    name = f"history_{kind}"
    directory = local_table_dir(url)
    files = table.file_uris()
    if directory is not None and files:
        return "read_parquet([" + ", ".join(_quote(f) for f in files) + "])"
    con.register(name, table.to_pyarrow_dataset() if files else CLEAN_ARROW_SCHEMA[kind].empty_table())
    return name


def _read_parts(directory: Path, parts: list[ParquetFile]) -> str:
    return "read_parquet([" + ", ".join(_quote(duckdb_path(directory / p.name)) for p in parts) + "])"


_UNITS = {"bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


def _chunk_bytes(con: Any) -> int | None:
    """Raw bytes of lake objects to stage and clean at once: the memory limit / :data:`_STAGE_MEMORY`.

    None (no chunking) if DuckDB prints its limit in a form not understood here (it prints e.g. '411.9 MiB').
    """
    text = _fetch_one(con, "SELECT current_setting('memory_limit')")
    number, _, unit = str(text).partition(" ")
    try:
        return int(float(number) * _UNITS[unit] / _STAGE_MEMORY)
    except (ValueError, KeyError):
        return None


def _chunks(sizes: list[int], budget: int | None) -> list[list[int]]:
    """Object indexes in runs of consecutive objects of about equal bytes, as few runs as keep each within
    ``budget`` (a single object may exceed it); one run if ``budget`` is None, ``[[]]`` without objects."""
    if not sizes:
        return [[]]
    total = sum(sizes) or 1
    count = max(1, -(-total // budget)) if budget else 1
    runs: dict[int, list[int]] = {}
    before = 0
    for i, size in enumerate(sizes):  # an object goes to the run its middle byte falls in
        runs.setdefault(min(count - 1, (2 * before + size) * count // (2 * total)), []).append(i)
        before += size
    return list(runs.values())
