"""``pinpipe metrics``: the real-time metrics the stream processor last committed."""

from __future__ import annotations

import json
from typing import Any

import click

from pinpipe.cli.common import build_settings, pipeline_options
from pinpipe.workdir import require_workdir


@click.command("metrics")
@pipeline_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with a key per metric.")
@click.option("--limit", type=click.IntRange(min=1), default=10, help="Rows shown per metric table [10].")
def metrics(locations: dict[str, Any], as_json: bool, limit: int) -> None:
    """Show the real-time metrics (definitions in docs/metrics.md): profile_popularity (top-K posters in
    the last 1 h and 24 h of event time), trending_categories (1-minute counts), category_scores (decayed),
    country_activity, events_per_second, late_events and lag per stream partition.
    """
    settings = build_settings(locations)
    require_workdir(settings, settings.tables_url)
    from pinpipe.streaming.read import read_metrics

    result = read_metrics(settings)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
        return
    from rich.console import Console

    from pinpipe.render import metric_tables

    metric_tables(result, Console(), limit=limit)
