"""``pinpipe config show``: the effective settings and where each came from."""

from __future__ import annotations

import json
from typing import Any

import click

from pinpipe.cli.common import build_settings, pipeline_options


@click.group("config")
def config() -> None:
    """Inspect the settings (defaults < pinpipe.toml < .env < environment < flags)."""


@config.command("show")
@pipeline_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {setting, value, source}.")
def show(locations: dict[str, Any], as_json: bool) -> None:
    """Print every effective setting with the layer it came from (default, pinpipe.toml, .env,
    environment, flag), then the resolved locations. API keys and other secrets are masked."""
    from pinpipe.config_show import effective_settings

    settings = build_settings(locations)
    rows = effective_settings(settings, locations)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="pinpipe settings", title_justify="left")
    for column in ("setting", "value", "source"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["setting"], row["value"], row["source"])
    Console().print(table)
