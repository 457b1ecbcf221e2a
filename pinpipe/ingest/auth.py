"""API keys on the ingestion API: who may call, on which names, with which role, and how fast.

Which keys exist and how a request carries one is :mod:`pinpipe.keys` (shared with the dashboard). Here: a
producer may produce, list and describe on its prefixes' topics and streams; an admin may also create and
delete streams. With no key configured at all the API is open to producers only and says so once at
startup: creating or deleting a stream always needs an admin key. A missing or unknown key is error 40101.
"""

from __future__ import annotations

import math
import threading
import time

from pinpipe import keys
from pinpipe.errors import AuthenticationError, ErrorCode
from pinpipe.ingest.errors import ApiError
from pinpipe.keys import ANONYMOUS, Principal

ADMIN_NEEDED = (
    "creating or deleting a stream needs an admin key: configure one in PINPIPE_API__ADMIN_KEYS "
    '(api.admin_keys) or as role = "admin" in the keys file (--keys-file), and send it as X-API-Key'
)


class KeyRing(keys.KeyRing):
    """The configured keys, a missing or unknown one answered as the API's error 40101."""

    def authenticate(self, x_api_key: str | None, authorization: str | None) -> Principal:
        """The caller's principal, or ApiError 40101 when the key is missing or unknown."""
        try:
            return super().authenticate(x_api_key, authorization)
        except AuthenticationError as exc:
            if exc.missing:
                raise ApiError(
                    ErrorCode.UNAUTHENTICATED,
                    "missing API key: send X-API-Key, Authorization: Bearer KEY, Authorization: Basic "
                    "(the key as password), or an AWS SigV4 signature with the key as access key id",
                ) from None
            raise ApiError(ErrorCode.UNAUTHENTICATED, "invalid API key") from None


def authorize(principal: Principal, name: str) -> None:
    """ApiError 40301 unless ``principal`` may use the topic or stream ``name``."""
    if not principal.may_use(name):
        raise ApiError(ErrorCode.NAME_NOT_OWNED, f"API key '{principal.name}' may not use {name!r}")


def require_admin(principal: Principal) -> None:
    """ApiError 40302 unless ``principal`` holds an admin key."""
    if principal is ANONYMOUS:
        raise ApiError(
            ErrorCode.ADMIN_REQUIRED,
            f"no API key is configured (an open API may only produce); {ADMIN_NEEDED}",
        )
    if not principal.admin:
        raise ApiError(
            ErrorCode.ADMIN_REQUIRED, f"API key '{principal.name}' is not an admin key; {ADMIN_NEEDED}"
        )


class RateLimiter:
    """A token bucket per principal: ``rate`` requests per second, bursts of ``burst``; off when rate is 0."""

    def __init__(self, rate: float, burst: int = 0) -> None:
        self.rate = rate
        self.burst = float(burst or max(1.0, rate))
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, who: str) -> None:
        """Take one token for ``who`` or raise ApiError 42901 with the seconds to wait in Retry-After."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(who, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[who] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / self.rate)
                raise ApiError(
                    ErrorCode.RATE_LIMITED,
                    f"rate limit of {self.rate:g} requests/s exceeded",
                    {"Retry-After": str(wait)},
                )
            self._buckets[who] = (tokens - 1.0, now)
