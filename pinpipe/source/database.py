"""The source database: the original's three tables, on any SQLAlchemy URL (SQLite, MySQL, PostgreSQL).

Tables are named and typed as the original MySQL ones (``pinterest_data`` keyed by ``index``,
``geolocation_data`` and ``user_data`` keyed by ``ind``); keys are never auto-increment because the row
index is the join key of the three tables. Only portable SQLAlchemy Core is used, so one definition
serves every backend. Coordinates are DOUBLE (the original's single-precision FLOAT would not round-trip
the values exactly through every driver).
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from pinpipe._optional import install_command
from pinpipe.errors import SourceError
from pinpipe.schema import DATETIME_FORMAT, FIELDS, KEY_FIELD, KINDS, SOURCE_TABLES, Kind

metadata = sa.MetaData()


def _table(name: str, *columns: sa.Column[Any]) -> sa.Table:
    """A source table, utf8mb4 InnoDB on MySQL like the original's."""
    return sa.Table(name, metadata, *columns, mysql_charset="utf8mb4", mysql_engine="InnoDB")


pinterest_data = _table(
    "pinterest_data",
    sa.Column("index", sa.Integer, primary_key=True, autoincrement=False, quote=True),
    sa.Column("unique_id", sa.String(64)),
    sa.Column("title", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("poster_name", sa.Text),
    sa.Column("follower_count", sa.String(32)),
    sa.Column("tag_list", sa.Text),
    sa.Column("is_image_or_video", sa.String(64)),
    sa.Column("image_src", sa.Text),
    sa.Column("downloaded", sa.Integer),
    sa.Column("save_location", sa.String(255)),
    sa.Column("category", sa.String(64)),
)

geolocation_data = _table(
    "geolocation_data",
    sa.Column("ind", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("timestamp", sa.DateTime),
    sa.Column("latitude", sa.Double),
    sa.Column("longitude", sa.Double),
    sa.Column("country", sa.String(255)),
)

user_data = _table(
    "user_data",
    sa.Column("ind", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("first_name", sa.String(255)),
    sa.Column("last_name", sa.String(255)),
    sa.Column("age", sa.Integer),
    sa.Column("date_joined", sa.DateTime),
)

TABLES: dict[Kind, sa.Table] = {"pin": pinterest_data, "geo": geolocation_data, "user": user_data}
assert all(TABLES[k].name == SOURCE_TABLES[k] and list(TABLES[k].c.keys()) == list(FIELDS[k]) for k in KINDS)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def shown_url(url: str) -> str:
    """A database URL with its password masked, for messages and output (never print secrets)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # not a URL SQLAlchemy parses: mask user:password@ by hand
        return re.sub(r"(//[^:/@]*):[^@/]*@", r"\1:***@", url)


def open_source(url: str, *, create: bool = True) -> Engine:
    """An engine on the source database at ``url``, its three tables created when missing.

    A bad or unreachable URL raises SourceError with one line naming the URL (password hidden).
    """
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018  # a non-numeric port fails here, as ValueError
    except (ArgumentError, ValueError) as exc:
        shown = shown_url(url)
        raise SourceError(f"invalid database URL {shown}: expected e.g. sqlite:///path/source.db") from exc
    if parsed.get_backend_name() == "mysql" and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database)
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.exists():
            raise SourceError(f"no source database at {path}: run `pinpipe source seed` or `source load`")
    try:
        engine = sa.create_engine(parsed, pool_pre_ping=True)
    except NoSuchModuleError as exc:
        raise SourceError(f"unsupported database URL {shown_url(url)}: {_first_line(exc)}") from exc
    except ImportError as exc:
        extra = "postgres" if parsed.get_backend_name() == "postgresql" else "mysql"
        raise SourceError(
            f"database driver for {shown_url(url)} is not installed ({exc.name}): "
            f"install it with {install_command(extra)}"
        ) from exc
    except (ArgumentError, SQLAlchemyError) as exc:
        raise SourceError(f"cannot use database {shown_url(url)}: {_first_line(exc)}") from exc
    try:
        with engine.begin() as conn:
            if create:
                metadata.create_all(conn)
            else:
                missing = [t for t in metadata.tables if not sa.inspect(conn).has_table(t)]
                if missing:
                    raise SourceError(
                        f"source database {shown_url(url)} has no table {', '.join(missing)}: "
                        "run `pinpipe source seed` or `pinpipe source load`"
                    )
    except SourceError:
        engine.dispose()
        raise
    except (DBAPIError, SQLAlchemyError) as exc:
        engine.dispose()
        raise SourceError(f"cannot open database {shown_url(url)}: {_first_line(exc)}") from exc
    return engine


def count_rows(engine: Engine) -> dict[Kind, int]:
    with engine.connect() as conn:
        return {
            k: conn.execute(sa.select(sa.func.count()).select_from(TABLES[k])).scalar_one() for k in KINDS
        }


def insert_rows(conn: sa.Connection, kind: Kind, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert one chunk with a single driver ``executemany`` (the caller owns the transaction).

    Every row must hold every column. The statement is compiled once per dialect and values pass through
    each column type's own bind processor, so this does what ``conn.execute(insert, rows)`` does without
    its per-row bookkeeping (about twice as fast on large chunks), and stays portable to every backend.
    """
    if not rows:
        return
    sql, names, processors = _compiled_insert(conn.dialect, kind)
    values = operator.itemgetter(*names)
    converted = [(i, p) for i, p in enumerate(processors) if p is not None]
    params: list[Any]
    if converted:
        params = []
        for row in rows:
            got = list(values(row))
            for i, process in converted:
                got[i] = process(got[i])
            params.append(tuple(got))
    else:
        params = [values(row) for row in rows]
    if not conn.dialect.positional:
        params = [dict(zip(names, got, strict=True)) for got in params]
    conn.exec_driver_sql(sql, params)


@functools.cache
def _compiled_insert(dialect: sa.Dialect, kind: Kind) -> tuple[str, tuple[str, ...], tuple[Any, ...]]:
    table = TABLES[kind]
    compiled = table.insert().compile(dialect=dialect)
    bind_names = compiled.positiontup if dialect.positional else list(compiled.binds)
    by_bind = {bind: compiled.binds[bind].key for bind in compiled.binds}
    names = tuple(by_bind[b] for b in bind_names or ())
    processors = tuple(table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names)
    return str(compiled), names, processors


def to_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A source row as the JSON-ready dict the emulator sends (datetimes as ``%Y-%m-%d %H:%M:%S``).

    Keys become plain ``str`` (SQLAlchemy hands back its ``quoted_name`` for the quoted ``index``).
    """
    return {str(k): v.strftime(DATETIME_FORMAT) if isinstance(v, datetime) else v for k, v in row.items()}


class SqlRowReader:
    """Reads one row per table by key (``WHERE ind = :row``), with prepared statements reused."""

    def __init__(self, engine: Engine) -> None:
        self._conn = engine.connect()
        self._queries = {
            kind: sa.select(TABLES[kind]).where(TABLES[kind].c[KEY_FIELD[kind]] == sa.bindparam("row"))
            for kind in KINDS
        }

    def read(self, row: int) -> dict[Kind, dict[str, Any] | None]:
        """The record of each kind at index ``row`` (None where a table has no such row).

        The read transaction ends at once, so a long emulation never holds a snapshot or a lock.
        """
        found: dict[Kind, dict[str, Any] | None] = {}
        try:
            for kind in KINDS:
                hit = self._conn.execute(self._queries[kind], {"row": row}).mappings().first()
                found[kind] = None if hit is None else to_record(dict(hit))
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot read source row {row}: {_first_line(exc)}") from exc
        finally:
            self._conn.rollback()
        return found

    def close(self) -> None:
        self._conn.close()
