"""What every command shares: the pipeline location flags and how flags become Settings."""

from __future__ import annotations

import functools
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
