"""``pinpipe dashboard``: serve the self-refreshing page and its JSON API."""

from __future__ import annotations

import sys
from typing import Any

import click

from pinpipe.cli.common import build_settings, pipeline_options
from pinpipe.serve import bound_url, listen, server_config
from pinpipe.workdir import require_workdir


@click.command()
@pipeline_options
@click.option("--host", default=None, help="Interface to listen on [default: 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on; 0 picks a free one [default: 8050].")
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
    require_workdir(settings, settings.tables_url, settings.log_url, settings.stream_log_url)
    app = create_dashboard_app(settings)
    sock = listen(settings.dashboard.host, settings.dashboard.port)
    try:
        click.echo(f"pinpipe dashboard on {bound_url(sock)}/ (workdir {settings.workdir})")
        sys.stdout.flush()
        uvicorn.Server(server_config(app)).run(sockets=[sock])
    finally:
        sock.close()
