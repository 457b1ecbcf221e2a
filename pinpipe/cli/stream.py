"""``pinpipe stream run``: the stream processor, streams -> cleaned Delta tables + real-time metrics."""

from __future__ import annotations

from typing import Any

import click

from pinpipe.cli.common import build_settings, pipeline_options
from pinpipe.progress import StatusLine
from pinpipe.stopping import stop_on_signals
from pinpipe.workdir import require_workdir


@click.group("stream")
def stream() -> None:
    """Clean the Kinesis-style streams into Delta tables in real time, with live metrics."""


@stream.command("run")
@pipeline_options
@click.option("--until-idle", is_flag=True, help="Stop once every stream is caught up and quiet.")
@click.option(
    "--max-records",
    type=click.IntRange(min=1),
    default=None,
    help="The most records one micro-batch reads [default: 20000].",
)
@click.option(
    "--max-wait",
    type=click.FloatRange(min=0),
    default=None,
    help="Micro-batch trigger: seconds between micro-batch starts while keeping up [default: 0.1].",
)
@click.option(
    "--watermark", type=click.FloatRange(min=0), default=None, help="Lateness allowed, seconds [600]."
)
@click.option(
    "--event-time",
    type=click.Choice(["timestamp", "arrival"]),
    default=None,
    help="Clock of the metrics' windows for a new metrics state: the posts' timestamps, or their arrival "
    "in the log [default: stream.event_time setting, timestamp].",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress line (none off a terminal either).")
@click.option(
    "--engine",
    type=click.Choice(["auto", "embedded", "spark"]),
    default=None,
    help="embedded: the in-process processor; spark: Spark Structured Streaming from Kafka (--log kafka://);"
    " auto: spark when engine.name is spark and the streams are on Kafka [default: stream.engine setting,"
    " auto].",
)
@click.option("--master", default=None, help="Spark master URL with --engine spark [default: local[*]].")
def run(
    locations: dict[str, Any],
    until_idle: bool,
    max_records: int | None,
    max_wait: float | None,
    watermark: float | None,
    event_time: str | None,
    quiet: bool,
    engine: str | None,
    master: str | None,
) -> None:
    """Consume streaming-<prefix>-pin|geo|user, clean each micro-batch with the batch job's rules and
    append to the Delta tables <prefix>_pin_table, _geo_table, _user_table exactly once (offsets are
    committed in the same Delta transaction), updating the metric tables after every micro-batch.

    Runs until interrupted (Ctrl-C or SIGTERM finish the current micro-batch), or with --until-idle
    until caught up.
    """
    settings = build_settings(
        locations,
        **{
            "stream.max_records": max_records,
            "stream.max_wait_s": max_wait,
            "stream.watermark_s": watermark,
            "stream.event_time": event_time,
            "engine.spark_master": master,
            "stream.engine": engine,
        },
    )
    require_workdir(settings, settings.stream_log_url)
    from pinpipe.streaming import StreamSummary, stream_runner

    run_stream = stream_runner(settings)
    with stop_on_signals() as stop, StatusLine("streaming ...", quiet=quiet) as line:

        def _progress(summary: StreamSummary) -> None:
            rows = " ".join(f"{k}={v}" for k, v in summary.rows.items())
            line.update(
                f"streaming: batches={summary.batches} records={summary.records} {rows} "
                f"dead_letters={summary.dead_letters}"
            )

        summary = run_stream(settings, until_idle=until_idle, stop=stop, on_batch=_progress)
    rows = ", ".join(f"{k} {v}" for k, v in summary.rows.items())
    click.echo(
        f"stream: {summary.records} records in {summary.batches} micro-batches ({summary.seconds:.1f} s); "
        f"rows appended: {rows}; dead letters: {summary.dead_letters}"
    )
