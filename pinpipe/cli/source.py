"""``pinpipe source``: create and fill the source database (synthetic rows, or real rows from files)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from pinpipe.cli.common import build_settings, no_progress_option, pipeline_options
from pinpipe.errors import ConfigError
from pinpipe.schema import SOURCE_TABLES, Kind
from pinpipe.workdir import note_new_workdir


@click.group()
def source() -> None:
    """Create and fill the source database (pinterest_data, geolocation_data, user_data).

    The database is --db (a SQLAlchemy URL: sqlite:///..., mysql+pymysql://..., postgresql+psycopg://...),
    by default sqlite:///WORKDIR/source.db; the tables are created when missing.
    """


@source.command()
@click.option("--rows", type=click.IntRange(min=0), default=11154, show_default=True, help="Rows per table.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same rows.")
@click.option("--start", type=click.IntRange(min=0), default=0, show_default=True, help="First ind.")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--replace", is_flag=True, help="Empty the three tables first.")
@no_progress_option
@pipeline_options
def seed(
    rows: int,
    seed: int,
    start: int,
    chunk_rows: int,
    replace: bool,
    no_progress: bool,
    locations: dict[str, Any],
) -> None:
    """Write synthetic rows that look like the real ones (ind START..START+ROWS-1 in all three tables).

    Deterministic: the same --seed gives the same rows whatever the chunk size. Rows are generated and
    inserted chunk by chunk (one transaction each), so memory stays flat for millions of rows.
    """
    from pinpipe.source.database import open_source
    from pinpipe.source.synthetic import seed_database

    settings = build_settings(locations)
    note_new_workdir(settings, settings.source_url)
    engine = open_source(settings.source_url)
    try:
        began = time.perf_counter()
        written = seed_database(
            engine,
            rows,
            seed=seed,
            start=start,
            chunk_rows=chunk_rows,
            replace=replace,
            progress=not no_progress,
        )
        took = time.perf_counter() - began
    finally:
        engine.dispose()
    rate = written / max(took, 1e-9)
    click.echo(f"seeded {written} rows per table (seed {seed}) in {took:.1f}s ({rate:,.0f} rows/s)")


@source.command()
@click.option(
    "--pin", type=click.Path(path_type=Path), default=None, help="pinterest_data rows (.csv/.jsonl)."
)
@click.option(
    "--geo", type=click.Path(path_type=Path), default=None, help="geolocation_data rows (.csv/.jsonl)."
)
@click.option("--user", type=click.Path(path_type=Path), default=None, help="user_data rows (.csv/.jsonl).")
@click.option(
    "--replace",
    is_flag=True,
    help="Empty each table that a file is given for before loading. Without it a key already in the "
    "table is an error and nothing is loaded.",
)
@no_progress_option
@pipeline_options
def load(
    pin: Path | None,
    geo: Path | None,
    user: Path | None,
    replace: bool,
    no_progress: bool,
    locations: dict[str, Any],
) -> None:
    """Load real rows from CSV or JSON Lines files (by extension), all in one transaction.

    CSV: a header row; a leading unnamed column (a pandas index) is dropped. JSON Lines: one object per
    line with the table's column names (pinterest_data is keyed by "index"). Values are converted to the
    column types; datetimes are "%Y-%m-%d %H:%M:%S". Prints the rows loaded per table.
    """
    from pinpipe.source.database import open_source
    from pinpipe.source.load import check_file, load_files

    given: dict[Kind, Path | None] = {"pin": pin, "geo": geo, "user": user}
    files = {kind: path for kind, path in given.items() if path is not None}
    if not files:
        raise ConfigError("give at least one of --pin, --geo, --user")
    for path in files.values():  # a missing or unknown file fails before a workdir is made for it
        check_file(path)
    settings = build_settings(locations)
    note_new_workdir(settings, settings.source_url)
    engine = open_source(settings.source_url)
    try:
        result = load_files(engine, files, replace=replace, progress=not no_progress)
    finally:
        engine.dispose()
    for kind, count in result.counts.items():
        click.echo(f"{SOURCE_TABLES[kind]}: {count} rows")
