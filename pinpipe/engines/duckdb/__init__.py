"""DuckDB engine: reads the lake in bulk, runs the ``transform`` SQL in-process, writes Delta via delta-rs.

One module per step: ``staging`` (lake objects into DuckDB, bad records quarantined), ``chunks`` (how
much to stage at once), ``parts`` (cleaned rows as Delta parts and commits), ``outputs`` (the outputs'
kept aggregates and the ten outputs), ``commits`` (the Delta commits, made in order by a background
thread), and ``engine``, which runs them in order (a small run's geo and user on a second cursor). Data
stays inside DuckDB (a scratch database under the workdir, bounded by ``memory_limit``, spilling to disk)
until DuckDB writes it as Parquet for Delta.
"""

from pinpipe.engines.duckdb.engine import DuckDBEngine

__all__ = ["DuckDBEngine"]
