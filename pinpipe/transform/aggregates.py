"""The ten outputs from five small aggregates of the joined cleaned rows, for an engine that keeps them
between runs and adds what a run appends instead of reading all history again.

The cleaned tables only grow between rebuilds (an incremental run appends), and the joins are bag joins,
so the rows a run adds to ``pin_geo`` are its new pins joined with every geo row plus the old pins joined
with its new geo rows (:func:`new_join_sql`), and each aggregate of the old rows merges exactly with the
same aggregate of the added ones (:func:`merged_sql`):

- ``geo_categories`` (country, year, category, n): posts per group, summed;
- ``top_posters`` (country, poster_name, follower_count): per country every poster at the best follower
  count; a larger count replaces them, an equal one joins them (so ties stay exact either way);
- ``user_followers`` (age_group, year, follower_count, n): how many posts have each follower count per
  age group and join year, summed: the medians are read from these histograms by rank, exactly;
- ``user_categories`` (age_group, category, n) and ``users_joined`` (year, n): summed.

One table holds them all (:data:`AGGREGATE_TYPES`, unused columns null), written in one commit; it may hold
several partial rows of a group (an engine may append a run's aggregates unmerged).
The three switches do not change the aggregates, only the cleaned rows (``keep_duplicates``) and the
statements of :func:`output_sql`, whose results equal ``queries.output_sql``'s over the same rows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pinpipe.schema import Kind
from pinpipe.transform.dialect import Dialect, render
from pinpipe.transform.queries import COLUMNS_READ, JOINS, OUTPUTS, BatchOptions, top1

AGGREGATE_TYPES = {
    "aggregate": "STRING",
    "country": "STRING",
    "category": "STRING",
    "poster_name": "STRING",
    "age_group": "STRING",
    "year": "BIGINT",
    "follower_count": "BIGINT",
    "n": "BIGINT",
}
"""The aggregates table's columns and their types (spelled as both DuckDB and Spark SQL read them)."""
COLUMNS = tuple(AGGREGATE_TYPES)
_KEYS = COLUMNS[:-1]
BEST = "top_posters"
"""The one aggregate merged by keeping the best rows; the others are counts, merged by summing."""


def _row(name: str, **values: str) -> str:
    """A SELECT list in :data:`COLUMNS` order: ``values`` where given, typed nulls elsewhere."""
    cells = [f"'{name}' AS aggregate"]
    for column in COLUMNS[1:]:
        value = values.get(column, f"CAST(NULL AS {AGGREGATE_TYPES[column]})")
        cells.append(f"{value} AS {column}")
    return ", ".join(cells)


def _best_posters(source: str) -> str:
    """Per country every (poster_name, follower_count) of ``source`` at the country's best count."""
    cols = "country, poster_name, follower_count"
    picked = top1(source, ("country",), "follower_count", "poster_name", cols, keep_ties=True)
    return (
        f"SELECT {_row(BEST, country='country', poster_name='poster_name', follower_count='follower_count')}"
        + (f" FROM ({picked}) AS best")
    )


def aggregates_sql(pin_geo: str, pin_user: str, user: str) -> str:
    """The five aggregates of the rows of the two joins (as ``queries.JOINS`` defines them) and of the
    cleaned ``user`` rows (``ind``, ``age``, ``date_joined``), in one table of :data:`COLUMNS`."""
    count = n = "CAST(count(*) AS BIGINT)"
    fc = "follower_count"
    year = "CAST(year(date_joined) AS BIGINT)"
    posters = (
        f"(SELECT country, poster_name, follower_count FROM {pin_geo}"
        " WHERE country IS NOT NULL AND poster_name IS NOT NULL AND follower_count IS NOT NULL)"
    )
    parts = [
        f"SELECT {_row('geo_categories', country='country', year='post_year', category='category', n=count)}"
        f" FROM {pin_geo} WHERE category IS NOT NULL GROUP BY country, post_year, category",
        _best_posters(posters),
        f"SELECT {_row('user_followers', age_group='age_group', year='join_year', follower_count=fc, n=n)}"
        f" FROM {pin_user} WHERE follower_count IS NOT NULL GROUP BY age_group, join_year, follower_count",
        f"SELECT {_row('user_categories', age_group='age_group', category='category', n=count)}"
        f" FROM {pin_user} WHERE age_group IS NOT NULL AND category IS NOT NULL GROUP BY age_group, category",
        f"SELECT {_row('users_joined', year=year, n=count)}"
        f" FROM {user} WHERE {year} BETWEEN 2015 AND 2020 GROUP BY {year}",
    ]
    return "\nUNION ALL\n".join(parts)


def merged_sql(source: str) -> str:
    """One row per group of the aggregates in ``source``, which may hold several partial aggregates of
    one group (the kept ones and those of a run's added rows): counts summed, the best posters kept."""
    keys = ", ".join(_KEYS)
    return (
        f"SELECT {keys}, CAST(sum(n) AS BIGINT) AS n FROM {source} AS a WHERE aggregate <> '{BEST}'"
        f" GROUP BY {keys}\nUNION ALL\n"
        + _best_posters(f"(SELECT * FROM {source} AS a WHERE aggregate = '{BEST}')")
    )


def new_join_sql(
    name: str, new: Mapping[Kind, str], old: Mapping[Kind, str], dialect: Dialect = "duckdb"
) -> str:
    """The rows join ``name`` gains when the cleaned tables ``old`` (kind -> source) gain the rows ``new``:
    new pins with every other row, plus old pins with the new other rows. Old rows are read only where
    their ``ind`` is among the new ones (Parquet statistics skip the rest)."""
    other: Kind = "geo" if name == "pin_geo" else "user"

    def join(pin: str, rows: str) -> str:
        text = re.sub(r"\bcleaned_pin\b", pin, JOINS[name])
        return re.sub(rf"\bcleaned_{other}\b", rows, text)

    def matching(kind: Kind, against: str) -> str:
        cols = ", ".join(COLUMNS_READ[kind])
        return f"(SELECT {cols} FROM {old[kind]} AS o WHERE ind IN (SELECT ind FROM {against}))"

    cols = ", ".join(COLUMNS_READ[other])
    others = f"(SELECT {cols} FROM {new[other]} AS n UNION ALL SELECT * FROM {matching(other, new['pin'])})"
    return render(
        f"{join(new['pin'], others)}\nUNION ALL\n{join(matching('pin', new[other]), new[other])}", dialect
    )


def _counts(
    state: str, aggregate: str, keys: dict[str, str], where: str, alias: str = "category_count"
) -> str:
    """Summed counts of ``aggregate`` per ``keys`` (output column -> aggregate column)."""
    cols = ", ".join(f"{source} AS {out}" for out, source in keys.items())
    group = ", ".join(keys.values())
    return (
        f"SELECT {cols}, CAST(sum(n) AS BIGINT) AS {alias} FROM {state} AS s"
        f" WHERE aggregate = '{aggregate}' AND {where} GROUP BY {group}"
    )


def _median(state: str, keys: dict[str, str], where: str, exact: bool) -> str:
    """Median follower count per ``keys`` from the ``user_followers`` histograms: the value at 1-based
    rank ceil(n/2) (lower), or for exact the mean of the values at ranks ceil(n/2) and floor(n/2) + 1
    computed as ``percentile_cont`` does (low + (high - low) * 0.5, in doubles; the same value for odd n)."""
    cols = ", ".join(f"{source} AS {out}" for out, source in keys.items())
    outs = ", ".join(keys)
    hist = (
        f"SELECT {cols}, follower_count AS v, sum(n) AS n FROM {state} AS s"
        f" WHERE aggregate = 'user_followers' AND {where} GROUP BY {', '.join(keys.values())}, follower_count"
    )
    ranked = (
        f"SELECT {outs}, v, sum(n) OVER (PARTITION BY {outs} ORDER BY v"
        " ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS upto,"
        f" sum(n) OVER (PARTITION BY {outs}) AS total FROM ({hist}) AS h"
    )
    low = "min(CASE WHEN upto * 2 >= total THEN v END)"  # rank ceil(n/2)
    high = "min(CASE WHEN upto * 2 > total THEN v END)"  # rank floor(n/2) + 1
    value = (
        f"CAST({low} AS DOUBLE) + (CAST({high} AS DOUBLE) - CAST({low} AS DOUBLE)) * 0.5"
        if exact
        else f"CAST({low} AS BIGINT)"
    )
    return f"SELECT {outs}, {value} AS median_follower_count FROM ({ranked}) AS r GROUP BY {outs}"


def _statement(name: str, state: str, options: BatchOptions) -> str:
    ties = options.keep_ties
    exact = options.median == "exact"
    cat_cols = "category, category_count"
    by_year = _counts(
        state, "geo_categories", {"post_year": "year", "category": "category"}, "year BETWEEN 2018 AND 2022"
    )
    posters = f"(SELECT country, poster_name, follower_count FROM {state} AS s WHERE aggregate = '{BEST}')"
    top_users = top1(
        posters, ("country",), "follower_count", "poster_name", "country, poster_name, follower_count", ties
    )
    if name == "popular_category_by_country":
        counts = _counts(
            state, "geo_categories", {"country": "country", "category": "category"}, "country IS NOT NULL"
        )
        return top1(f"({counts})", ("country",), "category_count", "category", f"country, {cat_cols}", ties)
    if name == "posts_per_category_by_year":
        return by_year
    if name == "popular_category_by_year":
        return top1(
            f"({by_year})", ("post_year",), "category_count", "category", f"post_year, {cat_cols}", ties
        )
    if name == "top_user_by_country":
        return top_users
    if name == "top_country_by_followers":
        users = f"(SELECT DISTINCT country, follower_count FROM ({top_users}) AS u)"
        return top1(users, (), "follower_count", "country", "country, follower_count", ties)
    if name == "popular_category_by_age_group":
        counts = _counts(state, "user_categories", {"age_group": "age_group", "category": "category"}, "true")
        return top1(
            f"({counts})", ("age_group",), "category_count", "category", f"age_group, {cat_cols}", ties
        )
    if name == "median_followers_by_age_group":
        return _median(state, {"age_group": "age_group"}, "age_group IS NOT NULL", exact)
    if name == "users_joined_by_year":
        return _counts(state, "users_joined", {"post_year": "year"}, "true", "number_users_joined")
    years = "year BETWEEN 2015 AND 2020"
    if name == "median_followers_by_join_year":
        return _median(state, {"post_year": "year"}, years, exact)
    if name == "median_followers_by_join_year_and_age_group":
        keys = {"age_group": "age_group", "post_year": "year"}
        return _median(state, keys, f"{years} AND age_group IS NOT NULL", exact)
    raise KeyError(name)


def output_sql(name: str, state: str, options: BatchOptions, dialect: Dialect = "duckdb") -> str:
    """Output ``name`` (columns in the documented order) from ``state``, the merged aggregates."""
    cols = ", ".join(OUTPUTS[name].columns)
    return render(f"SELECT {cols} FROM (\n{_statement(name, state, options)}\n) AS result", dialect)


__all__ = ["AGGREGATE_TYPES", "aggregates_sql", "merged_sql", "new_join_sql", "output_sql"]
