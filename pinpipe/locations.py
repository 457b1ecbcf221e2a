"""Locations: the one place a local path becomes a URL and a URL becomes a path again.

Every location pinpipe derives or accepts is a URL, and URLs are percent-encoded (RFC 3986), so a path
holding ``#``, ``?``, ``%``, spaces or non-ASCII stays one path instead of ending at a fragment or a
query: ``/runs/p#1/lake`` is ``file:///runs/p%231/lake``. Accepted forms:

- ``file:///abs/dir`` (also ``file://localhost/abs/dir``): the lake or the tables on local disk;
- ``embedded:///abs/dir[?options]``: the embedded log;
- ``sqlite:////abs/file.db`` and the other SQLAlchemy URLs: the source database;
- ``s3://bucket/prefix``, ``kafka://host:port``, ``kinesis://[region]``: remote, no local path.

A host in a local URL (``file://tmp/x``: host ``tmp``, path ``/x``) is refused, never read as ``/x``.

The libraries behind the tables take paths in their own forms, made here too: delta-rs a plain path
(:func:`delta_uri`, which refuses the characters it mishandles), DuckDB a glob pattern
(:func:`duckdb_path`), Spark a Hadoop path (:func:`hadoop_uri`).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from urllib.parse import quote, unquote, urlsplit

from pinpipe.errors import ConfigError

LOCAL_SCHEMES = ("file", "embedded")
"""URL schemes whose location is a directory on this machine."""

_DELTA_UNSAFE = re.compile(r"%[0-9A-Fa-f]{2}|[\[\]^|\\\x00-\x1f\x7f]")
"""What delta-rs 1.6 cannot address in a local table path: a ``%XX`` escape is decoded once more when the
table is read back (``%2F`` names another directory), ``[ ] ^ |`` make it panic, and under a ``\\`` its
vacuum deletes files the table still reads."""

_DUCKDB_GLOB = re.compile(r"[*?\[]")


def scheme(url: str) -> str:
    return urlsplit(url).scheme


def path_url(url_scheme: str, path: str | Path) -> str:
    """``file``/``embedded`` URL of ``path`` (made absolute), every reserved character percent-encoded."""
    absolute = Path(path).absolute()
    return f"{url_scheme}://{quote(absolute.as_posix(), safe='/')}"


def file_url(path: str | Path) -> str:
    return path_url("file", path)


def embedded_url(path: str | Path) -> str:
    return path_url("embedded", path)


def sqlite_url(path: str | Path) -> str:
    """SQLAlchemy URL of a SQLite file: SQLAlchemy percent-decodes the database part once."""
    return f"sqlite:///{quote(Path(path).absolute().as_posix(), safe='/')}"


def local_path(url: str) -> Path | None:
    """The local path of a ``file``/``embedded``/``sqlite`` URL; None for remote locations (and an
    in-memory SQLite). A local URL with a host or a relative path is a ConfigError."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(
                f"{url!r} names host {parts.netloc!r}: a {parts.scheme} URL takes an absolute path after"
                f" three slashes ({parts.scheme}:///abs/dir)"
            )
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ConfigError(f"{url!r} has no absolute path: use {parts.scheme}:///abs/dir")
        return Path(path)
    if parts.scheme == "sqlite" or parts.scheme.startswith("sqlite+"):
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            database = make_url(url).database
        except (ArgumentError, ValueError) as exc:
            raise ConfigError(f"invalid database URL {url!r}: expected sqlite:////abs/file.db") from exc
        return None if database in (None, "", ":memory:") else Path(database)
    return None


def join(url: str, *names: str) -> str:
    """The location ``names`` below ``url``, each name one path segment (percent-encoded)."""
    for name in names:
        if not name or name in (".", "..") or "/" in name:
            raise ConfigError(f"invalid location name {name!r} below {url!r}")
    return "/".join([url.rstrip("/"), *(quote(n, safe="") for n in names)])


def is_below(url: str, root: str) -> bool:
    """Whether ``url`` is strictly below ``root`` (same scheme and host, path segments underneath)."""
    child, parent = urlsplit(url), urlsplit(root)
    if (child.scheme, child.netloc) != (parent.scheme, parent.netloc):
        return False
    inner = PurePosixPath(unquote(child.path))
    outer = PurePosixPath(unquote(parent.path))
    if ".." in inner.parts:
        return False
    return inner != outer and inner.is_relative_to(outer)


def s3_location(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, decoded key prefix without slashes around it)."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ConfigError(f"invalid S3 URL {url!r}: use s3://bucket/prefix")
    return parts.netloc, unquote(parts.path).strip("/")


def delta_uri(url: str) -> str:
    """The form delta-rs takes: a plain path for local tables (ConfigError for a path it cannot
    address, see :data:`_DELTA_UNSAFE`), the URL otherwise."""
    path = local_path(url) if scheme(url) in LOCAL_SCHEMES else None
    if path is None:
        return url
    found = _DELTA_UNSAFE.search(str(path))
    if found:
        raise ConfigError(
            f"delta-rs cannot keep a table at {path} (it holds {found.group(0)!r}): a percent escape"
            " (%XX), [ ] ^ | \\ and control characters are not supported in a local table path;"
            " choose another workdir or set engine.tables_url"
        )
    return str(path)


def duckdb_path(path: str | Path) -> str:
    """``path`` as DuckDB's readers take it literally: they expand ``* ? [`` as a glob (a workdir
    ``p?1`` would also read ``pX1``), so each is written as a one-character class."""
    text = str(path)
    if "\\" in text and _DUCKDB_GLOB.search(text):
        raise ConfigError(f"DuckDB cannot read {text} literally: it holds both a backslash and * ? [")
    return _DUCKDB_GLOB.sub(lambda m: f"[{m.group(0)}]", text)


def hadoop_uri(url: str) -> str:
    """The form Spark takes: Hadoop reads the path after ``file://`` or ``s3://bucket/`` as it is (no
    percent-decoding), so it gets the decoded path."""
    if scheme(url) == "s3":
        bucket, prefix = s3_location(url)
        return f"s3://{bucket}/{prefix}"
    path = local_path(url) if scheme(url) == "file" else None
    return url if path is None else f"file://{path.as_posix()}"
