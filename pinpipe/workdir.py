"""The workdir as commands meet it: readers refuse a missing one, creators say they make one.

A command run from the wrong folder would otherwise create ``./.pinpipe`` silently and report zeros.
Only locations derived from the workdir count: a command whose log, lake and tables all live elsewhere
(Kafka, S3) does not need one.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import click

from pinpipe import locations
from pinpipe.config import Settings
from pinpipe.errors import ConfigError


def local_path(url: str) -> Path | None:
    """The local path behind a location (:func:`pinpipe.locations.local_path`), or a Kinesis log's state
    file (``?state=PATH``); None for remote locations."""
    parts = urlsplit(url)
    if parts.scheme == "kinesis":
        state = parse_qs(parts.query).get("state")
        return Path(state[0]) if state else None
    return locations.local_path(url)


def in_workdir(settings: Settings, url: str) -> bool:
    """True when ``url`` is local state inside the workdir."""
    path = local_path(url)
    return path is not None and path.resolve().is_relative_to(settings.workdir.resolve())


def require_workdir(settings: Settings, *urls: str) -> None:
    """ConfigError (one line, exit 1, nothing created) when the workdir does not exist and one of
    ``urls``, the locations the command reads, lives inside it."""
    if settings.workdir.is_dir() or not any(in_workdir(settings, url) for url in urls):
        return
    raise ConfigError(
        f"no workdir at {settings.workdir.resolve()}: run this from the folder holding .pinpipe, give "
        "--workdir DIR, or create one with `pinpipe demo` (or source seed/load and api serve)"
    )


def note_new_workdir(settings: Settings, *urls: str) -> None:
    """Say on stderr that the command creates the workdir, when it does not exist yet and one of
    ``urls``, the locations the command writes, lives inside it."""
    if settings.workdir.is_dir() or not any(in_workdir(settings, url) for url in urls):
        return
    click.echo(f"pinpipe: creating the workdir {settings.workdir.resolve()}", err=True)
