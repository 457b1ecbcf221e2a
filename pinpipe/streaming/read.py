"""Reading the real-time metric tables back: one dict with a key per metric, JSON-ready."""

from __future__ import annotations

import time
from datetime import date, datetime
from typing import Any

from pinpipe import delta, tables
from pinpipe.config import Settings
from pinpipe.streaming.views import SCHEMAS

METRICS = tuple(SCHEMAS)
"""Every metric table, in the order ``pinpipe metrics`` shows them."""


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return value


def read_metric(settings: Settings, name: str) -> list[dict[str, Any]]:
    """Rows of one metric table (empty before the processor wrote it).

    Tables are overwritten every micro-batch and old files are vacuumed, so a read racing a clean-up
    is retried once on the newer snapshot.
    """
    url = tables.metrics_table(settings, name)
    for attempt in range(3):
        try:
            data = delta.read_table_if_exists(url)
            break
        except Exception:
            if attempt == 2:
                raise
            time.sleep(0.1)
    if data is None:
        return []
    return [{k: _plain(v) for k, v in row.items()} for row in data.to_pylist()]


def read_metrics(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """All metrics: ``{"profile_popularity": [...], "trending_categories": [...], ..., "lag": [...]}``."""
    return {name: read_metric(settings, name) for name in METRICS}
