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
   after a crash (the checkpoint had not recorded it) is skipped by the tables that already hold it;
4. rewrites the metric tables (:mod:`pinpipe.streaming.spark_metrics`).

``until_idle``: the ``availableNow`` trigger (everything in the topics now, then stop).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from pinpipe import tables
from pinpipe.config import Settings
from pinpipe.engines.spark_lake import typed_select
from pinpipe.engines.spark_session import spark_session
from pinpipe.errors import ConfigError
from pinpipe.log.base import Record
from pinpipe.schema import FIELDS, KINDS, Kind, stream_name
from pinpipe.streaming.decode import dead_letter_table, decode
from pinpipe.streaming.processor import StreamSummary
from pinpipe.streaming.spark_metrics import write_metrics
from pinpipe.transform.clean import CLEAN_COLUMNS, CLEAN_SQL
from pinpipe.transform.dialect import render

SHIFT = 1 << 40
"""``_seq`` of a stream record: partition * 2^40 + offset (the raw views' arrival order)."""


def bootstrap_of(settings: Settings) -> str:
    url = urlparse(settings.stream_log_url)
    if url.scheme != "kafka":
        raise ConfigError(
            "the Spark stream engine reads Kafka: give --log kafka://HOST:PORT"
            f" (got {settings.stream_log_url})"
        )
    return url.netloc


class SparkStreamJob:
    """The foreachBatch body, with what it did so far (``summary``)."""

    def __init__(self, settings: Settings, spark: Any) -> None:
        self.settings = settings
        self.spark = spark
        self.topics: dict[str, Kind] = {stream_name(settings.prefix, k): k for k in KINDS}
        self.app = f"pinpipe-spark-stream-{settings.prefix}"
        self.summary = StreamSummary()

    def process(self, batch: Any, batch_id: int) -> None:
        spark = batch.sparkSession  # the streaming query's own session: temp views must live there
        batch.createOrReplaceTempView("kafka_batch")
        spark.sql(
            "SELECT topic, partition, offset, CAST(value AS STRING) AS line, value AS bytes,"
            " timestamp AS arrival FROM kafka_batch"
        ).persist().createOrReplaceTempView("kafka_rows")
        dead: list[dict[str, Any]] = []
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
            self._append(cleaned, tables.stream_table(self.settings, kind), f"{kind}", batch_id)
            self.summary.rows[kind] += cleaned.count()
            typed.unpersist()
        if dead:
            frame = spark.createDataFrame(dead_letter_table(dead))
            self._append(frame, tables.dead_letter_table(self.settings), "dead", batch_id)
            self.summary.dead_letters += len(dead)
        self.summary.records += spark.table("kafka_rows").count()
        spark.table("kafka_rows").unpersist()
        write_metrics(spark, self.settings)
        self.summary.batches += 1

    def _append(self, frame: Any, url: str, table: str, batch_id: int) -> None:
        (
            frame.write.format("delta")
            .mode("append")
            .option("txnAppId", f"{self.app}-{table}")
            .option("txnVersion", batch_id)
            .option("mergeSchema", "true")
            .save(url)
        )


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
    spark = spark_session(settings, conf)
    job = SparkStreamJob(settings, spark)
    checkpoint = tables.spark_checkpoint(settings)

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
    writer = source.writeStream.foreachBatch(body).option("checkpointLocation", str(checkpoint))
    if until_idle:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{max(0.1, settings.stream.max_wait_s)} seconds")
    query = writer.start()
    try:
        while query.isActive:
            if stop is not None and stop():
                query.stop()
                break
            query.awaitTermination(0.5)
        query.awaitTermination()
    finally:
        if query.isActive:
            query.stop()
    job.summary.seconds = time.monotonic() - started
    return job.summary
