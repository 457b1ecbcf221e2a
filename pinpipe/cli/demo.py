"""``pinpipe demo``: the whole pipeline on the embedded defaults (or wherever the flags point)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pinpipe.cli.common import build_settings, command_name, export_option, given_flags, pipeline_options
from pinpipe.demo import SYNTHETIC_ROWS, DemoOptions, run_demo
from pinpipe.engines import ENGINES


@click.command("demo")
@pipeline_options
@click.option(
    "--iterations", type=click.IntRange(min=0), default=1000, show_default=True, help="Emulator iterations."
)
@click.option(
    "--seed", type=int, default=100, show_default=True, help="Emulator seed (100 reproduces the original)."
)
@click.option(
    "--sleep/--no-sleep", default=False, show_default=True, help="Wait the drawn 0/1 s per iteration."
)
@click.option(
    "--load-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Load pinterest_data, geolocation_data, user_data (CSV or JSONL) from DIR, not synthetic rows.",
)
@click.option(
    "--rows",
    type=click.IntRange(min=11_001),
    default=SYNTHETIC_ROWS,
    show_default=True,
    help="Synthetic rows.",
)
@click.option("--engine", type=click.Choice(sorted(ENGINES)), default=None, help="Batch engine [duckdb].")
@export_option
@click.option("--no-stream", is_flag=True, help="Skip the stream processor.")
@click.option(
    "--keep", is_flag=True, help="Keep the workdir's previous embedded state instead of starting fresh."
)
@click.option(
    "--fresh",
    is_flag=True,
    help="On a log outside the workdir (Kafka, Kinesis) that holds this prefix's records from an earlier "
    "run, delete and recreate its topics and streams; without it the demo refuses to mix the runs.",
)
@click.option(
    "--event-time",
    type=click.Choice(["arrival", "timestamp"]),
    default="arrival",
    show_default=True,
    help="Clock of the live metrics: arrival counts the replayed posts as posted now; timestamp uses their "
    "historical timestamps (then nearly all are late under the 600 s watermark).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars (source rows, emulator).")
def demo(
    locations: dict[str, Any],
    iterations: int,
    seed: int,
    sleep: bool,
    load_dir: Path | None,
    rows: int,
    engine: str | None,
    export_dir: Path | None,
    no_stream: bool,
    keep: bool,
    fresh: bool,
    event_time: str,
    quiet: bool,
) -> None:
    """Run the whole pipeline: build a source DB, serve the API on a free local port, emulate ITERATIONS
    posts to the batch topics and the streams, sink the topics to the lake, run the batch job, run the
    stream processor until caught up, then print the outputs and where everything was written.

    By default it starts fresh: the source DB, log, lake and tables inside --workdir are rebuilt (state
    outside the workdir is never deleted without being asked: on a Kafka or Kinesis log that already holds
    this prefix's records the demo refuses to run unless --fresh (delete and recreate those topics and
    streams) or a new --prefix is given; on an S3 lake it asks for a new --prefix).
    """
    if fresh and keep:
        raise click.UsageError("--fresh and --keep contradict each other: give one")
    settings = build_settings(locations, **{"engine.name": engine, "stream.event_time": event_time})
    run_demo(
        settings,
        DemoOptions(
            iterations=iterations,
            seed=seed,
            sleep=sleep,
            load_dir=load_dir,
            rows=rows,
            export_dir=export_dir,
            stream=not no_stream,
            fresh=not keep,
            fresh_log=fresh,
            quiet=quiet,
            hint_flags=given_flags(locations),
            command=command_name(),
        ),
    )
