"""``pinpipe status``: topics, streams, end offsets and consumer lag of the configured logs."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console

from pinpipe.cli.common import build_settings, pipeline_options
from pinpipe.config import Settings
from pinpipe.log import Log, open_settings_log
from pinpipe.status import collect_status, render_status
from pinpipe.workdir import require_workdir


def open_logs(settings: Settings) -> list[Log]:
    """The batch topics' log and, when it is another one, the streams' log."""
    urls = list(dict.fromkeys([settings.log_url, settings.stream_log_url]))
    logs: list[Log] = []
    try:
        for url in urls:
            logs.append(open_settings_log(settings, url))
    except BaseException:
        for log in logs:
            log.close()
        raise
    return logs


@click.command("status")
@pipeline_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def status(locations: dict[str, Any], as_json: bool) -> None:
    """Show every topic and stream with its partitions' end offsets and record count, and every consumer
    group with its committed offsets and lag; on Kafka also each partition's owner and the brokers.

    JSON shape: {"topics": {NAME: {"records": n, "partitions": {"0": {"end_offset": n}}}},
    "groups": {GROUP: {TOPIC: {"0": {"committed": n, "lag": n[, "owner": s]}}}}[, "brokers": {ID: s}]}.
    """
    settings = build_settings(locations)
    require_workdir(settings, settings.log_url, settings.stream_log_url)
    logs = open_logs(settings)
    try:
        result = collect_status(logs)
    finally:
        for log in logs:
            log.close()
    if as_json:
        click.echo(json.dumps(result, sort_keys=False))
    else:
        render_status(result, Console())
