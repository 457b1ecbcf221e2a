"""The stream processor on Spark Structured Streaming: Kafka streams -> cleaned Delta tables, exactly once.

One streaming query subscribes to the three Kafka topics named like the streams
(``streaming-<prefix>-pin|geo|user``), from the earliest offsets, with its checkpoint under the workdir
(``<workdir>/spark-checkpoints/stream-<prefix>``). Each micro-batch (``foreachBatch``):

1. parses and type-checks every record as the Spark batch engine reads the lake
   (:func:`pinpipe.engines.spark_lake.typed_select`); records that are not plainly valid are decided by
   the embedded processor's own decoder (:func:`pinpipe.streaming.decode.decode`: dead letter, or cleaned
   by the same definition), so both processors keep and reject the same records;
2. cleans the rest with the shared row rules (``transform.clean.CLEAN_SQL``, rendered for Spark);
3. appends to ``<prefix>_pin_table|_geo_table|_user_table`` and the dead-letter table with Delta's
   idempotent writes (``txnAppId`` = query + table, ``txnVersion`` = batch id): a micro-batch replayed
   after a crash (the checkpoint had not recorded it) is skipped by the tables that already hold it.
   The other side of that skip: a checkpoint lost (or replaced by an older one) while the tables are
   kept would restart at batch ids the tables already hold, and Delta would silently skip *new*
   records, so the job refuses to start when a table holds a batch id its checkpoint never planned
   (:func:`refuse_lost_checkpoint`);
4. collects the micro-batch's narrow metric columns (partition, offset, arrival and the few cleaned
   columns the metrics read: at most ``maxOffsetsPerTrigger`` rows) to the driver and hands them to the
   embedded processor's :class:`~pinpipe.streaming.keeper.MetricsKeeper`: the same metrics state
   (pairing, per-partition watermarks, windows), saved in the state table with the Kafka offsets it
   covers, so a replayed micro-batch is not counted twice, and the same seven metric tables.

Between micro-batches the driver lets the keeper decide pins whose geo event cannot come any more
(``until_idle``: after the ``availableNow`` trigger ends, until none waits; otherwise every
``stream.max_wait_s`` while idle), and refreshes ``lag``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pinpipe import delta, tables
from pinpipe.config import Settings
from pinpipe.engines.spark_lake import typed_select
from pinpipe.engines.spark_session import spark_session
from pinpipe.errors import ConfigError, StreamError
from pinpipe.locations import hadoop_uri
from pinpipe.log import Log, Record, open_settings_log
from pinpipe.schema import FIELDS, KINDS, Kind
from pinpipe.stage import Stage
from pinpipe.streaming.decode import Decoded, dead_letter_table, decode
from pinpipe.streaming.keeper import METRIC_COLUMNS, MetricsKeeper, next_offsets, open_streams
from pinpipe.streaming.lock import ProcessorLock
from pinpipe.streaming.processor import TIDY_EVERY, WRITERS, StreamSummary
from pinpipe.transform.clean import CLEAN_COLUMNS, CLEAN_SQL
from pinpipe.transform.dialect import render

SHIFT = 1 << 40
"""``_seq`` of a stream record: partition * 2^40 + offset (the raw views' arrival order)."""
IDLE_CHECK_S = 0.5
"""How often the driver checks for a stop request and, when idle, for pins it can decide."""


def txn_app_id(settings: Settings, table: str) -> str:
    """Delta ``txnAppId`` of the job's appends to one table (``pin|geo|user|dead``)."""
    return f"pinpipe-spark-stream-{settings.prefix}-{table}"


def written_tables(settings: Settings) -> dict[str, str]:
    """The tables the job appends to with ``txnVersion`` = batch id, by their ``txn_app_id`` name."""
    found = {str(kind): tables.stream_table(settings, kind) for kind in KINDS}
    return found | {"dead": tables.dead_letter_table(settings)}


def planned_batch(checkpoint: Path) -> int:
    """The highest batch id the checkpoint has planned (its offsets log), -1 for none.

    Spark writes ``offsets/<id>`` before running batch ``id`` and replays it with the same offsets
    when ``commits/<id>`` is missing, so a table may hold any batch id up to this one, never above.
    """
    ids = [int(p.name) for p in (checkpoint / "offsets").glob("[0-9]*") if p.name.isdigit()]
    return max(ids, default=-1)


def refuse_lost_checkpoint(settings: Settings) -> None:
    """Raise :class:`StreamError` when a table holds a batch id the checkpoint never planned.

    The checkpoint was deleted or replaced by an older one while the tables were kept: the query
    would run batch ids the tables hold again, on new records, and Delta would skip them in silence.
    """
    checkpoint = tables.spark_checkpoint(settings)
    planned = planned_batch(checkpoint)
    ahead: dict[str, tuple[str, int]] = {}
    for table, url in written_tables(settings).items():
        app = txn_app_id(settings, table)
        version = delta.transaction_versions(url, [app]).get(app, -1)
        if version > planned:
            ahead[url] = (app, version)
    if not ahead:
        return
    url, (app, version) = next(iter(ahead.items()))
    state = f"has planned batches up to {planned}" if planned >= 0 else "has planned no batch"
    raise StreamError(
        f"the Spark stream checkpoint {checkpoint} {state}, but {url} holds transaction {app}"
        f" version {version}: restarted there, Delta would skip new records as already written."
        f" Restore the checkpoint, or reset the Spark stream: delete {', '.join(ahead)}"
        f" and {checkpoint} (the topics are then read again from the earliest offsets)"
    )


def bootstrap_of(settings: Settings) -> str:
    url = urlparse(settings.stream_log_url)
    if url.scheme != "kafka":
        raise ConfigError(
            "the Spark stream engine reads Kafka: give --log kafka://HOST:PORT"
            f" (got {settings.stream_log_url})"
        )
    return url.netloc


class SparkStreamJob(Stage):
    """The foreachBatch body and the metrics it keeps, with what it did so far (``summary``).

    Built, it holds configuration only; :meth:`start` (or ``with``) takes the processor lock, refuses a
    lost checkpoint, opens the log and the metrics state and starts the Delta writers; :meth:`close`
    releases them, last first."""

    log: Log
    streams: dict[Kind, str]
    topics: dict[str, Kind]
    metrics: MetricsKeeper
    pool: ThreadPoolExecutor

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.busy = threading.Lock()
        """Held by a micro-batch or an idle step: the metrics state has one writer at a time."""
        self.last_step = time.monotonic()
        self.summary = StreamSummary()

    def _open(self, acquired: contextlib.ExitStack) -> None:
        settings = self.settings
        acquired.enter_context(ProcessorLock(settings))
        refuse_lost_checkpoint(settings)  # before any Spark or Kafka work
        self.log = open_settings_log(settings, settings.stream_log_url)
        acquired.callback(self.log.close)
        self.streams, partitions = open_streams(settings, self.log)
        self.topics = {s: k for k, s in self.streams.items()}
        self.metrics = MetricsKeeper(settings, self.streams, partitions, delta.TableCache())
        self.pool = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="pinpipe-delta")
        acquired.callback(self.pool.shutdown, wait=True)

    def process(self, batch: Any, batch_id: int) -> None:
        self._require_started()
        with self.busy:
            self._process(batch, batch_id)

    def _process(self, batch: Any, batch_id: int) -> None:
        spark = batch.sparkSession  # the streaming query's own session: temp views must live there
        batch.createOrReplaceTempView("kafka_batch")
        spark.sql(
            "SELECT topic, partition, offset, CAST(value AS STRING) AS line, value AS bytes,"
            " timestamp AS arrival FROM kafka_batch"
        ).persist().createOrReplaceTempView("kafka_rows")
        dead: list[dict[str, Any]] = []
        narrow: dict[Kind, Any] = {}
        for topic, kind in self.topics.items():
            spark.sql(
                f"SELECT partition * {SHIFT} + offset AS _file, 0 AS _line, line FROM kafka_rows"
                f" WHERE topic = '{topic}'"
            ).createOrReplaceTempView("lines")
            typed = spark.sql(typed_select(kind)).persist()
            typed.createOrReplaceTempView("typed")
            names = ", ".join(f"`{f}`" for f in FIELDS[kind])
            spark.sql(f"SELECT {names}, _file AS _seq FROM typed WHERE _ok").createOrReplaceTempView(
                f"raw_{kind}"
            )
            cols = ", ".join(CLEAN_COLUMNS[kind])
            rules = render(CLEAN_SQL[kind], "spark")
            cleaned = spark.sql(
                f"SELECT {cols}, CAST(shiftright(c._seq, 40) AS INT) AS _partition,"
                f" c._seq % {SHIFT} AS _offset, k.arrival AS _arrival FROM ({rules}) AS c"
                f" JOIN kafka_rows AS k ON k.topic = '{topic}' AND k.partition * {SHIFT} + k.offset = c._seq"
            )
            flagged = spark.sql(
                "SELECT k.partition, k.offset, k.bytes, CAST(k.arrival AS DOUBLE) AS arrival FROM typed AS t"
                f" JOIN kafka_rows AS k ON k.topic = '{topic}' AND k.partition * {SHIFT} + k.offset = t._file"
                " WHERE NOT t._ok"
            ).collect()
            if flagged:
                records = [
                    Record(topic, r["partition"], r["offset"], None, bytes(r["bytes"]), r["arrival"])
                    for r in flagged
                ]
                decoded = decode(kind, records)
                dead.extend(decoded.dead)
                if decoded.cleaned.num_rows:
                    extra = spark.createDataFrame(decoded.cleaned)
                    cleaned = cleaned.unionByName(extra.select(*cleaned.columns))
            cleaned = cleaned.persist()
            self._append(cleaned, tables.stream_table(self.settings, kind), kind, batch_id)
            # what the metrics read, and the row count (a few columns of at most maxOffsetsPerTrigger rows)
            narrow[kind] = cleaned.select("_partition", "_offset", *METRIC_COLUMNS.get(kind, [])).toArrow()
            self.summary.rows[kind] += narrow[kind].num_rows
            cleaned.unpersist()
            typed.unpersist()
        if dead:
            frame = spark.createDataFrame(dead_letter_table(dead))
            self._append(frame, tables.dead_letter_table(self.settings), "dead", batch_id)
            self.summary.dead_letters += len(dead)
        seen = spark.sql("SELECT topic, partition, offset, unix_millis(arrival) FROM kafka_rows").toArrow()
        spark.table("kafka_rows").unpersist()
        read = _records(seen, self.topics)
        valid = {kind: _valid(narrow[kind], read[kind]) for kind in KINDS if kind in METRIC_COLUMNS}
        self.summary.records += seen.num_rows
        self.summary.batches += 1
        self._step(read, valid)
        if self.summary.batches % TIDY_EVERY == 0:
            self.metrics.tidy()

    def _step(self, records: dict[Kind, list[Record]], valid: dict[Kind, Decoded]) -> None:
        """Feed the metrics (nothing: an idle step), save their state, rewrite the metric tables."""
        checked_at = self.metrics.check_ends(self.log)
        nexts = next_offsets(r for rs in records.values() for r in rs)
        self.metrics.step(records, valid, nexts, checked_at)
        self.metrics.commit(self.pool)
        self.last_step = time.monotonic()

    def idle_step(self) -> None:
        """No micro-batch: decide the pins that can be decided now, refresh ``lag``."""
        self._require_started()
        with self.busy:
            self._step({}, {})

    def _append(self, frame: Any, url: str, table: str, batch_id: int) -> None:
        (
            frame.write.format("delta")
            .mode("append")
            .option("txnAppId", txn_app_id(self.settings, table))
            .option("txnVersion", batch_id)
            .option("mergeSchema", "true")
            .save(hadoop_uri(url))
        )


def _records(seen: Any, topics: dict[str, Kind]) -> dict[Kind, list[Record]]:
    """Every record of the micro-batch (topic, partition, offset, Kafka timestamp in ms) per kind, in
    offset order per partition; the arrival is the Kafka timestamp in seconds, as the Kafka reader
    gives it to the embedded processor."""
    out: dict[Kind, list[Record]] = {k: [] for k in KINDS}
    columns = [seen.column(i).to_pylist() for i in range(4)]
    for topic, partition, offset, ms in zip(*columns, strict=True):
        out[topics[topic]].append(Record(topic, partition, offset, None, b"", ms / 1000))
    for rows in out.values():
        rows.sort(key=lambda r: (r.partition, r.offset))
    return out


def _valid(narrow: Any, records: list[Record]) -> Decoded:
    """The cleaned metric columns of one kind in offset order per partition, with their records."""
    rows = narrow.sort_by([("_partition", "ascending"), ("_offset", "ascending")])
    by_offset = {(r.partition, r.offset): r for r in records}
    where = zip(rows.column("_partition").to_pylist(), rows.column("_offset").to_pylist(), strict=True)
    return Decoded(rows, [by_offset[(p, o)] for p, o in where], [])


def run_spark_stream(
    settings: Settings,
    until_idle: bool = True,
    stop: Callable[[], bool] | None = None,
    on_batch: Callable[[StreamSummary], Any] | None = None,
    conf: dict[str, str] | None = None,
) -> StreamSummary:
    """Run the Structured Streaming job (until caught up with ``until_idle``, else until ``stop()``)."""
    started = time.monotonic()
    bootstrap = bootstrap_of(settings)
    with SparkStreamJob(settings) as job:
        _run_query(job, spark_session(settings, conf), bootstrap, until_idle, stop, on_batch)
    job.summary.pending_pins = job.metrics.state.pending_pins
    job.summary.seconds = time.monotonic() - started
    return job.summary


def _run_query(
    job: SparkStreamJob,
    spark: Any,
    bootstrap: str,
    until_idle: bool,
    stop: Callable[[], bool] | None,
    on_batch: Callable[[StreamSummary], Any] | None,
) -> None:
    settings = job.settings

    def body(batch: Any, batch_id: int) -> None:
        job.process(batch, batch_id)
        if on_batch:
            on_batch(job.summary)

    source = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", ",".join(job.topics))
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", "false")
        .option("maxOffsetsPerTrigger", settings.stream.max_records)
        .load()
    )
    writer = source.writeStream.foreachBatch(body).option(
        "checkpointLocation", str(tables.spark_checkpoint(settings))
    )
    if until_idle:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{max(0.1, settings.stream.max_wait_s)} seconds")
    query = writer.start()
    stopped = False
    try:
        while query.isActive:
            if stop is not None and stop():
                stopped = True
                query.stop()
                break
            query.awaitTermination(IDLE_CHECK_S)
            if not until_idle and time.monotonic() - job.last_step >= settings.stream.max_wait_s:
                job.idle_step()
        query.awaitTermination()
    finally:
        if query.isActive:
            query.stop()
        with job.busy:  # a micro-batch the stop interrupted has returned
            pass
    # caught up: decide the pins still waiting for a geo event (at most pair window + margin after
    # the last arrival), unless asked to stop or new records arrived meanwhile (the next run reads them)
    job.idle_step()
    while until_idle and not stopped and job.metrics.state.pending_pins and job.metrics.caught_up():
        if stop is not None and stop():
            break
        time.sleep(IDLE_CHECK_S)
        job.idle_step()
