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
from rich.console import Console
from rich.table import Table

from pinpipe.cli.common import build_settings, export_option, pipeline_options
from pinpipe.config import Settings
from pinpipe.engines import ENGINES, run_batch
from pinpipe.engines.base import BatchResult
from pinpipe.progress import StatusLine
from pinpipe.schema import KINDS
from pinpipe.transform.export import export_csv, format_cell
from pinpipe.workdir import require_workdir

QUARANTINE_EXIT = 3


def print_result(result: BatchResult, console: Console, max_rows: int = 30) -> None:
    """The ten outputs as rich tables, then the summary (records per topic, quarantined, time)."""
    for name, table in result.outputs.items():
        view = Table(title=name, title_justify="left", show_lines=False)
        for column in table.column_names:
            numeric = table.schema.field(column).type != "string"
            view.add_column(column, justify="right" if numeric else "left")
        for row in table.slice(0, max_rows).to_pylist():
            view.add_row(*(format_cell(row[c]) for c in table.column_names))
        if table.num_rows > max_rows:
            view.caption = f"{max_rows} of {table.num_rows} rows (all of them with --export)"
        console.print(view)
    opts = result.options
    console.print(
        f"[bold]batch[/bold] engine={result.engine} keep_duplicates={opts.keep_duplicates} "
        f"median={opts.median} keep_ties={opts.keep_ties}"
    )
    for kind in KINDS:
        done = result.objects_done.get(kind, 0)
        how = f"rebuilt: {result.rebuilt[kind]}" if kind in result.rebuilt else f"{done} done before"
        new = "" if kind in result.rebuilt else "new "
        console.print(
            f"  {kind}: {result.records_read.get(kind, 0)} records read from "
            f"{result.objects_read.get(kind, 0)} {new}objects ({how}), "
            f"{result.cleaned_rows.get(kind, 0)} cleaned rows"
        )
    console.print(f"  quarantined: {len(result.quarantined)}   time: {result.seconds:.2f} s")


def warn_changed(result: BatchResult, console: Console, shown: int = 10) -> None:
    """Lake objects that changed (or went) after they were cleaned: their old rows stay in the tables."""
    changed = [(kind, key) for kind, keys in result.changed.items() for key in keys]
    if not changed:
        return
    for kind, key in changed[:shown]:
        console.print(f"[yellow]changed since cleaned[/yellow] {kind} {key}", markup=True)
    if len(changed) > shown:
        console.print(f"... and {len(changed) - shown} more")
    console.print(
        f"[bold red]WARNING: {len(changed)} lake object(s) changed or gone since they were cleaned[/bold red]"
        " (an object is never rewritten with other bytes: corruption or a manual edit); the tables keep"
        " their rows as cleaned, --full-refresh rebuilds them from the lake as it is now."
    )


def warn_quarantine(result: BatchResult, console: Console, shown: int = 10) -> None:
    if not result.quarantined:
        return
    for record in result.quarantined[:shown]:
        console.print(f"[yellow]quarantined[/yellow] {record.kind} {record.describe()}", markup=True)
    if len(result.quarantined) > shown:
        console.print(f"... and {len(result.quarantined) - shown} more")
    where = result.tables.get("quarantine", "the quarantine table")
    console.print(
        f"[bold red]WARNING: {len(result.quarantined)} lake record(s) quarantined[/bold red] "
        f"(kept in {where}); the rest was processed."
    )


def warn_empty_lake(result: BatchResult, settings: Settings, console: Console) -> None:
    """A lake with no record at all, new or cleaned by an earlier run, is almost always a wrong
    --lake/--prefix or a sink not yet run."""
    if any(result.records_read.values()) or any(result.objects_done.values()):
        return
    console.print(
        f"[bold yellow]WARNING: the lake {settings.lake_url} holds no records of prefix {settings.prefix}"
        "[/bold yellow] (every output is empty): run `pinpipe sink run --until-idle` first, or check --lake"
        " and --prefix.",
        soft_wrap=True,
    )


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
    console = Console()
    with StatusLine(f"running the batch job on {settings.engine.name} ...", quiet=quiet):
        result = run_batch(settings, full_refresh=full_refresh)
    if quiet:
        print_result(BatchResult(**{**result.__dict__, "outputs": {}}), console)
    else:
        print_result(result, console)
    if export_dir is not None:
        paths = export_csv(result.outputs, export_dir)
        console.print(f"  exported {len(paths)} CSV files to {export_dir}")
    removed = f" ({result.files_removed} replaced files deleted)" if result.files_removed else ""
    console.print(f"  tables: {settings.tables_url}/batch{removed}")
    warn_quarantine(result, Console(stderr=True))
    warn_empty_lake(result, settings, Console(stderr=True))
    warn_changed(result, Console(stderr=True))
    if strict and (result.quarantined or result.changed):
        sys.exit(QUARANTINE_EXIT)
