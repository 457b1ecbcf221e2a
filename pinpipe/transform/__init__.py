"""The ONE definition of cleaning and of the ten outputs (docs/data-rules.md), as SQL text every engine runs.

Why SQL text: both engines we target speak SQL natively (DuckDB in-process, Spark SQL at scale), so the very
same statements run on each with no translation layer to trust, and a reader can check every rule against
docs/data-rules.md line by line. The text stays inside the subset both dialects share; the three spellings
that have no common form (a two-element array, the naive timestamp type, an inlined CTE) are named
placeholders filled by :func:`pinpipe.transform.dialect.render`. We chose this over sqlglot transpiling
(one more dependency whose rewrites would need auditing per release) and over Ibis (a second expression
language to learn, and its Spark backend lags the SQL one).

How an engine uses it: register ``raw_pin``/``raw_geo``/``raw_user`` (columns ``clean.raw_schema(kind)``),
create ``cleaned_<kind>`` from ``clean.cleaned_sql(kind, keep_duplicates)``, then run
``queries.output_sql(name, options)`` for each of ``queries.OUTPUTS`` over those three views.
"""

from __future__ import annotations

from pinpipe.transform.clean import CLEAN_COLUMNS, clean_table, cleaned_sql
from pinpipe.transform.dialect import Dialect, render

__all__ = ["CLEAN_COLUMNS", "Dialect", "clean_table", "cleaned_sql", "render"]
