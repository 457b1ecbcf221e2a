"""The batch outputs (docs/data-rules.md) as the page shows them: which exist, their rows, how to chart them.

Rows are read from the Delta tables the batch job commits at :func:`pinpipe.tables.batch_table`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pinpipe.config import Settings
from pinpipe.dashboard.rows import table_rows
from pinpipe.delta import Snapshot, read_snapshot_if_exists
from pinpipe.tables import batch_table
from pinpipe.transform import queries
from pinpipe.transform.export import sort_output

Chart = Literal["bar", "column", "table"]

FILL_HINT = "no batch outputs yet: run `pinpipe batch run` (or `pinpipe demo`)"


@dataclass(frozen=True)
class OutputInfo:
    """How one output is presented: its question, the numeric column charted and the chart kind.
    Columns and group columns are the batch job's own (:data:`pinpipe.transform.queries.OUTPUTS`)."""

    title: str
    value: str
    chart: Chart

    def groups(self, name: str) -> tuple[str, ...]:
        return queries.OUTPUTS[name].group


# In page order: the four the page charts first.
OUTPUTS: dict[str, OutputInfo] = {
    "popular_category_by_country": OutputInfo("Most popular category per country", "category_count", "bar"),
    "popular_category_by_year": OutputInfo(
        "Most popular category per year (2018–2022)", "category_count", "column"
    ),
    "median_followers_by_age_group": OutputInfo(
        "Median followers by age group", "median_follower_count", "column"
    ),
    "median_followers_by_join_year": OutputInfo(
        "Median followers by join year (2015–2020)", "median_follower_count", "column"
    ),
    "popular_category_by_age_group": OutputInfo(
        "Most popular category per age group", "category_count", "column"
    ),
    "users_joined_by_year": OutputInfo("Users joined per year (2015–2020)", "number_users_joined", "column"),
    "posts_per_category_by_year": OutputInfo(
        "Posts per category per year (2018–2022)", "category_count", "table"
    ),
    "median_followers_by_join_year_and_age_group": OutputInfo(
        "Median followers by join year and age group", "median_follower_count", "table"
    ),
    "top_user_by_country": OutputInfo("Top user (most followers) per country", "follower_count", "table"),
    "top_country_by_followers": OutputInfo(
        "Country of the user with the most followers", "follower_count", "table"
    ),
}


def read_output(settings: Settings, name: str) -> Snapshot | None:
    """The latest committed version of output ``name`` (a key of :data:`OUTPUTS`), None if not written."""
    return read_snapshot_if_exists(batch_table(settings, name))


def output_rows(name: str, snapshot: Snapshot) -> list[dict[str, Any]]:
    """Rows in the batch job's export order (group columns, then the others)."""
    return table_rows(sort_output(name, snapshot.table))
