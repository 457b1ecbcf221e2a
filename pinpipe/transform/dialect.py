"""The only SQL that differs between engines: two spellings, substituted into the shared text.

Every definition in ``transform/`` is written once in the subset of SQL that DuckDB and Spark SQL both run
(CASE, LIKE, TRY_CAST, NULLIF, instr/substring/trim, ``||``, year(), window functions). Two things have no
common spelling, so the text names them as ``{array}`` and ``{timestamp}`` and :func:`render` fills them in:

- a two-element array: DuckDB ``list_value(a, b)``, Spark ``array(a, b)``;
- a timestamp without time zone: DuckDB ``TIMESTAMP`` is naive already, Spark needs ``TIMESTAMP_NTZ`` (its
  ``TIMESTAMP`` is session-local and would shift 2018-12-31 20:43:42 into 2019 in another zone).
"""

from __future__ import annotations

from typing import Literal

Dialect = Literal["duckdb", "spark"]

SPELLINGS: dict[str, dict[str, str]] = {
    "duckdb": {"array": "list_value", "timestamp": "TIMESTAMP"},
    "spark": {"array": "array", "timestamp": "TIMESTAMP_NTZ"},
}


def render(sql: str, dialect: Dialect) -> str:
    """The shared SQL text spelled for one engine."""
    return sql.format(**SPELLINGS[dialect])
