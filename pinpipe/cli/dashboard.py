"""``pinpipe dashboard``: serve the self-refreshing page and its JSON API."""

from __future__ import annotations

from typing import Any

import click

from pinpipe.cli.common import build_settings, pipeline_options


@click.command()
@pipeline_options
@click.option("--host", default=None, help="Interface to listen on [default: 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on [default: 8050].")
@click.option("--refresh", type=float, default=None, help="Seconds between page refreshes [default: 2].")
def dashboard(locations: dict[str, Any], host: str | None, port: int | None, refresh: float | None) -> None:
    """Serve the dashboard: live metrics, lag per partition and the batch outputs, refreshing itself.

    It reads the Delta tables and the log of --workdir and works offline (nothing is fetched from the
    internet). The JSON API behind the page is documented at /docs and /openapi.json.
    """
    import uvicorn

    from pinpipe.dashboard import create_dashboard_app
    from pinpipe.locations import delta_uri

    settings = build_settings(
        locations,
        **{"dashboard.host": host, "dashboard.port": port, "dashboard.refresh_s": refresh},
    )
    delta_uri(settings.tables_url)  # tables delta-rs cannot read are a clear error now, not on every refresh
    app = create_dashboard_app(settings)
    where = settings.dashboard
    click.echo(f"pinpipe dashboard on http://{where.host}:{where.port}/ (workdir {settings.workdir})")
    uvicorn.run(app, host=where.host, port=where.port, log_level="warning")
