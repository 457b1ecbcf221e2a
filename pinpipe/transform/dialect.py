"""The only SQL that differs between engines: two spellings, substituted into the shared text.

Every definition in ``transform/`` is written once in the subset of SQL that DuckDB and Spark SQL both run
(CASE, LIKE, TRY_CAST, NULLIF, instr/substring/trim, ``||``, year(), window functions). Three things have
no common spelling, so the text names them as ``{array}``, ``{timestamp}`` and ``{inline}`` and
:func:`render` fills them in:

- a two-element array: DuckDB ``list_value(a, b)``, Spark ``array(a, b)``;
- a timestamp without time zone: DuckDB ``TIMESTAMP`` is naive already, Spark needs ``TIMESTAMP_NTZ`` (its
  ``TIMESTAMP`` is session-local and would shift 2018-12-31 20:43:42 into 2019 in another zone);
- a CTE computed again by each reader rather than stored once: DuckDB materializes a CTE read more than
  once (a second copy of a million wide pin rows: 2 CPU s more, spilling) unless told ``NOT MATERIALIZED``;
  Spark inlines CTEs anyway and has no such keyword.
"""

from __future__ import annotations

from typing import Literal

Dialect = Literal["duckdb", "spark"]

SPELLINGS: dict[str, dict[str, str]] = {
    "duckdb": {"array": "list_value", "timestamp": "TIMESTAMP", "inline": "NOT MATERIALIZED "},
    "spark": {"array": "array", "timestamp": "TIMESTAMP_NTZ", "inline": ""},
}


def render(sql: str, dialect: Dialect) -> str:
    """The shared SQL text spelled for one engine."""
    return sql.format(**SPELLINGS[dialect])
