"""The dashboard: one self-refreshing page and the JSON API behind it, in one FastAPI app.

Every number the page draws comes from the API, so anyone can build on the same numbers:
``/api/metrics`` (stream processor's real-time metrics), ``/api/status`` (topics and lag per partition),
``/api/batch`` and ``/api/batch/{output}`` (the batch job's outputs). Scripts and styles are served from
the package's ``static/`` folder: the page works offline. With API keys configured every path needs one,
and a tenant's key sees only its own topics (:mod:`pinpipe.dashboard.gate`).
"""

from __future__ import annotations

import html
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from pinpipe import __version__
from pinpipe.config import Settings
from pinpipe.dashboard import live
from pinpipe.dashboard.batch import FILL_HINT, OUTPUTS, OutputInfo, output_rows, read_output
from pinpipe.dashboard.gate import Caller, KeyGate, require_every_prefix
from pinpipe.dashboard.metrics import read_live_metrics
from pinpipe.dashboard.models import BatchList, BatchOutput, BatchOutputSummary, Metrics, Status
from pinpipe.delta import Snapshot
from pinpipe.keys import OPENAPI_SCHEMES, OPENAPI_SECURITY, KeyRing

STATIC = Path(str(files("pinpipe.dashboard") / "static"))
BATCH = "the batch outputs"
METRICS = "the stream processor's metrics"
REFUSED: dict[int | str, dict[str, Any]] = {
    401: {"description": "Keys are configured and none (or an unknown one) was sent."},
    403: {"description": "A key limited to prefixes: this belongs to no single prefix."},
}


def _summary(name: str, info: OutputInfo, snapshot: Snapshot | None, **extra: object) -> dict[str, object]:
    """The fields every view of an output shares; ``snapshot`` None: not written yet."""
    found = (
        {}
        if snapshot is None
        else {
            "row_count": snapshot.table.num_rows,
            "version": snapshot.version,
            "committed_at": snapshot.committed_at,
        }
    )
    return {
        "name": name,
        "title": info.title,
        "row_count": 0,
        "groups": list(info.groups(name)),
        "value": info.value,
        "chart": info.chart,
        "available": snapshot is not None,
        **found,
        **extra,
    }


def create_dashboard_app(settings: Settings) -> FastAPI:
    """The ASGI app for ``settings``' workdir (tables, log); nothing is read until a request asks. The
    keys of ``settings.api`` are loaded now (a bad keys file is a ConfigError here, not on a request)."""
    keys = KeyRing(settings.api)
    app = FastAPI(
        title="pinpipe dashboard",
        version=__version__,
        description="Real-time metrics, lag and batch outputs of a pinpipe pipeline, as JSON.",
    )
    app.state.keys = keys
    app.add_middleware(KeyGate, keys=keys)
    if not keys.open:
        _document_security(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    status_sampler = live.StatusSampler(settings)
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    page = page.replace("{{REFRESH_MS}}", str(int(settings.dashboard.refresh_s * 1000)))
    page = page.replace("{{REFRESH_S}}", f"{settings.dashboard.refresh_s:g}")
    page = page.replace("{{WORKDIR}}", html.escape(str(settings.workdir.resolve())))
    page = page.replace("{{VERSION}}", __version__)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return page

    @app.get(
        "/api/metrics",
        response_model=Metrics,
        summary="Real-time metrics of the stream processor",
        responses=REFUSED,
    )
    def metrics(principal: Caller) -> Metrics:
        require_every_prefix(principal, METRICS)
        return read_live_metrics(settings)

    @app.get(
        "/api/status",
        response_model=Status,
        summary="Topics, streams and consumer lag per partition (a tenant's key: its own only)",
        responses={401: REFUSED[401]},
    )
    def status(principal: Caller) -> Status:
        return status_sampler.status(principal)

    @app.get(
        "/api/batch",
        response_model=BatchList,
        summary="The batch outputs and whether each exists",
        responses=REFUSED,
    )
    def batch_list(principal: Caller) -> BatchList:
        require_every_prefix(principal, BATCH)
        summaries = [
            BatchOutputSummary.model_validate(_summary(name, info, read_output(settings, name)))
            for name, info in OUTPUTS.items()
        ]
        hint = None if any(s.available for s in summaries) else FILL_HINT
        return BatchList(outputs=summaries, hint=hint)

    @app.get(
        "/api/batch/{output}",
        response_model=BatchOutput,
        summary="Rows of one batch output",
        responses={**REFUSED, 404: {"description": "No such output name."}},
    )
    def batch_output(output: str, principal: Caller) -> BatchOutput:
        require_every_prefix(principal, BATCH)
        info = OUTPUTS.get(output)
        if info is None:
            raise HTTPException(404, f"unknown output {output!r}: one of {', '.join(OUTPUTS)}")
        snapshot = read_output(settings, output)
        if snapshot is None:
            return BatchOutput.model_validate(_summary(output, info, None, hint=FILL_HINT))
        return BatchOutput.model_validate(
            _summary(
                output,
                info,
                snapshot,
                columns=snapshot.table.column_names,
                rows=output_rows(output, snapshot),
            )
        )

    return app


def _document_security(app: FastAPI) -> None:
    """Publish the ways of sending a key in /openapi.json: every path needs one."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schema.setdefault("components", {})["securitySchemes"] = dict(OPENAPI_SCHEMES)
            schema["security"] = list(OPENAPI_SECURITY)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
