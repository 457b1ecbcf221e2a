"""The ten outputs of docs/data-rules.md, written once as SQL over the views ``cleaned_pin``, ``cleaned_geo``,
``cleaned_user`` (built from ``clean.cleaned_sql``; the duplicate rule already applied there).

Each output is one self-contained statement (CTEs, no dependence on other outputs' tables), so an engine
only registers three views and runs :func:`output_sql` for each name in :data:`OUTPUTS`. The two other
switches change the statement text: ``median`` (lower: the value at 1-based rank ceil(n/2); exact: the mean
of the middle two for even n) and ``keep_ties`` (top-1 with the smallest name as tie-break, or every row
equal to the group's best).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pinpipe.transform.dialect import Dialect, render


@dataclass(frozen=True)
class BatchOptions:
    """The three switchable conventions (docs/data-rules.md); the defaults are the definitions."""

    keep_duplicates: bool = False
    median: Literal["lower", "exact"] = "lower"
    keep_ties: bool = False


@dataclass(frozen=True)
class Output:
    name: str
    columns: tuple[str, ...]
    group: tuple[str, ...]
    """Group columns: rows are sorted by these, then by the others (CSV export, printing)."""


OUTPUTS: dict[str, Output] = {
    o.name: o
    for o in (
        Output("popular_category_by_country", ("country", "category", "category_count"), ("country",)),
        Output(
            "posts_per_category_by_year",
            ("post_year", "category", "category_count"),
            ("post_year", "category"),
        ),
        Output("popular_category_by_year", ("post_year", "category", "category_count"), ("post_year",)),
        Output("top_user_by_country", ("country", "poster_name", "follower_count"), ("country",)),
        Output("top_country_by_followers", ("country", "follower_count"), ("country",)),
        Output("popular_category_by_age_group", ("age_group", "category", "category_count"), ("age_group",)),
        Output("median_followers_by_age_group", ("age_group", "median_follower_count"), ("age_group",)),
        Output("users_joined_by_year", ("post_year", "number_users_joined"), ("post_year",)),
        Output("median_followers_by_join_year", ("post_year", "median_follower_count"), ("post_year",)),
        Output(
            "median_followers_by_join_year_and_age_group",
            ("age_group", "post_year", "median_follower_count"),
            ("age_group", "post_year"),
        ),
    )
}

AGE_GROUP = """CASE
      WHEN age BETWEEN 18 AND 24 THEN '18-24'
      WHEN age BETWEEN 25 AND 35 THEN '25-35'
      WHEN age BETWEEN 36 AND 50 THEN '36-50'
      WHEN age > 50 THEN '50+'
    END"""

# The two smallest joins: pin ⋈ geo (country and post-year outputs), pin ⋈ user (age and join year).
JOINS: dict[str, str] = {
    "pin_geo": """SELECT p.category, p.poster_name, p.follower_count, g.country,
    CAST(year(g.timestamp) AS BIGINT) AS post_year
  FROM cleaned_pin AS p INNER JOIN cleaned_geo AS g ON p.ind = g.ind""",
    "pin_user": f"""SELECT p.category, p.follower_count, {AGE_GROUP} AS age_group,
    CAST(year(u.date_joined) AS BIGINT) AS join_year
  FROM cleaned_pin AS p INNER JOIN cleaned_user AS u ON p.ind = u.ind""",
}
"""The joins the outputs read, by name; an engine may create them once as tables (see :func:`output_sql`)."""

COLUMNS_READ: dict[str, tuple[str, ...]] = {
    "pin": ("ind", "category", "poster_name", "follower_count"),
    "geo": ("ind", "country", "timestamp"),
    "user": ("ind", "age", "date_joined"),
}
"""The cleaned columns the joins and outputs read: once the cleaned tables are written, an engine may keep
only these (a pin row is ~300 bytes of text, these ~40)."""


def top1(source: str, group: tuple[str, ...], value: str, name: str, columns: str, keep_ties: bool) -> str:
    """Rows of ``source`` with the largest ``value`` per group; ties: the smallest ``name``, or all kept.

    Written as an aggregate plus a join on the best value rather than ``row_number()`` over every row: the
    window sorts the whole source, the aggregate only keeps one value per group (top_user_by_country reads
    a million rows: 1.1 s -> 0.13 s on DuckDB). A name's best value is the largest of its rows, so
    ``source`` may hold several rows per name. Group columns must be non-null (every caller filters them).
    """
    keys = ", ".join(group)
    lead = keys + ", " if keys else ""
    best = f"SELECT {lead}max({value}) AS _best FROM {source} AS s" + (f" GROUP BY {keys}" if keys else "")
    on = " AND ".join([f"s.{g} = b.{g}" for g in group] + [f"s.{value} = b._best"])
    picked = f"(SELECT s.* FROM {source} AS s INNER JOIN ({best}) AS b ON {on})"
    if keep_ties:
        return f"SELECT DISTINCT {columns} FROM {picked} AS t"
    named = f"SELECT {lead}min({name}) AS {name}, {value} FROM {picked} AS t GROUP BY {lead}{value}"
    return f"SELECT {columns} FROM ({named}) AS t"


def median(source: str, group: tuple[str, ...], value: str, exact: bool) -> str:
    """Median of the non-null ``value`` per group: exact ordered-set aggregates, never an approximation.

    Lower: ``percentile_disc(0.5)``, the smallest value whose cumulative share reaches one half, i.e. the
    value at 1-based rank ceil(n/2). Exact: ``percentile_cont(0.5)``, the mean of the middle two for even n.
    DuckDB and Spark SQL both spell them ``... WITHIN GROUP (ORDER BY value)``.
    """
    keys = ", ".join(group)
    if exact:
        agg = f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {value})"
    else:
        agg = f"CAST(percentile_disc(0.5) WITHIN GROUP (ORDER BY {value}) AS BIGINT)"
    return (
        f"SELECT {keys}, {agg} AS median_follower_count"
        f" FROM {source} AS s WHERE {value} IS NOT NULL GROUP BY {keys}"
    )


def _category_counts(source: str, keys: str, where: str) -> str:
    return (
        f"SELECT {keys}, category, count(*) AS category_count FROM {source}"
        f" WHERE {where} AND category IS NOT NULL GROUP BY {keys}, category"
    )


def _posts_per_category_by_year() -> str:
    return _category_counts("pin_geo", "post_year", "post_year BETWEEN 2018 AND 2022")


def _top_user_by_country(keep_ties: bool) -> str:
    posts = (
        "(SELECT country, poster_name, follower_count FROM pin_geo"
        " WHERE country IS NOT NULL AND poster_name IS NOT NULL AND follower_count IS NOT NULL)"
    )
    cols = "country, poster_name, follower_count"
    return top1(posts, ("country",), "follower_count", "poster_name", cols, keep_ties)


def _statement(name: str, options: BatchOptions) -> str:
    """The body of output ``name``, reading the joins by name (``output_sql`` defines them)."""
    ties = options.keep_ties
    exact = options.median == "exact"
    cat_cols = "category, category_count"
    if name == "popular_category_by_country":
        counts = _category_counts("pin_geo", "country", "country IS NOT NULL")
        return top1(f"({counts})", ("country",), "category_count", "category", f"country, {cat_cols}", ties)
    if name == "posts_per_category_by_year":
        return _posts_per_category_by_year()
    if name == "popular_category_by_year":
        counts = _posts_per_category_by_year()
        return top1(
            f"({counts})", ("post_year",), "category_count", "category", f"post_year, {cat_cols}", ties
        )
    if name == "top_user_by_country":
        return _top_user_by_country(ties)
    if name == "top_country_by_followers":
        users = f"(SELECT DISTINCT country, follower_count FROM ({_top_user_by_country(ties)}) AS u)"
        return top1(users, (), "follower_count", "country", "country, follower_count", ties)
    if name == "popular_category_by_age_group":
        counts = _category_counts("pin_user", "age_group", "age_group IS NOT NULL")
        return top1(
            f"({counts})", ("age_group",), "category_count", "category", f"age_group, {cat_cols}", ties
        )
    if name == "median_followers_by_age_group":
        source = "(SELECT * FROM pin_user WHERE age_group IS NOT NULL)"
        return median(source, ("age_group",), "follower_count", exact)
    if name == "users_joined_by_year":
        return (
            "SELECT post_year, count(*) AS number_users_joined FROM"
            " (SELECT CAST(year(date_joined) AS BIGINT) AS post_year FROM cleaned_user) AS u"
            " WHERE post_year BETWEEN 2015 AND 2020 GROUP BY post_year"
        )
    if name == "median_followers_by_join_year":
        source = (
            "(SELECT join_year AS post_year, follower_count FROM pin_user"
            " WHERE join_year BETWEEN 2015 AND 2020)"
        )
        return median(source, ("post_year",), "follower_count", exact)
    if name == "median_followers_by_join_year_and_age_group":
        source = (
            "(SELECT age_group, join_year AS post_year, follower_count FROM pin_user"
            " WHERE join_year BETWEEN 2015 AND 2020 AND age_group IS NOT NULL)"
        )
        return median(source, ("age_group", "post_year"), "follower_count", exact)
    raise KeyError(name)


def join_sql(name: str, dialect: Dialect = "duckdb") -> str:
    """The SELECT of join ``name`` (a key of :data:`JOINS`) for one engine's dialect."""
    return render(JOINS[name], dialect)


def output_sql(
    name: str, options: BatchOptions, dialect: Dialect = "duckdb", joins_built: bool = False
) -> str:
    """The statement computing output ``name`` (columns in the documented order) for one engine's dialect.

    With ``joins_built`` the statement reads tables ``pin_geo``/``pin_user`` the engine created from
    :func:`join_sql`, instead of repeating the join in each of the ten statements.
    """
    cols = ", ".join(OUTPUTS[name].columns)
    statement = _statement(name, options)
    read = [] if joins_built else [j for j in JOINS if re.search(rf"\b{j}\b", statement)]
    if read:
        statement = "WITH " + ", ".join(f"{j} AS (\n  {JOINS[j]}\n)" for j in read) + f"\n{statement}"
    return render(f"SELECT {cols} FROM (\n{statement}\n) AS result", dialect)
