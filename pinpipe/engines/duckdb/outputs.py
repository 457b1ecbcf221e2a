"""The ten outputs on DuckDB, from the outputs' aggregates (``transform.aggregates``), and their Delta tables.

The aggregates are kept in their own Delta table (:data:`AGGREGATES`), whose commit records, per cleaned
table, the digest of the bookkeeping (``KindState.digest``) of the rows they describe. A run whose three
cleaned tables still hold those rows before it appends reads only its new rows (and the old rows with the
same ``ind``), aggregates them and merges; any other run (a rebuild, tables another engine or an older
pinpipe wrote, a run killed between its commits) aggregates the whole cleaned tables again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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
"""DuckDB table of an incremental run's aggregates before merging (:func:`add_aggregates`)."""


def aggregates_metadata(states: Mapping[Kind, KindState]) -> str:
    digests = {kind: states[kind].digest() for kind in KINDS}
    return json.dumps({"format": FORMAT, "tables": digests}, separators=(",", ":"))


def kept_aggregates(con: Any, url: str, plans: Mapping[Kind, KindPlan]) -> str | None:
    """The aggregates table at ``url`` as a source, if it describes the rows the three cleaned tables
    held before this run and this run only appends to them; else None (they are computed again)."""
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
    return table_source(con, "kept_aggregates", url, table, AGGREGATE_TYPES)


def load_kept_aggregates(con: Any, url: str, plans: Mapping[Kind, KindPlan]) -> bool:
    """Table :data:`PARTIAL` holding the aggregates :func:`kept_aggregates` finds (False, and no table, when
    there are none to use), for :func:`add_aggregates` to add to: read ahead by a cursor that is free."""
    kept = kept_aggregates(con, url, plans)
    if kept is None:
        return False
    con.execute(f"CREATE TABLE {PARTIAL} AS SELECT {', '.join(AGGREGATE_TYPES)} FROM {kept}")
    return True


def add_aggregates(con: Any, kept: str, new: Mapping[Kind, str], old: Mapping[Kind, str]) -> None:
    """Table :data:`PARTIAL`: the ``kept`` aggregates and those of the rows the joins gain from the
    cleaned rows ``new`` (kind -> source) appended to ``old``, not merged: several rows per group, from
    which ``output_sql`` gives the outputs of the merged ones (it sums the counts and picks the best
    posters again) and :func:`merged_sql` the merged ones to keep. ``kept`` may be :data:`PARTIAL` itself
    (:func:`load_kept_aggregates`): the added aggregates are then inserted into it."""
    for join in JOINS:  # built once: each is read by several aggregates
        con.execute(f"CREATE TEMP TABLE added_{join} AS {new_join_sql(join, new, old)}")
    user = f"(SELECT {', '.join(COLUMNS_READ['user'])} FROM {new['user']})"
    added = aggregates_sql("added_pin_geo", "added_pin_user", user)
    cols = ", ".join(AGGREGATE_TYPES)
    # materialized once: every output and the merge read it (a regular table: other cursors read it)
    source = f"SELECT {cols} FROM ({added}) AS added"
    try:
        if kept == PARTIAL:
            con.execute(f"INSERT INTO {PARTIAL} {source}")
        else:
            con.execute(f"CREATE TABLE {PARTIAL} AS SELECT {cols} FROM {kept} UNION ALL {source}")
    finally:
        for join in JOINS:
            con.execute(f"DROP TABLE IF EXISTS added_{join}")


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
    """The aggregates to keep, typed as :data:`AGGREGATE_TYPES`: table ``state``, merged first with
    ``merge`` (:data:`PARTIAL`)."""
    cols = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in AGGREGATE_TYPES.items())
    return f"SELECT {cols} FROM ({merged_sql(state) if merge else f'SELECT * FROM {state}'}) AS a"


def write_aggregates(url: str, data: Any, states: Mapping[Kind, KindState]) -> None:
    """Replace the aggregates table with ``data`` (:func:`aggregates_query`), recording the rows they
    describe."""
    write_table(url, data, append=False, metadata=aggregates_metadata(states))


def write_output(settings: Settings, name: str, table: Any) -> None:
    """Output ``name`` replaces its Delta table."""
    replace_table(batch_table(settings, name), table)
