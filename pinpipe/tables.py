"""Where every Delta table lives, so the batch job, the stream processor and the dashboard agree.

Layout under ``Settings.tables_url`` (default ``<workdir>/tables``)::

    batch/pin, batch/geo, batch/user          cleaned tables written by the batch job
    batch/<output>                            the ten query outputs (names: docs/data-rules.md)
    batch/output_aggregates, batch/pin_keys   what the DuckDB engine keeps for incremental runs
    stream/<prefix>_pin_table ... _user_table cleaned stream tables
    stream/metrics_<name>                     real-time metrics
    stream/dead_letters                       malformed stream events

and, in the workdir, the Spark stream job's checkpoint (which offsets of the stream tables it has written).
"""

from __future__ import annotations

from pathlib import Path

from pinpipe import locations
from pinpipe.config import Settings
from pinpipe.schema import Kind


def batch_table(settings: Settings, name: str) -> str:
    """URL of a batch table: a cleaned kind (``pin``) or an output (``popular_category_by_country``)."""
    return locations.join(settings.tables_url, "batch", name)


def stream_table(settings: Settings, kind: Kind) -> str:
    """URL of the cleaned stream table of a kind: ``<prefix>_<kind>_table``."""
    return locations.join(settings.tables_url, "stream", f"{settings.prefix}_{kind}_table")


def metrics_table(settings: Settings, name: str) -> str:
    """URL of a real-time metrics table (``metrics_<name>``)."""
    return locations.join(settings.tables_url, "stream", f"metrics_{name}")


def dead_letter_table(settings: Settings) -> str:
    return locations.join(settings.tables_url, "stream", "dead_letters")


def spark_checkpoint(settings: Settings) -> Path:
    """The Spark stream query's checkpoint: ``<workdir>/spark-checkpoints/stream-<prefix>``."""
    return settings.workdir.resolve() / "spark-checkpoints" / f"stream-{settings.prefix}"
