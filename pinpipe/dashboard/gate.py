"""The dashboard behind the API's keys (:mod:`pinpipe.keys`): what a request must carry, and what it may see.

With keys configured, every path (page, JSON API, static files, /docs, unknown paths alike) needs one: a
request without a key, or with an unknown one, is answered 401 with ``WWW-Authenticate: Basic realm="pinpipe
dashboard"``, so a browser asks for it (the key as password, any user name) and sends it again on every
request of the page. Scripts send ``X-API-Key`` or ``Authorization: Bearer``. With no key configured the
dashboard is open, as the API is.

What a key sees: a key on every prefix (``api.api_keys``, ``api.admin_keys``) sees everything. A key of the
keys file, whatever its role, is a tenant's: ``/api/status`` shows only the topics and streams of its
prefixes, and the batch outputs and the real-time metrics, which every prefix's runs write to the same
tables, are refused it (403) rather than shown data that may be another tenant's.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from pinpipe.errors import AuthenticationError
from pinpipe.keys import ANONYMOUS, KeyRing, Principal

logger = logging.getLogger("pinpipe.dashboard")

REALM = 'Basic realm="pinpipe dashboard"'
LOG_IN = (
    "log in with an API key as the password (any user name), or send it as X-API-Key or "
    "Authorization: Bearer KEY"
)


class KeyGate:
    """ASGI middleware: authenticates every HTTP request and leaves its :class:`Principal` in the
    request's state (``request.state.principal``) for the routes to scope what they answer."""

    def __init__(self, app: ASGIApp, keys: KeyRing) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            principal = self._principal(scope)
        except AuthenticationError as exc:
            if not exc.missing:  # an operator sees guesses; what was sent is never written anywhere
                client = scope.get("client")
                logger.warning(
                    "invalid API key from %s on %s %s",
                    client[0] if client else "?",
                    scope["method"],
                    scope["path"],
                )
            answer = JSONResponse(
                {"detail": f"{exc}: {LOG_IN}"},
                status_code=401,
                headers={"WWW-Authenticate": REALM, "Cache-Control": "no-store"},
            )
            await answer(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    def _principal(self, scope: Scope) -> Principal:
        if self.keys.open:
            return ANONYMOUS
        x_api_key = authorization = None
        for name, value in scope["headers"]:
            if name == b"x-api-key" and x_api_key is None:
                x_api_key = value.decode("latin-1")
            elif name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
        return self.keys.authenticate(x_api_key, authorization)


def caller(request: Request) -> Principal:
    """The principal :class:`KeyGate` authenticated (a FastAPI dependency)."""
    principal: Principal = request.state.principal
    return principal


Caller = Annotated[Principal, Depends(caller)]
"""A route's parameter for the caller's principal."""


def require_every_prefix(principal: Principal, what: str) -> None:
    """HTTPException 403 unless ``principal`` may use every prefix: ``what`` belongs to no single one."""
    if principal.prefixes is not None:
        raise HTTPException(
            403,
            f"API key '{principal.name}' sees its own prefixes only, and {what} are tables every prefix "
            "shares: only a key on every prefix (api.api_keys, api.admin_keys) reads them",
        )
