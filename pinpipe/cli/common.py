"""What every command shares: the pipeline location flags and how flags become Settings."""

from __future__ import annotations

import functools
import logging
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pinpipe.config import Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])

_LOCATION_FLAGS = {
    "workdir": "workdir",
    "db": "source.url",
    "log": "log.url",
    "stream_log": "log.stream_url",
    "lake": "lake.url",
    "prefix": "prefix",
}


no_progress_option = click.option(
    "-q", "--quiet", "--no-progress", "no_progress", is_flag=True, help="Do not draw the progress bar."
)
"""``-q/--quiet/--no-progress`` of the commands that draw one progress bar (passed as ``no_progress``)."""


def pipeline_options(command: F) -> F:
    """Add ``--workdir --db --log --stream-log --lake --prefix`` and pass ``settings`` instead of them.

    Extra flags of a command are turned into setting overrides by ``settings_overrides`` given to
    :func:`build_settings` inside the command; these six are handled here for every command alike.
    """

    @click.option(
        "--workdir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Where the embedded source DB, log, lake and tables live [default: ./.pinpipe].",
    )
    @click.option(
        "--db", default=None, help="Source database SQLAlchemy URL [default: sqlite:///WORKDIR/source.db]."
    )
    @click.option(
        "--log", "log", default=None, help="Log URL: embedded:///DIR, kafka://HOST:PORT, kinesis:// ."
    )
    @click.option(
        "--stream-log", default=None, help="Log URL for the Kinesis-style streams [default: --log]."
    )
    @click.option(
        "--lake", default=None, help="Lake URL: file:///DIR or s3://BUCKET/PREFIX [default: WORKDIR/lake]."
    )
    @click.option("--prefix", default=None, help="Tenant prefix: 1-64 of a-z 0-9 _ [default: 0a1b2c3d4e5f].")
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        locations = {_LOCATION_FLAGS[name]: kwargs.pop(name) for name in _LOCATION_FLAGS}
        kwargs["locations"] = locations
        return command(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def given_flags(locations: dict[str, Any]) -> tuple[str, ...]:
    """The location flags a command was given, as they would be typed again (``--log kafka://...``), for
    hints that name the next command to run on the same pipeline."""
    flags: list[str] = []
    for name, setting in _LOCATION_FLAGS.items():
        value = locations.get(setting)
        if value is not None:
            flags += [f"--{name.replace('_', '-')}", str(value)]
    return tuple(flags)


def command_name() -> str:
    """How to type the pinpipe command again: ``pinpipe`` when that is on PATH, else the script run
    (``.venv/bin/pinpipe`` from the repository root), else ``python -m pinpipe``."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is None or script.name != "pinpipe":
        return "pinpipe" if shutil.which("pinpipe") else f"{Path(sys.executable)} -m pinpipe"
    on_path = shutil.which("pinpipe")
    if on_path is not None and Path(on_path).absolute() == script.absolute():
        return "pinpipe"
    here = Path.cwd()
    return str(script.absolute().relative_to(here)) if script.absolute().is_relative_to(here) else str(script)


export_option = click.option(
    "--export",
    "export_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write DIR/<output>.csv for the ten outputs.",
)
"""``--export DIR`` (passed as ``export_dir``) of the commands that run the batch job."""


def build_settings(locations: dict[str, Any], **overrides: Any) -> Settings:
    """Settings from defaults < pinpipe.toml < env < flags. ``overrides`` use ``section.field`` names;
    None values (flags not given) leave lower layers alone."""
    return load_settings(**locations, **overrides)


def log_warnings() -> None:
    """Warnings of a server command (a wrong key, the open-API notice) to stderr as ``pinpipe: WARNING: ...``,
    unless logging is already set up (tests, an embedding program)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="pinpipe: %(levelname)s: %(message)s")
