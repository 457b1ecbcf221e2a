"""The DuckDB engine's run: plan (``engines.increments``), then per kind stage, clean and commit the new
lake objects in chunks, then the ten outputs (see the package docstring for the modules of each step)."""

from __future__ import annotations

import contextvars
import logging
import os
import resource
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pinpipe.config import Settings
from pinpipe.delta import ParquetFile, local_table_dir
from pinpipe.engines.base import BatchResult, PyArrowTables, QuarantinedRecord
from pinpipe.engines.duckdb.chunks import MAX_MEMORY, chunk_bytes, chunks, memory_limit
from pinpipe.engines.duckdb.commits import Commits
from pinpipe.engines.duckdb.outputs import (
    ADDED,
    AGGREGATES,
    KEPT,
    PARTIAL,
    Kept,
    add_aggregates,
    aggregates_query,
    all_aggregates,
    kept_aggregates,
    load_kept_aggregates,
    output_query,
    write_aggregates,
    write_output,
)
from pinpipe.engines.duckdb.parts import commit, copy_cleaned, no_rows, read_parts, register_history
from pinpipe.engines.duckdb.pin_keys import (
    PIN_KEYS,
    kept_keys,
    keys_table,
    may_repeat,
    raw_may_repeat,
    write_keys,
)
from pinpipe.engines.duckdb.sql import arrows, count, fetch_one, quote
from pinpipe.engines.duckdb.staging import drop_stage, load_raw
from pinpipe.engines.increments import (
    PRECEDES_KEPT,
    Fingerprinter,
    KindPlan,
    KindState,
    QuarantineBook,
    plan_run,
    plan_summary,
    rebuild_plan,
)
from pinpipe.engines.lake_input import LakeObject, local_objects
from pinpipe.errors import EngineError
from pinpipe.lake.store import FileStore, open_store
from pinpipe.locations import duckdb_path
from pinpipe.schema import KINDS, Kind
from pinpipe.tables import batch_table
from pinpipe.transform.clean import (
    CLEAN_COLUMNS,
    CLEAN_TYPES,
    arrival_order_matters_sql,
    cleaned_sql,
    differing_first_pins_sql,
    kept_rows_sql,
    needs_arrival_order,
)
from pinpipe.transform.dialect import render
from pinpipe.transform.queries import COLUMNS_READ, OUTPUTS, BatchOptions

_log = logging.getLogger(__name__)

BESIDE_PIN: tuple[Kind, ...] = ("geo", "user")
"""The kinds a small run cleans on a second cursor while pin, the costliest, is cleaned."""
SMALL_RUN = 64 << 20
"""Bytes of new objects up to which a run cleans the kinds side by side (``DuckDBEngine._small``)."""
ONE_THREAD_RUN = 16 << 20
"""Bytes of new objects up to which a run that cleans the kinds side by side gives DuckDB one thread: its
statements take a few ms each, too short for a second thread to pay for its hand-offs (10,000 new posts
on a 1M-post history, on a busy host: 8% less CPU and wall), and the cursors working at once (pin beside
geo and user, two outputs at a time) keep both cores busy."""


class DuckDBEngine:
    """The embedded batch engine (``--engine duckdb``)."""

    name = "duckdb"
    commits_in_process = True

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
        """DuckDB ``memory_limit``; None: sized from the lake (``chunks.memory_limit``)."""
        self.threads = threads
        self.on_disk = settings.engine.duckdb_on_disk
        """Keep the scratch data in a database file instead of memory (spilling happens either way)."""

    # -- connections -------------------------------------------------------------------------------------
    def _connect(self, database: str = ":memory:") -> Any:
        import duckdb

        scratch = self.settings.workdir.resolve() / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)  # also holds the on-disk scratch database
        con = duckdb.connect(database)
        con.execute(f"SET memory_limit = {quote(self.memory_limit or f'{MAX_MEMORY}B')}")
        con.execute(f"SET temp_directory = {quote(str(scratch / 'duckdb-spill'))}")
        # Row order only matters while staging raw records (``staging.load_raw``); elsewhere it costs.
        con.execute("SET preserve_insertion_order = false")
        if self.threads:
            con.execute(f"SET threads TO {int(self.threads)}")
        return con

    # -- Engine protocol ---------------------------------------------------------------------------------
    def run_batch(self, options: BatchOptions, full_refresh: bool = False) -> BatchResult:
        """Clean the lake objects the cleaned tables do not hold yet (all with ``full_refresh``), append
        them (``engines.increments``), and update the outputs' aggregates with the rows appended
        (``outputs``) to compute the ten outputs."""
        started = time.perf_counter()
        settings = self.settings
        scratch = settings.workdir.resolve() / "tmp"
        database = scratch / f"batch-{os.getpid()}.duckdb"
        store = open_store(settings.lake_url)
        for leftover in (database, database.with_suffix(".duckdb.wal")):
            leftover.unlink(missing_ok=True)
        commits = Commits()
        import duckdb  # imported here, as it holds the GIL; connecting (~20 ms) does not:

        # DuckDB starts in the background while the Delta logs are read here
        connecting = commits.call(self._connect, str(database) if self.on_disk else ":memory:")
        con = None
        fingerprints = Fingerprinter()
        try:
            try:
                quarantine, plans = plan_run(store, settings, options, full_refresh)
            finally:
                con = connecting.result()
            if self.memory_limit is None and isinstance(store, FileStore):
                con.execute(f"SET memory_limit = '{memory_limit(_todo_bytes(plans))}B'")
            phase = _PhaseLog()
            quarantined: list[QuarantinedRecord] = []
            read: dict[Kind, int] = {}
            objects_read: dict[Kind, int] = {}
            cleaned_rows: dict[Kind, int] = {}
            tables: dict[str, str] = {}
            done: dict[Kind, _Cleaned] = {}

            def clean(
                con: Any, kind: Kind, phase: _PhaseLog, ahead: Future[bool | None] | None = None
            ) -> _Cleaned:
                plan = plans[kind]
                if not plan.rebuild and plan.todo and self._precedes_kept(con, plan, store, scratch, options):
                    plan = plans[kind] = rebuild_plan(plan, PRECEDES_KEPT)
                objects_read[kind] = len(plan.todo)
                with local_objects(store, plan.todo, scratch) as objects:
                    for obj in objects:
                        fingerprints.add(obj.key, obj.path, plan.info.get(obj.key))
                    return self._clean_kind(
                        con, plan, objects, options, scratch, phase, fingerprints, quarantine, commits, ahead
                    )

            beside = BESIDE_PIN if self._small(store, plans) else ()
            pin = plans["pin"]
            pin_ahead: Future[bool | None] | None = None  # whether a new pin may repeat a kept one
            if beside and pin.rebuild is None and pin.todo and not options.keep_duplicates:
                pin_ahead = Future()
            if beside and self.threads is None and _todo_bytes(plans) <= ONE_THREAD_RUN:
                con.execute("SET threads TO 1")
            preloaded: Kept | Literal[False] | None = None  # the kept aggregates read ahead (None: not tried)
            with ThreadPoolExecutor(1, thread_name_prefix="pinpipe-kinds") as pool:
                side = None
                if beside:  # on a cursor of their own, while pin is cleaned on this connection

                    def beside_pin(cursor: Any) -> dict[Kind, _Cleaned]:
                        nonlocal preloaded
                        if pin_ahead is not None:  # first: pin's look-up, while pin is staged
                            try:
                                pin_ahead.set_result(self._pin_repeats_ahead(cursor, pin, store, scratch))
                            finally:
                                if not pin_ahead.done():
                                    pin_ahead.set_result(None)
                        cleaned = {kind: clean(cursor, kind, _PhaseLog()) for kind in beside}
                        # then, while pin is still cleaned, the aggregates its outputs start from
                        url = batch_table(settings, AGGREGATES)
                        preloaded = load_kept_aggregates(cursor, url, plans) or False
                        return cleaned

                    cursor = con.cursor()
                    side = pool.submit(contextvars.copy_context().run, beside_pin, cursor)
                for kind in KINDS:  # one kind at a time, in chunks: only a chunk's raw rows in memory
                    if kind not in beside:
                        done[kind] = clean(con, kind, phase, pin_ahead if kind == "pin" else None)
                if side is not None:
                    done.update(side.result())
                    cursor.close()
            for kind in KINDS:
                cleaned = done[kind]
                quarantined.extend(cleaned.quarantined)
                read[kind] = cleaned.records_read
                tables[kind], cleaned_rows[kind] = cleaned.url, cleaned.rows
                if cleaned.keys_written:
                    tables[PIN_KEYS] = batch_table(settings, PIN_KEYS)
            outputs, incremental = self._outputs(con, plans, done, options, phase, commits, preloaded)
            tables.update({name: batch_table(settings, name) for name in outputs})
            tables["quarantine"] = quarantine.url
            tables[AGGREGATES] = batch_table(settings, AGGREGATES)
            commits.wait()
            phase.done("write outputs")
        except Exception as exc:
            import duckdb

            if isinstance(exc, duckdb.Error):
                raise EngineError(f"DuckDB failed: {exc}") from exc
            raise
        finally:
            commits.close()
            fingerprints.close()
            if con is not None:
                con.close()
            for leftover in (database, database.with_suffix(".duckdb.wal")):
                leftover.unlink(missing_ok=True)
        return BatchResult(
            engine=self.name,
            options=options,
            outputs=PyArrowTables(outputs),
            records_read=read,
            cleaned_rows=cleaned_rows,
            quarantined=quarantined,
            seconds=time.perf_counter() - started,
            tables=tables,
            objects_read=objects_read,
            outputs_incremental=incremental,
            **plan_summary(plans),
        )

    def _small(self, store: Any, plans: dict[Kind, KindPlan]) -> bool:
        """Whether the other kinds are cleaned beside pin (:data:`BESIDE_PIN`): a run that appends at most
        :data:`SMALL_RUN` bytes of local objects to local tables. Its queries are too small to keep both
        cores busy; a bigger run cleans one kind at a time, each with every core and the whole memory."""
        if not isinstance(store, FileStore) or local_table_dir(self.settings.tables_url) is None:
            return False
        if any(plan.rebuild for plan in plans.values()):
            return False
        return _todo_bytes(plans) <= SMALL_RUN

    # -- steps -------------------------------------------------------------------------------------------
    def _outputs(
        self,
        con: Any,
        plans: dict[Kind, KindPlan],
        done: dict[Kind, _Cleaned],
        options: BatchOptions,
        phase: _PhaseLog,
        commits: Commits,
        preloaded: Kept | Literal[False] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """The ten outputs from the aggregates: the kept ones with those of the rows this run appended
        (``new_<kind>``; True), or all computed again from the whole cleaned tables (False). Their
        commits are queued on ``commits``, each as soon as its data is ready. ``preloaded``: the kept
        aggregates read ahead into ``KEPT``, found unusable (False), not tried (None)."""
        url = batch_table(self.settings, AGGREGATES)
        kept: Kept | None
        if preloaded is None:
            kept = kept_aggregates(con, url, plans)
        elif preloaded and all(plan.rebuild is None for plan in plans.values()):
            kept = preloaded
        else:  # not usable, or pin was rebuilt after they were read (a new pin precedes a kept one)
            if preloaded:
                con.execute(f"DROP TABLE {KEPT}")
            kept = None
        append = False  # the added rows' aggregates appended to the kept ones (``outputs.Kept.append``)
        if kept is not None:
            old = {kind: c.history for kind, c in done.items() if c.history is not None}
            added = add_aggregates(con, kept.source, {kind: f"new_{kind}" for kind in KINDS}, old)
            append = kept.append(added)
        else:
            for kind, cleaned in done.items():
                sources = [f"SELECT * FROM new_{kind}"]
                if cleaned.history is not None:
                    columns = ", ".join(f'"{c}"' for c in COLUMNS_READ[kind])
                    sources.insert(0, f"SELECT {columns} FROM {cleaned.history}")
                con.execute(f"CREATE TABLE cleaned_{kind} AS " + " UNION ALL ".join(sources))
                con.execute(f"DROP TABLE new_{kind}")
            all_aggregates(con)
        phase.done("aggregates" + (" (added rows)" if kept is not None else " (all rows)"))
        state = "aggregates" if kept is None else PARTIAL
        queries: dict[str, str] = {}
        if kept is None or any(plan.todo for plan in plans.values()):  # the tables' bookkeeping moved
            # first: the costliest query and the largest write, made while the outputs are computed
            queries[AGGREGATES] = (
                aggregates_query(ADDED) if append else aggregates_query(state, kept is not None)
            )
        queries.update({name: output_query(name, options, state) for name in OUTPUTS})
        outputs = {}
        commits.wait()  # no output is replaced before the rows it comes from are committed
        for name, table in arrows(con, queries):  # each committed as soon as it is computed
            if name == AGGREGATES:
                states = {kind: c.state for kind, c in done.items()}
                commits.submit(write_aggregates, url, table, states, kept if append else None, ordered=False)
            else:
                outputs[name] = table
                commits.submit(write_output, self.settings, name, table, ordered=False)
        phase.done("ten outputs")
        return {name: outputs[name] for name in OUTPUTS}, kept is not None

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
        commits: Commits,
        repeats_ahead: Future[bool | None] | None = None,
    ) -> _Cleaned:
        """Stage, clean and write the objects of ``plan`` chunk by chunk (``chunks.chunks``, oldest first);
        appended to the kind's table (incremental) or replacing it (``plan.rebuild``), with the kind's
        bookkeeping in the same commit (``engines.increments``); the commits are queued on ``commits``.

        Each chunk's cleaned rows become one Parquet part of the Delta table, written by DuckDB itself
        (``COPY``: parallel, streaming, within ``memory_limit``); the rows a chunk must not repeat are read
        back from the parts before it and, when incremental, from the table (``cleaned_sql``'s
        ``kept_before``: of the table only the rows that can match, see ``kept_rows_sql``; for pin no kept
        unique_id at all when their keys, ``pin_keys``, show no staged one repeats them; ``repeats_ahead``:
        that answer for the raw objects, :meth:`_pin_repeats_ahead`, trusted when False and no staged
        row comes from the record-by-record reader, whose values the bulk reader may not share). delta-rs
        then commits the parts (local tables) or uploads them (remote ones). The columns the outputs need
        are read back into ``new_<kind>``, so the wide cleaned rows are never held in memory.

        Rows are staged in any order within an object (about a fifth faster to read): pin is restaged in
        arrival order only when a chunk holds differing records with one unique_id in one object
        (``arrival_order_matters_sql``), since only then does its first record depend on that order.
        """
        kind = plan.kind
        url = batch_table(self.settings, kind)
        incremental = plan.rebuild is None
        history = register_history(con, kind, url) if incremental else None
        keyed = kind == "pin" and not options.keep_duplicates  # pins deduplicated by unique_id: keys kept
        keys_url = batch_table(self.settings, PIN_KEYS)
        keys = kept_keys(con, keys_url, plan.before) if keyed and history is not None else None
        directory = local_table_dir(url)
        target = directory if directory is not None else scratch / f"cleaned-{os.getpid()}"
        target.mkdir(parents=True, exist_ok=True)
        budget = self.chunk_bytes or chunk_bytes(con)
        runs = chunks([o.path.stat().st_size for o in objects], budget) if objects or not incremental else []
        ordered = needs_arrival_order(kind, options.keep_duplicates)
        parts: list[ParquetFile] = []
        quarantined: list[QuarantinedRecord] = []
        records = 0
        cols = ", ".join(f'"{c}"' for c in CLEAN_COLUMNS[kind])
        try:
            for number, chunk in enumerate(runs, start=1):
                label = kind if len(runs) == 1 else f"{kind} {number}/{len(runs)}"
                chunk_objects = {i: objects[i] for i in chunk}
                bad = load_raw(con, kind, chunk_objects, ordered=False)
                if ordered and fetch_one(con, arrival_order_matters_sql(f"stage_{kind}", "_file")):
                    drop_stage(con, kind)
                    bad = load_raw(con, kind, chunk_objects, ordered=True)
                quarantined.extend(bad)
                # _line is set only on rows of the record-by-record reader (see repeats_ahead below)
                counted = con.execute(f"SELECT count(*), count(_line) FROM stage_{kind}").fetchall()
                staged, scanned = counted[0]
                records += staged + len(bad)
                phase.done(f"read lake: {label}")
                sources = []
                if history is not None:
                    ahead = None if scanned or repeats_ahead is None else repeats_ahead.result()
                    repeats = keys is None or (ahead is not False and may_repeat(con, keys, f"stage_{kind}"))
                    sources.append(kept_rows_sql(kind, history, f"stage_{kind}", repeats))
                if parts:
                    sources.append(f"SELECT {cols} FROM {read_parts(target, parts)}")
                kept = f"kept_{kind}" if sources and not options.keep_duplicates else None
                if kept:
                    con.execute(f"CREATE OR REPLACE VIEW {kept} AS " + " UNION ALL ".join(sources))
                sql = render(cleaned_sql(kind, options.keep_duplicates, kept), "duckdb")
                parts.extend(copy_cleaned(con, kind, sql, target, number))
                con.execute(f"DROP VIEW IF EXISTS kept_{kind}")
                drop_stage(con, kind)
                phase.done(f"clean + write: {label}")
            columns = ", ".join(f'"{c}"' for c in COLUMNS_READ[kind])
            appended = read_parts(target, parts) if parts else no_rows(CLEAN_TYPES[kind])
            con.execute(f"CREATE TABLE new_{kind} AS SELECT {columns} FROM {appended}")
            rows = sum(p.rows for p in parts) + (0 if history is None else count(con, history))
            state = plan.before
            if plan.todo or not incremental:
                commits.submit(quarantine.record, kind, plan.todo, quarantined, not incremental)
                state = plan.state_after(options, fingerprints.result(plan.todo))
                commits.submit(commit, url, kind, target, list(parts), incremental, state.to_json())
                if keyed:  # after the rows: keys describing rows not committed would be trusted
                    added = [read_parts(target, parts)] if parts else []
                    whole = added if history is None else [history, *added]
                    data = keys_table(con, whole if keys is None else added)
                    commits.submit(write_keys, keys_url, data, keys is not None, state)
                if directory is None:  # the parts are uploaded from files deleted below
                    commits.wait()
                phase.done(f"commit: {kind}")
        finally:
            if directory is None:
                for part in parts:
                    (target / part.name).unlink(missing_ok=True)
        assert state is not None  # an incremental plan has the bookkeeping it continues
        keys_written = keyed and bool(plan.todo or not incremental)
        return _Cleaned(url, rows, records, quarantined, history, state, keys_written)

    def _pin_repeats_ahead(self, con: Any, plan: KindPlan, store: Any, scratch: Path) -> bool | None:
        """Whether a new pin of ``plan`` may repeat a kept unique_id (``pin_keys.raw_may_repeat``), read from
        the raw objects by another cursor while this one stages them: the look-up reads every kept key
        (~15 ms for 1M pins) and was the staged pins' wait. None: not known that way."""
        keys = kept_keys(con, batch_table(self.settings, PIN_KEYS), plan.before)
        if keys is None:
            return None
        with local_objects(store, plan.todo, scratch) as objects:
            if any(obj.is_parquet for obj in objects):
                return None
            return raw_may_repeat(con, keys, [duckdb_path(obj.path) for obj in objects])

    def _precedes_kept(
        self, con: Any, plan: KindPlan, store: Any, scratch: Path, options: BatchOptions
    ) -> bool:
        """Whether a new pin is the first record of its unique_id over the whole lake although the table
        holds a differing one (``differing_first_pins_sql``): then the table must be rebuilt."""
        if plan.kind != "pin" or options.keep_duplicates or not plan.out_of_order():
            return False
        history = register_history(con, "pin", batch_table(self.settings, "pin"))
        with local_objects(store, plan.todo, scratch) as objects:
            load_raw(con, "pin", dict(enumerate(objects)), ordered=True)
        try:
            conflicts = fetch_one(con, differing_first_pins_sql(history, "duckdb"))
        finally:
            drop_stage(con, "pin")
        return bool(conflicts)


def _todo_bytes(plans: dict[Kind, KindPlan]) -> int:
    """Bytes of the objects the run cleans."""
    return sum(p.info[k][0] for p in plans.values() for k in p.todo)


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


@dataclass(frozen=True)
class _Cleaned:
    """What cleaning one kind produced: its Delta table, its rows, records read and quarantined."""

    url: str
    rows: int
    records_read: int
    quarantined: list[QuarantinedRecord]
    history: str | None
    """The rows the table held before (a source DuckDB reads), None when it was rebuilt; the rows the
    run added are in table ``new_<kind>`` (the columns the outputs read)."""
    state: KindState
    """The table's bookkeeping after the run."""
    keys_written: bool = False
    """The run wrote the pin keys table (``pin_keys``)."""
