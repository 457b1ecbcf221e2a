"""``pinpipe dashboard``: serve the self-refreshing page and its JSON API."""

from __future__ import annotations

import ipaddress
import socket
import sys
from pathlib import Path
from typing import Any

import click

from pinpipe.cli.common import build_settings, log_warnings, pipeline_options
from pinpipe.serve import bound_url, listen, server_config
from pinpipe.workdir import require_workdir


@click.command()
@pipeline_options
@click.option("--host", default=None, help="Interface to listen on [default: 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on; 0 picks a free one [default: 8050].")
@click.option("--refresh", type=float, default=None, help="Seconds between page refreshes [default: 2].")
@click.option(
    "--keys-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The API's TOML keys file (api.keys_file): its keys see their own prefixes' topics only. Keys on "
    "every prefix: PINPIPE_API__API_KEYS, PINPIPE_API__ADMIN_KEYS.",
)
def dashboard(
    locations: dict[str, Any],
    host: str | None,
    port: int | None,
    refresh: float | None,
    keys_file: Path | None,
) -> None:
    """Serve the dashboard: live metrics, lag per partition and the batch outputs, refreshing itself.

    It reads the Delta tables and the log of --workdir and works offline (nothing is fetched from the
    internet). The JSON API behind the page is documented at /docs and /openapi.json. With API keys
    configured (the API's settings) every page needs one: a browser asks for it (the key as password).
    """
    import uvicorn

    from pinpipe.dashboard import create_dashboard_app
    from pinpipe.locations import delta_uri

    settings = build_settings(
        locations,
        **{
            "dashboard.host": host,
            "dashboard.port": port,
            "dashboard.refresh_s": refresh,
            "api.keys_file": keys_file,
        },
    )
    log_warnings()
    delta_uri(settings.tables_url)  # tables delta-rs cannot read are a clear error now, not on every refresh
    require_workdir(settings, settings.tables_url, settings.log_url, settings.stream_log_url)
    app = create_dashboard_app(settings)
    sock = listen(settings.dashboard.host, settings.dashboard.port)
    try:
        if app.state.keys.open and not _loopback(sock):
            click.echo(
                f"pinpipe: warning: no API key is configured and the dashboard listens on "
                f"{settings.dashboard.host}: anyone who reaches {bound_url(sock)}/ reads every status, "
                "metric and batch output (configure PINPIPE_API__ADMIN_KEYS or --keys-file)",
                err=True,
            )
        click.echo(f"pinpipe dashboard on {bound_url(sock)}/ (workdir {settings.workdir})")
        sys.stdout.flush()
        uvicorn.Server(server_config(app)).run(sockets=[sock])
    finally:
        sock.close()


def _loopback(sock: socket.socket) -> bool:
    """True when ``sock`` listens on a loopback address only (``localhost`` is bound as 127.0.0.1)."""
    return ipaddress.ip_address(sock.getsockname()[0]).is_loopback
