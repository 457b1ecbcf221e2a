"""``pinpipe batch run``: clean the lake, answer the ten questions, write Delta tables, print/export.

Exit status: 0 when the job completed, even if some lake records were quarantined (a cron job or Airflow
task should not retry a run that will quarantine the same records again); the summary then ends with a
loud WARNING line naming the quarantine table (likewise for lake objects changed since they were cleaned).
``--strict`` makes quarantined records (of this run) or changed objects exit with status 3.
Any failure of the job itself is a PinpipeError: one line, status 1.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from pinpipe.cli.common import build_settings, export_option, pipeline_options
from pinpipe.engines import ENGINES, run_batch
from pinpipe.progress import StatusLine
from pinpipe.render import (
    batch_outputs,
    batch_summary_lines,
    warn_changed,
    warn_empty_lake,
    warn_quarantine,
)
from pinpipe.transform.export import export_csv
from pinpipe.workdir import require_workdir

QUARANTINE_EXIT = 3


@click.group()
def batch() -> None:
    """The batch job: cleaned tables and the ten historical outputs (docs/data-rules.md)."""


@batch.command("run")
@pipeline_options
@click.option(
    "--engine",
    type=click.Choice(sorted(ENGINES)),
    default=None,
    help="Batch engine [default: engine.name setting, duckdb].",
)
@click.option("--keep-duplicates", is_flag=True, default=None, help="Count raw records (k×m join rows).")
@click.option(
    "--median",
    type=click.Choice(["lower", "exact"]),
    default=None,
    help="lower: value at rank ceil(n/2) [default]; exact: mean of the two middle values for even n.",
)
@click.option("--keep-ties", is_flag=True, default=None, help="Keep every tied row of the top-1 outputs.")
@export_option
@click.option(
    "--strict", is_flag=True, help=f"Exit with status {QUARANTINE_EXIT} if records were quarantined."
)
@click.option(
    "-q", "--quiet", is_flag=True, help="Print only the summary, not the outputs; no progress line."
)
@click.option(
    "--retain-hours",
    type=click.IntRange(min=0),
    default=None,
    help="Delete table files replaced more than N hours ago; older table versions stay readable that"
    " long [default: engine.retain_hours setting, 168].",
)
@click.option("--master", default=None, help="Spark master URL with --engine spark [default: local[*]].")
@click.option(
    "--full-refresh",
    is_flag=True,
    help="Rebuild the cleaned tables from the whole lake instead of adding only the new objects.",
)
def run(
    locations: dict[str, Any],
    engine: str | None,
    keep_duplicates: bool | None,
    median: str | None,
    keep_ties: bool | None,
    export_dir: Path | None,
    strict: bool,
    quiet: bool,
    retain_hours: int | None = None,
    master: str | None = None,
    full_refresh: bool = False,
) -> None:
    """Clean the lake objects not cleaned before, add them to the cleaned tables, compute the ten
    outputs from those tables and write them as Delta tables (idempotent).

    Safe to run from cron: which objects are done is committed with their rows, so a rerun (also after a
    kill) gives the same tables as one run over the whole lake. --full-refresh rebuilds from the lake, as
    does a run whose --keep-duplicates differs from the tables'. Objects changed since they were cleaned
    are reported (WARNING; exit status 3 with --strict). The files a run replaces are deleted by a later
    run, once older than --retain-hours.
    """
    settings = build_settings(
        locations,
        **{
            "engine.name": engine,
            "engine.keep_duplicates": keep_duplicates,
            "engine.median": median,
            "engine.keep_ties": keep_ties,
            "engine.spark_master": master,
            "engine.retain_hours": retain_hours,
        },
    )
    require_workdir(settings, settings.lake_url)
    with StatusLine(f"running the batch job on {settings.engine.name} ...", quiet=quiet):
        result = run_batch(settings, full_refresh=full_refresh)
    if not quiet:
        from rich.console import Console  # only to draw tables: a quiet run's summary is plain lines

        batch_outputs(result, Console())
    for line in batch_summary_lines(result):
        click.echo(line)
    if export_dir is not None:
        paths = export_csv(result.outputs, export_dir)
        click.echo(f"  exported {len(paths)} CSV files to {export_dir}")
    removed = f" ({result.files_removed} replaced files deleted)" if result.files_removed else ""
    click.echo(f"  tables: {settings.tables_url}/batch{removed}")
    warn_quarantine(result)
    warn_empty_lake(result, settings)
    warn_changed(result)
    if strict and (result.quarantined or result.changed):
        sys.exit(QUARANTINE_EXIT)
