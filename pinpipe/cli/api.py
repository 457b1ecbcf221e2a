"""``pinpipe api serve``: the ingestion API over HTTP (uvicorn), until SIGTERM or Ctrl-C."""

from __future__ import annotations

import gc
import signal
import socket
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click

from pinpipe.cli.common import build_settings, log_warnings, pipeline_options
from pinpipe.config_show import mask_url
from pinpipe.serve import listen, server_config
from pinpipe.workdir import note_new_workdir


@click.group()
def api() -> None:
    """Serve the ingestion API (Kafka REST Proxy v2 and v3, Kinesis routes and wire protocol)."""


@api.command()
@pipeline_options
@click.option("--host", default=None, help="Address to listen on [default: 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on; 0 picks a free one [default: 8000].")
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    help="A producer key for every topic and stream (repeatable; 16+ printable ASCII characters). Visible "
    "in `ps`: prefer PINPIPE_API__API_KEYS or --keys-file. Without any key the API is open (produce only).",
)
@click.option(
    "--keys-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help='TOML file of keys limited to prefixes: [keys.NAME] key = "..." prefixes = ["0a1b2c3d4e5f"] '
    'role = "producer" or "admin". Admin keys for every prefix: PINPIPE_API__ADMIN_KEYS.',
)
@click.option("--partitions", type=int, default=None, help="Partitions of the topics/streams it creates.")
@click.option("--max-records", type=int, default=None, help="Records allowed per request [default: 500].")
@click.option("--rate-limit", type=float, default=None, help="Requests/s allowed per key [default: 0, off].")
@click.option("--access-log/--no-access-log", default=False, help="Log every request [default: off].")
def serve(
    locations: dict[str, Any],
    host: str | None,
    port: int | None,
    api_keys: tuple[str, ...],
    keys_file: Path | None,
    partitions: int | None,
    max_records: int | None,
    rate_limit: float | None,
    access_log: bool,
) -> None:
    """Serve the ingestion API until SIGTERM or Ctrl-C (in-flight requests finish first).

    Topics <prefix>.pin|geo|user and streams streaming-<prefix>-pin|geo|user are created at startup.
    A record is acknowledged only once the log has accepted it.
    """
    import uvicorn

    from pinpipe.ingest import create_app

    if api_keys:
        click.echo(
            "pinpipe: warning: --api-key is visible to every user of this machine (ps, /proc); "
            "give keys in PINPIPE_API__API_KEYS or a --keys-file instead",
            err=True,
        )

    settings = build_settings(
        locations,
        **{
            "api.host": host,
            "api.port": port,
            "api.api_keys": list(api_keys) or None,
            "api.keys_file": keys_file,
            "log.partitions": partitions,
            "api.max_records": max_records,
            "api.rate_limit": rate_limit,
        },
    )
    log_warnings()
    note_new_workdir(settings, settings.log_url, settings.stream_log_url)
    app = create_app(settings)
    sock = listen(settings.api.host, settings.api.port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    url = f"http://{shown_host}:{bound_port}"

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                quieter_collector()
                click.echo(f"pinpipe api listening on {url} (log {mask_url(settings.log_url)})")
                sys.stdout.flush()

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if sig == signal.SIGTERM and not self.should_exit:
                # a graceful stop that ends in exit status 0 (uvicorn would re-raise SIGTERM after it)
                self.should_exit = True
                return
            super().handle_exit(sig, frame)

    config = server_config(
        app,
        access_log=access_log,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    try:
        Server(config).run(sockets=[sock])
    finally:
        sock.close()


GC_YOUNG_THRESHOLD = 10_000
"""Container objects allocated between two collections of the young generation (Python's default: 700)."""


def quieter_collector() -> None:
    """Fewer and cheaper garbage collections for a serving process: a 500-record produce request
    allocates thousands of objects, so at the default threshold the collector ran several times per
    request, and its full collections walked every object left from startup. Those are frozen (never
    walked again) and the young generation is collected ten times less often; objects are still freed as
    soon as nothing refers to them, as before."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
