"""``pinpipe demo``: the whole pipeline in one process, on whatever the settings point at.

source DB (synthetic or loaded) -> ingestion API (a free local port) -> emulator -> log -> lake sink ->
batch job, and the stream processor -> Delta tables + metrics; then it prints the outputs and where
everything was written. Each stage is the same library call its own command makes, so the demo shows
exactly what the separate commands do.
"""

from __future__ import annotations

import shlex
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from pinpipe._optional import require_extras
from pinpipe.config import Settings
from pinpipe.config_show import MASK, mask_url
from pinpipe.earlier_run import check_earlier_run, delete_earlier_records
from pinpipe.errors import ConfigError
from pinpipe.locations import delta_uri, join, local_path
from pinpipe.schema import KINDS, Kind

SYNTHETIC_ROWS = 11_154
"""As many rows as the original database, so the emulator's draws (0..11000) always find a row."""

# File names looked for in --load-dir, first match wins (the aicore copies load as they are).
LOAD_NAMES: dict[Kind, tuple[str, ...]] = {
    "pin": ("pinterest_data.jsonl", "pinterest_data.csv", "pinterest_data.json"),
    "geo": ("geolocation_data.csv", "geolocation_data.jsonl", "geolocation_data.json"),
    "user": ("user_data.csv", "user_data.jsonl", "user_data.json"),
}


@dataclass(frozen=True)
class DemoOptions:
    iterations: int = 1000
    seed: int = 100
    sleep: bool = False
    load_dir: Path | None = None
    rows: int = SYNTHETIC_ROWS
    export_dir: Path | None = None
    stream: bool = True
    fresh: bool = True
    """Remove the embedded state (source DB, log, lake, tables) of the workdir first."""
    fresh_log: bool = False
    """Delete and recreate the prefix's topics and streams on a log outside the workdir (Kafka, Kinesis)
    that holds records from an earlier run; without it the demo refuses to mix runs."""
    quiet: bool = False
    """No progress bars (source rows, emulator); the stages' results are still printed."""
    hint_flags: tuple[str, ...] = ()
    """The location flags the run was given, repeated in the closing hints (``--log kafka://...``)."""
    command: str = "pinpipe"
    """How the closing hints spell the pinpipe command (``.venv/bin/pinpipe`` when run from there)."""


@dataclass
class DemoReport:
    stages: dict[str, float] = field(default_factory=dict)
    """Seconds per stage."""


def find_load_files(load_dir: Path) -> dict[Kind, Path]:
    """The three source files in ``load_dir``; a missing one is a ConfigError naming what was expected."""
    found: dict[Kind, Path] = {}
    for kind in KINDS:
        for name in LOAD_NAMES[kind]:
            if (load_dir / name).is_file():
                found[kind] = load_dir / name
                break
        else:
            raise ConfigError(f"{load_dir} has no {' or '.join(LOAD_NAMES[kind])}")
    return found


def reset_workdir(settings: Settings) -> None:
    """Delete the local state the demo is about to rebuild, only where it lives inside the workdir."""
    workdir = settings.workdir.resolve()
    for url in (
        settings.source_url,
        settings.log_url,
        settings.stream_log_url,
        settings.lake_url,
        settings.tables_url,
    ):
        path = local_path(url)
        if path is None or not path.resolve().is_relative_to(workdir):
            continue
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    from pinpipe.tables import spark_checkpoint

    # the Spark stream's checkpoint would resume past the offsets of the stream tables just deleted
    shutil.rmtree(spark_checkpoint(settings), ignore_errors=True)


class _Stage:
    """Times one stage and prints its heading."""

    def __init__(self, console: Console, report: DemoReport, name: str, title: str) -> None:
        self.console, self.report, self.name, self.title = console, report, name, title

    def __enter__(self) -> None:
        self.started = time.monotonic()
        self.console.rule(f"[bold]{self.title}")

    def __exit__(self, *exc: object) -> None:
        self.report.stages[self.name] = time.monotonic() - self.started


def build_source(settings: Settings, options: DemoOptions, console: Console) -> None:
    from pinpipe.source.database import count_rows, open_source
    from pinpipe.source.load import load_files
    from pinpipe.source.synthetic import seed_database

    engine = open_source(settings.source_url)
    try:
        if options.load_dir is not None:
            files = find_load_files(options.load_dir)
            result = load_files(engine, files, replace=True, progress=not options.quiet)
            counts = result.counts
        else:
            seed_database(engine, options.rows, seed=options.seed, replace=True, progress=not options.quiet)
            counts = count_rows(engine)
    finally:
        engine.dispose()
    console.print("source rows: " + ", ".join(f"{kind} {n}" for kind, n in counts.items()))


def run_demo(settings: Settings, options: DemoOptions, console: Console | None = None) -> DemoReport:
    """Run every stage in order; raises PinpipeError on the first failure."""
    from pinpipe.engines import options_from_settings, run_batch
    from pinpipe.ingest.app import create_app
    from pinpipe.lake.sink import run_sink
    from pinpipe.render import batch_outputs, batch_summary, warn_quarantine
    from pinpipe.serve import background_server
    from pinpipe.source.emulator import EmulatorOptions, run_emulator
    from pinpipe.transform.export import export_csv

    console = console or Console()
    report = DemoReport()
    delta_uri(settings.tables_url)  # a tables location delta-rs cannot use fails before anything is written
    require_extras(settings)  # before anything is deleted
    earlier = check_earlier_run(settings, keep=not options.fresh, fresh=options.fresh_log)
    if not settings.workdir.is_dir():
        console.print(f"creating the workdir {settings.workdir.resolve()}")
    settings.workdir.mkdir(parents=True, exist_ok=True)
    if options.fresh:
        reset_workdir(settings)
        settings.workdir.mkdir(parents=True, exist_ok=True)
    delete_earlier_records(settings, earlier, console)

    with _Stage(console, report, "source", "1. source database"):
        build_source(settings, options, console)

    with _Stage(console, report, "emulate", "2. ingestion API + emulator (batch topics and streams)"):
        with background_server(create_app(settings)) as api_url:
            console.print(f"ingestion API on {api_url} (log {mask_url(settings.log_url)})")
            summary = run_emulator(
                settings,
                EmulatorOptions(
                    seed=options.seed,
                    iterations=options.iterations,
                    sleep=options.sleep,
                    mode="both",
                    api=api_url,
                    progress=not options.quiet,
                ),
            )
        console.print(
            f"{summary.iterations} iterations; sent "
            + ", ".join(f"{n} {name}" for name, n in summary.sent.items())
        )
        if summary.errors:
            console.print(f"[yellow]{summary.errors} records failed to send[/yellow]")

    with _Stage(console, report, "sink", "3. lake sink"):
        sunk = run_sink(settings, until_idle=True)
        console.print(
            f"{sunk.records} records in {sunk.objects} objects ({sunk.bytes} bytes) at {settings.lake_url}"
        )

    with _Stage(console, report, "batch", f"4. batch job ({settings.engine.name})"):
        result = run_batch(settings, options_from_settings(settings))
        batch_outputs(result, console)
        batch_summary(result, console)
        warn_quarantine(result, console)
        if options.export_dir is not None:
            paths = export_csv(result.outputs, options.export_dir)
            console.print(f"exported {len(paths)} CSV files to {options.export_dir}")

    if options.stream:
        with _Stage(console, report, "stream", "5. stream processor"):
            _run_stream_stage(settings, console)

    _print_locations(settings, options, report, console)
    return report


def _run_stream_stage(settings: Settings, console: Console) -> None:
    from pinpipe.render import metric_tables
    from pinpipe.streaming import read_metrics, stream_engine, stream_runner

    if stream_engine(settings) == "spark":
        source = mask_url(settings.stream_log_url)
        console.print(f"Spark Structured Streaming ({settings.engine.spark_master}) from {source}")
    elif settings.engine.name == "spark":
        console.print("embedded processor (Spark Structured Streaming reads Kafka: give --log kafka://...)")
    summary = stream_runner(settings)(settings, until_idle=True)
    console.print(
        f"{summary.records} events in {summary.batches} micro-batches; rows "
        + ", ".join(f"{kind} {n}" for kind, n in summary.rows.items())
        + f"; dead letters {summary.dead_letters}"
    )
    metric_tables(read_metrics(settings), console, names=("profile_popularity", "trending_categories"))


def _print_locations(settings: Settings, options: DemoOptions, report: DemoReport, console: Console) -> None:
    from pinpipe.source.database import shown_url
    from pinpipe.tables import stream_table

    console.rule("[bold]where everything is")
    rows = [
        ("source database", shown_url(settings.source_url)),
        ("log (topics)", mask_url(settings.log_url)),  # a Kafka URL's query may hold sasl.password
        ("log (streams)", mask_url(settings.stream_log_url)),
        ("lake", mask_url(settings.lake_url)),
        ("batch tables", join(settings.tables_url, "batch")),
        ("stream tables", stream_table(settings, "pin").rsplit("/", 1)[0]),
    ]
    if options.export_dir is not None:
        rows.append(("CSV exports", str(options.export_dir.resolve())))
    for label, where in rows:
        console.print(f"  {label:16} {where}")
    timing = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in report.stages.items())
    console.print(f"  stages: {timing}")
    shown = [mask_url(flag) for flag in options.hint_flags]  # a --db password never reaches a terminal log
    flags = "".join(f" {shlex.quote(flag)}" for flag in shown)
    if shown != list(options.hint_flags):
        console.print(f"  (passwords shown as {MASK}: put yours back to run these)")
    console.print(f"  dashboard: {options.command} dashboard{flags}", soft_wrap=True)
    console.print(f"  metrics:   {options.command} metrics{flags}", soft_wrap=True)
    console.print(f"  status:    {options.command} status{flags}", soft_wrap=True)
