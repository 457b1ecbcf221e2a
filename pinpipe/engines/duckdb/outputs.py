"""The ten outputs on DuckDB, from the outputs' aggregates (``transform.aggregates``), and their Delta tables.

The aggregates are kept in their own Delta table (:data:`AGGREGATES`), whose commit records, per cleaned
table, the digest of the bookkeeping (``KindState.digest``) of the rows they describe. A run whose three
cleaned tables still hold those rows before it appends reads only its new rows (and the old rows with the
same ``ind``) and aggregates them; any other run (a rebuild, tables another engine or an older pinpipe
wrote, a run killed between its commits) aggregates the whole cleaned tables again.

The table may hold several partial rows per group: the outputs sum the counts and pick the best posters
again whatever the split (``aggregates.output_sql``). An incremental run appends the aggregates of its
added rows unmerged (a small append instead of merging and rewriting every group) as long as the rows
appended since the last merged write stay within that write's rows; else it writes them merged (the
commit records both counts, :func:`aggregates_metadata`), so a table is at most about twice its merged size.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pinpipe.config import Settings
from pinpipe.delta import open_table_if_exists, replace_table
from pinpipe.engines.duckdb.parts import table_source
from pinpipe.engines.duckdb.sql import arrow
from pinpipe.engines.increments import FORMAT, KindPlan, KindState, last_metadata, write_table
from pinpipe.schema import KINDS, Kind
from pinpipe.tables import batch_table
from pinpipe.transform.aggregates import (
    AGGREGATE_TYPES,
    aggregates_sql,
    merged_sql,
    new_join_sql,
    output_sql,
)
from pinpipe.transform.export import order_by_sql
from pinpipe.transform.queries import COLUMNS_READ, JOINS, OUTPUTS, BatchOptions, join_sql

AGGREGATES = "output_aggregates"
"""Name of the aggregates' table among the batch tables (``tables.batch_table``)."""
PARTIAL = "partial_aggregates"
"""DuckDB view of an incremental run's aggregates before merging: :data:`KEPT` and :data:`ADDED`."""
KEPT = "kept_aggregates_read"
"""DuckDB table of the kept aggregates an incremental run starts from (:func:`add_aggregates`)."""
ADDED = "added_aggregates"
"""DuckDB table of the aggregates of the rows an incremental run added (:func:`add_aggregates`)."""


@dataclass(frozen=True)
class Kept:
    """The kept aggregates an incremental run starts from: a source of them, and their rows."""

    source: str
    merged_rows: int | None
    """Rows of the table's last merged write (None: not recorded, so the next write merges)."""
    appended_rows: int
    """Rows appended unmerged since that write."""

    def append(self, added_rows: int) -> bool:
        """Whether ``added_rows`` more rows are appended unmerged (:func:`aggregates_query`), rather than
        all written merged: while the appended rows stay within the merged ones."""
        return self.merged_rows is not None and self.appended_rows + added_rows <= self.merged_rows


def aggregates_metadata(states: Mapping[Kind, KindState], merged_rows: int, appended_rows: int) -> str:
    digests = {kind: states[kind].digest() for kind in KINDS}
    rows = {"merged": merged_rows, "appended": appended_rows}
    return json.dumps({"format": FORMAT, "tables": digests, "rows": rows}, separators=(",", ":"))


def kept_aggregates(con: Any, url: str, plans: Mapping[Kind, KindPlan]) -> Kept | None:
    """The aggregates table at ``url``, if it describes the rows the three cleaned tables held before
    this run and this run only appends to them; else None (they are computed again)."""
    befores = {kind: plan.before for kind, plan in plans.items() if plan.rebuild is None}
    if len(befores) != len(KINDS) or any(b is None for b in befores.values()):
        return None
    table = open_table_if_exists(url)
    text = None if table is None else last_metadata(url, table)
    if table is None or text is None:
        return None
    value = json.loads(text)
    digests = value.get("tables") if value.get("format") == FORMAT else None
    if digests != {kind: b.digest() for kind, b in befores.items() if b is not None}:
        return None
    rows = value.get("rows") or {}
    source = table_source(con, "kept_aggregates", url, table, AGGREGATE_TYPES)
    return Kept(source, rows.get("merged"), rows.get("appended", 0))


def load_kept_aggregates(con: Any, url: str, plans: Mapping[Kind, KindPlan]) -> Kept | None:
    """Table :data:`KEPT` holding the aggregates :func:`kept_aggregates` finds (None, and no table, when
    there are none to use), for :func:`add_aggregates` to add to: read ahead by a cursor that is free.
    The source returned is :data:`KEPT`."""
    kept = kept_aggregates(con, url, plans)
    if kept is None:
        return None
    con.execute(f"CREATE TABLE {KEPT} AS SELECT {', '.join(AGGREGATE_TYPES)} FROM {kept.source}")
    return Kept(KEPT, kept.merged_rows, kept.appended_rows)


def add_aggregates(con: Any, kept: str, new: Mapping[Kind, str], old: Mapping[Kind, str]) -> int:
    """Table :data:`ADDED`, the aggregates of the rows the joins gain from the cleaned rows ``new`` (kind
    -> source) appended to ``old``, and view :data:`PARTIAL`, the ``kept`` ones and those, not merged:
    several rows per group, from which ``output_sql`` gives the outputs of the merged ones (it sums the
    counts and picks the best posters again) and :func:`merged_sql` the merged ones to keep. ``kept`` is
    read into table :data:`KEPT` unless it is that table (:func:`load_kept_aggregates`). Returns the rows
    of :data:`ADDED`."""
    cols = ", ".join(AGGREGATE_TYPES)
    if kept != KEPT:
        con.execute(f"CREATE TABLE {KEPT} AS SELECT {cols} FROM {kept}")
    for join in JOINS:  # built once: each is read by several aggregates
        con.execute(f"CREATE TEMP TABLE added_{join} AS {new_join_sql(join, new, old)}")
    user = f"(SELECT {', '.join(COLUMNS_READ['user'])} FROM {new['user']})"
    added = aggregates_sql("added_pin_geo", "added_pin_user", user)
    try:  # regular tables and views: the outputs and the write read them on other cursors
        rows = con.execute(f"CREATE TABLE {ADDED} AS SELECT {cols} FROM ({added}) AS added").fetchall()
        con.execute(f"CREATE VIEW {PARTIAL} AS SELECT * FROM {KEPT} UNION ALL SELECT * FROM {ADDED}")
    finally:
        for join in JOINS:
            con.execute(f"DROP TABLE IF EXISTS added_{join}")
    return int(rows[0][0])


def all_aggregates(con: Any) -> None:
    """Table ``aggregates`` from the whole ``cleaned_<kind>`` tables; the two joins are built once, then
    the cleaned pin and geo rows may go."""
    for join in JOINS:
        con.execute(f"CREATE TEMP TABLE {join} AS {join_sql(join)}")
    con.execute("DROP TABLE cleaned_pin")
    con.execute("DROP TABLE cleaned_geo")
    try:
        con.execute(f"CREATE TABLE aggregates AS {aggregates_sql('pin_geo', 'pin_user', 'cleaned_user')}")
    finally:
        for join in JOINS:
            con.execute(f"DROP TABLE {join}")


def output_query(name: str, options: BatchOptions, state: str = "aggregates") -> str:
    """The statement of output ``name`` from the aggregates in table ``state``, rows in export order
    (``transform.export``)."""
    return f"{output_sql(name, state, options)} {order_by_sql(name)}"


def outputs(con: Any, options: BatchOptions, state: str = "aggregates") -> dict[str, Any]:
    """The ten outputs from the aggregates in table ``state``, as Arrow tables of ``arro3``
    (``sql.arrow``)."""
    return {name: arrow(con, output_query(name, options, state)) for name in OUTPUTS}


def aggregates_query(state: str = "aggregates", merge: bool = False) -> str:
    """The aggregates to keep, typed as :data:`AGGREGATE_TYPES`: table ``state`` (:data:`ADDED` to
    append them), merged first with ``merge`` (:data:`PARTIAL`)."""
    cols = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in AGGREGATE_TYPES.items())
    return f"SELECT {cols} FROM ({merged_sql(state) if merge else f'SELECT * FROM {state}'}) AS a"


def write_aggregates(url: str, data: Any, states: Mapping[Kind, KindState], kept: Kept | None = None) -> None:
    """Write the aggregates ``data`` (:func:`aggregates_query`), recording the cleaned rows they describe
    (``states``, the tables' bookkeeping after the run): appended to ``kept`` when given (the added rows'
    aggregates, unmerged), else replacing the table (merged)."""
    if kept is None:
        write_table(url, data, append=False, metadata=aggregates_metadata(states, data.num_rows, 0))
        return
    assert kept.merged_rows is not None  # appended only to a table whose merged rows are known
    metadata = aggregates_metadata(states, kept.merged_rows, kept.appended_rows + data.num_rows)
    write_table(url, data, append=True, metadata=metadata)


def write_output(settings: Settings, name: str, table: Any) -> None:
    """Output ``name`` replaces its Delta table."""
    replace_table(batch_table(settings, name), table)
