"""``pinpipe emulate``: play users posting, from the source database to the ingestion API."""

from __future__ import annotations

import sys
from typing import Any

import click

from pinpipe.cli.common import build_settings, no_progress_option, pipeline_options


@click.command()
@click.option(
    "--seed", type=int, default=100, show_default=True, help="random.seed; 100 replays the original."
)
@click.option(
    "--iterations", type=click.IntRange(min=0), default=None, help="Stop after N [default: forever]."
)
@click.option(
    "--skip",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Draw and discard N iterations first: continues an earlier run of N iterations (same seed).",
)
@click.option("--no-sleep", is_flag=True, help="Draw the 0/1 s sleeps (same rows) but do not wait.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Iterations per second (for load); replaces the drawn sleeps.",
)
@click.option(
    "--mode",
    type=click.Choice(["batch", "stream", "both"]),
    default="batch",
    show_default=True,
    help="batch: Kafka REST proxy topics; stream: Kinesis-style streams; both.",
)
@click.option(
    "--api", default=None, help="Ingestion API base URL [default: http://API_HOST:API_PORT from settings]."
)
@click.option("--api-key", default=None, help="Sent as X-API-Key [default: the first of api.api_keys].")
@click.option(
    "--run-id",
    default=None,
    help="Prefix of the idempotency keys (RUN-ITERATION-KIND); reuse it to resume a run "
    "without duplicates [default: random].",
)
@click.option(
    "--max-retries",
    type=click.IntRange(min=0),
    default=8,
    show_default=True,
    help="Retries per record on 429/5xx/connection errors (exponential backoff, jitter).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help='Print one JSON line per iteration {"pin":..,"geo":..,"user":..} (null: row missing) '
    "instead of sending.",
)
@no_progress_option
@pipeline_options
def emulate(
    seed: int,
    iterations: int | None,
    skip: int,
    no_sleep: bool,
    rate: float | None,
    mode: str,
    api: str | None,
    api_key: str | None,
    run_id: str | None,
    max_retries: int,
    dry_run: bool,
    no_progress: bool,
    locations: dict[str, Any],
) -> None:
    """Each iteration draws a row index as the original emulator did (random.seed(SEED); per iteration
    sleep(randrange(0, 2)) then randint(0, 11000)), reads that ind from the three source tables and sends
    pin/geo/user to their topics (POST /topics/PREFIX.KIND) and/or streams
    (PUT /streams/streaming-PREFIX-KIND/record), one record per request with an Idempotency-Key.
    A row missing from a table is skipped for that table only and counted. Ctrl-C stops and prints the
    summary. Exit status: 0; 1 when some record could not be sent; 130 when interrupted.
    """
    from pinpipe.source.emulator import EmulatorOptions, run_emulator
    from pinpipe.source.sender import RetryPolicy

    settings = build_settings(locations)
    options = EmulatorOptions(
        seed=seed,
        iterations=iterations,
        skip=skip,
        sleep=not no_sleep,
        rate=rate,
        mode=mode,  # type: ignore[arg-type]
        api=api,
        api_key=api_key,
        dry_run=dry_run,
        run_id=run_id,
        retry=RetryPolicy(max_retries=max_retries),
        progress=not no_progress,
    )

    def show_error(message: str) -> None:
        click.echo(f"pinpipe: emulate: {message}", err=True)

    out = sys.stdout
    summary = run_emulator(settings, options, out=out, on_error=show_error)
    click.echo(summary.line(), err=dry_run)
    if summary.interrupted:
        sys.exit(130)
    if summary.errors:
        sys.exit(1)
