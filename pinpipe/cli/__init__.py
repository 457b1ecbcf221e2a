"""The ``pinpipe`` command: one group per pipeline stage, each in its own module, loaded on demand."""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import click

from pinpipe import __version__
from pinpipe.errors import PinpipeError

# command name -> (module, attribute, one-line help shown by `pinpipe --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "source": ("pinpipe.cli.source", "source", "Create and fill the source database (seed, load)."),
    "api": ("pinpipe.cli.api", "api", "Serve the ingestion API (Kafka REST Proxy v2 and v3, Kinesis)."),
    "emulate": ("pinpipe.cli.emulate", "emulate", "Play users posting: source rows to the ingestion API."),
    "sink": ("pinpipe.cli.sink", "sink", "Write the batch topics to the lake, exactly once."),
    "batch": ("pinpipe.cli.batch", "batch", "Clean the lake and answer the historical questions."),
    "stream": ("pinpipe.cli.stream", "stream", "Clean the streams into Delta tables in real time."),
    "metrics": ("pinpipe.cli.metrics", "metrics", "Show the real-time metrics."),
    "dashboard": ("pinpipe.cli.dashboard", "dashboard", "Serve the dashboard web page and its JSON API."),
    "demo": ("pinpipe.cli.demo", "demo", "Run the whole pipeline on the embedded defaults."),
    "status": ("pinpipe.cli.status", "status", "Topics, end offsets and consumer lag."),
    "config": ("pinpipe.cli.config", "config", "Show the effective settings and where each came from."),
}


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs, so ``pinpipe --help`` stays fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[cmd_name]
        with _collector_paused() if module not in sys.modules else contextlib.nullcontext():
            command: click.Command = getattr(importlib.import_module(module), attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, _, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


_ONE_COMMAND = False
"""This process runs one command and leaves (:func:`run_then_exit`)."""


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """In a process that runs one command, Python's cyclic garbage collector is paused while the command's
    modules are imported, and what they created is then frozen (left out of later collections): the
    imports make a few hundred thousand objects that live as long as the process and no garbage, which
    the collector would otherwise walk some 80 times (~7 ms of a command's start). Elsewhere (tests calling
    :func:`main`) nothing changes: freezing would keep the host's garbage too."""
    if not _ONE_COMMAND or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pinpipe")
def cli() -> None:
    """pinpipe: a Pinterest-style event data pipeline, embedded by default, on Kafka/Spark/S3 at scale.

    Settings come from defaults < pinpipe.toml < .env < PINPIPE_... environment < flags;
    `pinpipe config show` prints them and where each came from.
    """


def main(argv: list[str] | None = None) -> Any:
    """Entry point: a PinpipeError is one line on stderr and exit status 1, never a traceback."""
    try:
        return cli.main(args=argv, prog_name="pinpipe", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except PinpipeError as exc:
        click.echo(f"pinpipe: error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)


def run() -> None:
    """Console entry point (``pinpipe``, ``python -m pinpipe``): :func:`main`, then exit at once."""
    run_then_exit(main)


def run_then_exit(entry: Callable[[], object]) -> NoReturn:
    """Call ``entry``, then leave with its status without the interpreter's teardown.

    pyarrow's and DuckDB's native thread pools can abort the interpreter's own teardown ("terminate called
    without an active exception", status 134) after a command has finished and printed everything. Once
    the command has returned, output and logs are flushed and nothing else needs cleaning up, so the
    process leaves with the command's status without that teardown. Benchmarks use it too.
    """
    global _ONE_COMMAND
    _ONE_COMMAND = True
    code = 0
    try:
        entry()
    except SystemExit as exc:
        if isinstance(exc.code, int):
            code = exc.code
        elif exc.code is not None:
            print(exc.code, file=sys.stderr)
            code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
