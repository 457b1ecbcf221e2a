"""Spark engine: reads the lake, runs the ``transform`` SQL in Spark SQL, writes Delta with delta-spark.

The same statements as the DuckDB engine (``transform.clean.cleaned_sql``, ``transform.queries.output_sql``),
rendered for Spark by ``transform.dialect.render``; nothing here is a cleaning rule or a query. Lake
reading and quarantine: :mod:`pinpipe.engines.spark_lake`. The session: :mod:`pinpipe.engines.spark_session`
(``local[*]`` by default, ``engine.spark_master`` / ``--master`` for a cluster, the cluster's own session
under spark-submit or on Databricks).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from pinpipe.config import Settings
from pinpipe.delta import open_table, replace_table
from pinpipe.engines.base import BatchResult
from pinpipe.engines.increments import (
    PRECEDES_KEPT,
    Fingerprinter,
    KindPlan,
    QuarantineBook,
    plan_run,
    plan_summary,
    rebuild_plan,
    user_metadata,
)
from pinpipe.engines.spark_lake import RawKind, read_kind
from pinpipe.engines.spark_session import spark_session
from pinpipe.errors import EngineError
from pinpipe.lake.store import FileStore, ObjectStore, open_store
from pinpipe.locations import hadoop_uri
from pinpipe.schema import KINDS, Kind
from pinpipe.tables import batch_table
from pinpipe.transform.clean import (
    clean_arrow_schema,
    cleaned_sql,
    differing_first_pins_sql,
    kept_rows_sql,
)
from pinpipe.transform.dialect import render
from pinpipe.transform.export import sort_output
from pinpipe.transform.queries import COLUMNS_READ, JOINS, OUTPUTS, BatchOptions, join_sql, output_sql

WORKERS = max(1, min(4, os.cpu_count() or 1))
"""Spark jobs submitted at once (threads): the three cleaned tables, the ten output queries and their
Delta writes. Small jobs are mostly driver work (planning, code generation, Delta commits), which
overlaps up to the cores there are."""

RUN_CONF = {
    "spark.sql.inMemoryColumnarStorage.compressed": "false",
    "spark.databricks.delta.properties.defaults.dataSkippingNumIndexedCols": "0",
}
"""Session settings while a batch runs (the session's values are put back after). Its caches (the parsed
lake lines, the two joins) live for seconds, and building them uncompressed took ~25 % less time (1.15 s
against 1.55 s for 100,000 parsed pins, warm). The cleaned tables it creates carry row counts but no
per-column statistics, as the DuckDB engine's commits of local tables do: delta-spark's statistics took
a third of the pin table's write (4.5-4.8 against 3.1 task s at 100,000 posts)."""


@contextmanager
def step(spark: Any, label: str) -> Iterator[None]:
    """Spark jobs this thread starts meanwhile carry ``label`` as their description: the event log (and
    the UI) then say which step of the batch job each stage served."""
    context = spark.sparkContext
    context.setJobDescription(label)
    try:
        yield
    finally:
        context.setJobDescription(None)


def spark_schema(schema: pa.Schema) -> str:
    """A Spark DDL schema for an Arrow schema of ours (timestamps naive: TIMESTAMP_NTZ)."""
    names = {
        pa.int64(): "bigint",
        pa.int32(): "int",
        pa.float64(): "double",
        pa.string(): "string",
        pa.timestamp("us"): "timestamp_ntz",
        pa.list_(pa.float64()): "array<double>",
    }
    return ", ".join(f"`{f.name}` {names[f.type]}" for f in schema)


def table_rows(url: str) -> int:
    """Rows of the Delta table at ``url``, from its log's per-file statistics (no Spark job)."""
    counts = pa.table(open_table(url).get_add_actions()).column("num_records").to_pylist()
    if None in counts:
        raise EngineError(f"the Delta table {url} has files without row counts")
    return sum(counts)


def table_files(url: str) -> list[str]:
    """The data files of the Delta table at ``url`` just written (no deletion vectors, no column mapping),
    as Spark reads them."""
    return [hadoop_uri(uri) for uri in open_table(url).file_uris()]


def _nullable(table: pa.Table) -> pa.Table:
    """Spark marks count(*) NOT NULL; DuckDB and delta-rs do not: the same outputs, the same schema."""
    return table.cast(pa.schema([f.with_nullable(True) for f in table.schema]))


class SparkEngine:
    """The scale-out batch engine (``--engine spark``)."""

    name = "spark"
    commits_in_process = False

    def __init__(self, settings: Settings, conf: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.conf = conf
        self._spark: Any = None

    @property
    def spark(self) -> Any:
        if self._spark is None:
            self._spark = spark_session(self.settings, self.conf)
        return self._spark

    # -- Engine protocol ---------------------------------------------------------------------------------
    def run_batch(self, options: BatchOptions, full_refresh: bool = False) -> BatchResult:
        """Clean the lake objects the cleaned tables do not hold yet (all with ``full_refresh``), append
        them, and recompute the ten outputs from the cleaned tables. The bookkeeping is the DuckDB
        engine's (``engines.increments``): either engine continues the tables the other built."""
        started = time.perf_counter()
        settings = self.settings
        spark = self.spark
        store = open_store(settings.lake_url)
        quarantine, plans = plan_run(store, settings, options, full_refresh)
        tables: dict[str, str] = {kind: batch_table(settings, kind) for kind in KINDS}
        fingerprints = Fingerprinter()
        books = threading.Lock()  # one writer of the quarantine table at a time

        def stage(kind: Kind) -> RawKind | None:
            plans[kind], raw = self._stage(
                plans[kind], options, store, tables[kind], fingerprints, quarantine, books
            )
            return raw

        before = {key: spark.conf.get(key, None) for key in RUN_CONF}
        for key, value in RUN_CONF.items():
            spark.conf.set(key, value)
        try:
            with ThreadPoolExecutor(len(KINDS)) as pool:  # all three: the small user kind fills the gaps
                raws = dict(zip(KINDS, pool.map(stage, KINDS), strict=True))
            cleaned_rows = {kind: table_rows(tables[kind]) for kind in KINDS}
            self._register_cleaned(tables)
            outputs = self._outputs(options, joins_built=True)
            tables.update({name: batch_table(settings, name) for name in outputs})
            with ThreadPoolExecutor(WORKERS) as pool:  # delta-rs: no Spark job, the GIL released
                list(pool.map(lambda n: replace_table(tables[n], outputs[n]), outputs))
            tables["quarantine"] = quarantine.url
        except Exception as exc:
            if type(exc).__module__.startswith(("pyspark", "py4j")):
                raise EngineError(f"Spark failed: {str(exc).splitlines()[0]}") from exc
            raise
        finally:
            fingerprints.close()
            spark.catalog.clearCache()
            for key, value in before.items():
                if value is None:
                    spark.conf.unset(key)
                else:
                    spark.conf.set(key, value)
        read = {kind: raw.records_read if raw else 0 for kind, raw in raws.items()}
        return BatchResult(
            engine=self.name,
            options=options,
            outputs=outputs,
            records_read=read,
            cleaned_rows=cleaned_rows,
            quarantined=[record for raw in raws.values() if raw for record in raw.quarantined],
            seconds=time.perf_counter() - started,
            tables=tables,
            objects_read={kind: raw.objects_read if raw else 0 for kind, raw in raws.items()},
            **plan_summary(plans),
        )

    # -- steps -------------------------------------------------------------------------------------------
    def _stage(
        self,
        plan: KindPlan,
        options: BatchOptions,
        store: ObjectStore,
        url: str,
        fingerprints: Fingerprinter,
        quarantine: QuarantineBook,
        books: threading.Lock,
    ) -> tuple[KindPlan, RawKind | None]:
        """Read a kind's new lake objects (cached once), record their bad records, then commit the cleaned
        rows with the kind's bookkeeping; the cache is freed after. None: nothing new to clean."""
        plan, raw = self._read_new(plan, options, store)
        if raw is None:
            return plan, None
        try:
            for key in plan.todo:
                path = store.root / key if isinstance(store, FileStore) else None
                fingerprints.add(key, path, plan.info.get(key))
            with books:  # the kind's bad records are recorded before its rows are committed
                quarantine.record(plan.kind, plan.todo, raw.quarantined, plan.rebuild is not None)
            state = plan.state_after(options, fingerprints.result(plan.todo))
            with step(self.spark, f"clean {plan.kind}"):
                self._commit(self._new_rows(plan, options), url, plan.rebuild is None, state.to_json())
        finally:
            if raw.typed is not None:
                raw.typed.unpersist()
        return plan, raw

    # -- incremental runs ----------------------------------------------------------------------------------
    def _read_new(
        self, plan: KindPlan, options: BatchOptions, store: ObjectStore
    ) -> tuple[KindPlan, RawKind | None]:
        """The plan's objects as ``raw_<kind>`` (None: an incremental run with nothing new), and the plan,
        turned into a rebuild when a new pin precedes a differing kept one."""
        if plan.rebuild is None and not plan.todo:
            return plan, None
        raw = self._read(plan, store)
        if self._precedes_kept(plan, options):
            if raw.typed is not None:
                raw.typed.unpersist()
            plan = rebuild_plan(plan, PRECEDES_KEPT)
            raw = self._read(plan, store)
        return plan, raw

    def _read(self, plan: KindPlan, store: ObjectStore) -> RawKind:
        """The plan's objects to clean as ``raw_<kind>``."""
        settings, spark, kind = self.settings, self.spark, plan.kind
        scratch = settings.workdir.resolve() / "tmp"
        with step(spark, f"read {kind}"):
            return read_kind(spark, store, settings.lake_url, settings.prefix, kind, scratch, plan.todo)

    def _precedes_kept(self, plan: KindPlan, options: BatchOptions) -> bool:
        """Whether a new pin is the first record of its unique_id over the whole lake although the table
        holds a differing one (``differing_first_pins_sql``): then the table must be rebuilt."""
        if plan.kind != "pin" or options.keep_duplicates or not plan.out_of_order():
            return False
        self._history("pin").createOrReplaceTempView("kept_pin")
        return bool(self.spark.sql(differing_first_pins_sql("kept_pin", "spark")).collect()[0][0])

    def _history(self, kind: Kind) -> Any:
        """The kind's cleaned table as it is now."""
        return self.spark.read.format("delta").load(hadoop_uri(batch_table(self.settings, kind)))

    def _new_rows(self, plan: KindPlan, options: BatchOptions) -> Any:
        """The cleaned rows of ``raw_<kind>``: when appending, less those the table holds already (of the
        table only the rows that can match are read: ``kept_rows_sql``)."""
        kind, kept = plan.kind, None
        if plan.rebuild is None and not options.keep_duplicates:
            kept = f"kept_{kind}"
            self._history(kind).createOrReplaceTempView(f"history_{kind}")
            self.spark.sql(kept_rows_sql(kind, f"history_{kind}", f"raw_{kind}")).createOrReplaceTempView(
                kept
            )
        return self._cleaned(kind, options, kept)

    @staticmethod
    def _commit(frame: Any, url: str, append: bool, metadata: str) -> None:
        """One commit: ``frame`` appended to the table at ``url`` (or replacing it), with the kind's
        bookkeeping ``metadata`` in the commit."""
        writer = frame.write.format("delta").option("userMetadata", user_metadata(metadata))
        if append:
            writer.mode("append").save(hadoop_uri(url))
        else:
            writer.mode("overwrite").option("overwriteSchema", "true").save(hadoop_uri(url))

    def _register_cleaned(self, tables: Mapping[str, str]) -> None:
        """Views ``cleaned_<kind>`` (the columns the outputs read, from the written tables) and the two joins
        ``pin_geo``/``pin_user``, cached: the ten outputs then scan two small in-memory tables, not the Delta
        tables and a join each."""
        spark = self.spark
        for kind in KINDS:  # the files the log lists, read as Parquet: no Delta snapshot jobs
            files = table_files(tables[kind])
            schema = clean_arrow_schema(kind)
            frame = (  # the schema given: no job reading a footer to infer it
                spark.read.schema(spark_schema(schema)).parquet(*files)
                if files
                else spark.createDataFrame(schema.empty_table(), schema=spark_schema(schema))
            )
            frame.select(*COLUMNS_READ[kind]).createOrReplaceTempView(f"cleaned_{kind}")
        joins = {name: spark.sql(join_sql(name, "spark")).cache() for name in JOINS}
        for name, frame in joins.items():
            frame.createOrReplaceTempView(name)

        def build(name: str) -> None:
            with step(spark, f"join {name}"):
                joins[name].count()

        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(build, joins))

    def _cleaned(self, kind: Kind, options: BatchOptions, kept: str | None = None) -> Any:
        return self.spark.sql(render(cleaned_sql(kind, options.keep_duplicates, kept), "spark"))

    def _outputs(self, options: BatchOptions, joins_built: bool = False) -> dict[str, pa.Table]:
        def run(name: str) -> pa.Table:
            with step(self.spark, f"query {name}"):
                table = self.spark.sql(output_sql(name, options, "spark", joins_built)).toArrow()
            return sort_output(name, _nullable(table))

        with ThreadPoolExecutor(WORKERS) as pool:
            return dict(zip(OUTPUTS, pool.map(run, OUTPUTS), strict=True))
