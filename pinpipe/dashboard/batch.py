"""The batch outputs (SPEC §6) as the page shows them: which ones exist, their rows, how to chart them.

Rows are read from the Delta tables the batch job commits at :func:`pinpipe.tables.batch_table`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pinpipe.config import Settings
from pinpipe.dashboard.delta import DeltaSnapshot, read_delta, table_rows
from pinpipe.tables import batch_table

Chart = Literal["bar", "column", "table"]

FILL_HINT = "no batch outputs yet: run `pinpipe batch run` (or `pinpipe demo`)"


@dataclass(frozen=True)
class OutputInfo:
    """How one output is presented: its question, its group columns (label) and its value column."""

    title: str
    groups: tuple[str, ...]
    value: str
    chart: Chart
    note: str = ""


OUTPUTS: dict[str, OutputInfo] = {
    "popular_category_by_country": OutputInfo(
        "Most popular category per country", ("country",), "category_count", "bar", "category"
    ),
    "popular_category_by_year": OutputInfo(
        "Most popular category per year (2018–2022)", ("post_year",), "category_count", "column", "category"
    ),
    "median_followers_by_age_group": OutputInfo(
        "Median followers by age group", ("age_group",), "median_follower_count", "column"
    ),
    "median_followers_by_join_year": OutputInfo(
        "Median followers by join year (2015–2020)", ("post_year",), "median_follower_count", "column"
    ),
    "popular_category_by_age_group": OutputInfo(
        "Most popular category per age group", ("age_group",), "category_count", "column", "category"
    ),
    "users_joined_by_year": OutputInfo(
        "Users joined per year (2015–2020)", ("post_year",), "number_users_joined", "column"
    ),
    "posts_per_category_by_year": OutputInfo(
        "Posts per category per year (2018–2022)", ("post_year", "category"), "category_count", "table"
    ),
    "median_followers_by_join_year_and_age_group": OutputInfo(
        "Median followers by join year and age group",
        ("age_group", "post_year"),
        "median_follower_count",
        "table",
    ),
    "top_user_by_country": OutputInfo(
        "Top user (most followers) per country", ("country",), "follower_count", "table", "poster_name"
    ),
    "top_country_by_followers": OutputInfo(
        "Country of the user with the most followers", ("country",), "follower_count", "table"
    ),
}


def read_output(settings: Settings, name: str) -> DeltaSnapshot | None:
    """The latest committed version of output ``name`` (a key of :data:`OUTPUTS`), None if not written."""
    return read_delta(batch_table(settings, name))


def output_rows(snapshot: DeltaSnapshot, info: OutputInfo) -> list[dict[str, Any]]:
    """Rows sorted by the group columns (as the CSV export is), nulls last."""
    rows = table_rows(snapshot.table)
    present = [c for c in info.groups if c in snapshot.table.column_names]

    def key(row: dict[str, Any]) -> tuple[tuple[bool, Any], ...]:
        return tuple((row[c] is None, row[c] if row[c] is not None else 0) for c in present)

    return sorted(rows, key=key)
