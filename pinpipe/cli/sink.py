"""``pinpipe sink run``: the batch topics into the lake, exactly once."""

from __future__ import annotations

from typing import Any

import click

from pinpipe.cli.common import build_settings, pipeline_options
from pinpipe.progress import StatusLine
from pinpipe.workdir import require_workdir


@click.group()
def sink() -> None:
    """Write the batch topics (<prefix>.pin|geo|user) to the lake, exactly once."""


@sink.command("run")
@pipeline_options
@click.option(
    "--until-idle",
    is_flag=True,
    help="Exit once every partition is caught up and written (else run until Ctrl-C).",
)
@click.option(
    "--flush-size", type=click.IntRange(min=1), default=None, help="Records per object [default: 500]."
)
@click.option(
    "--rotate-interval",
    type=click.FloatRange(min=0),
    default=None,
    help="Cut an object when record time passes its first record's by S seconds; 0 = off [default: 0].",
)
@click.option(
    "--idle-flush",
    type=click.FloatRange(min=0),
    default=None,
    help="Write a caught-up object S s after its rotate deadline (needs --rotate-interval) [default: 5].",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "parquet"]),
    default=None,
    help="Object format [default: json].",
)
@click.option(
    "--group-instance-id",
    default=None,
    metavar="NAME",
    help="Kafka static membership: a name unique to this worker and kept across its restarts "
    "[default: none, dynamic membership].",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress line (none off a terminal either).")
def run(
    locations: dict[str, Any],
    until_idle: bool,
    flush_size: int | None,
    rotate_interval: float | None,
    idle_flush: float | None,
    fmt: str | None,
    group_instance_id: str | None,
    quiet: bool,
) -> None:
    """Consume the batch topics as group pinpipe-lake-sink and write
    topics/<topic>/partition=<p>/<topic>+<p>+<start offset>.json objects to the lake.

    Offsets are committed only after an object is durably written; after a crash the sink continues after
    the objects already in the lake, so every record lands exactly once. SIGTERM/Ctrl-C stop gracefully.
    """
    from rich.console import Console
    from rich.table import Table

    from pinpipe.lake.sink import SinkSummary, run_sink

    settings = build_settings(
        locations,
        **{
            "lake.flush_size": flush_size,
            "lake.rotate_interval_s": rotate_interval,
            "lake.idle_flush_s": idle_flush,
            "lake.format": fmt,
            "lake.group_instance_id": group_instance_id,
        },
    )
    require_workdir(settings, settings.log_url)
    with StatusLine("sinking ...", quiet=quiet) as line:

        def progress(summary: SinkSummary) -> None:
            line.update(f"sinking: {summary.records:,} records in {summary.objects:,} objects")

        summary = run_sink(settings, until_idle=until_idle, handle_signals=True, on_progress=progress)
    table = Table(title=f"lake sink -> {settings.lake_url}" + (" (stopped)" if summary.stopped else ""))
    for column in ("topic", "objects", "records", "bytes", "kept from before a crash"):
        table.add_column(column, justify="left" if column == "topic" else "right")
    for topic, stats in summary.topics.items():
        table.add_row(
            topic,
            f"{stats.objects:,}",
            f"{stats.records:,}",
            f"{stats.bytes:,}",
            f"{stats.recovered_objects:,}",
        )
    table.add_row("total", f"{summary.objects:,}", f"{summary.records:,}", f"{summary.bytes:,}", "")
    Console().print(table)
