"""API keys: who may write where, and how fast.

Keys come from configuration only: ``api.api_keys`` (``--api-key``, ``PINPIPE_API__API_KEYS``) may use every
topic and stream; a keys file (``api.keys_file``, TOML) gives named keys limited to prefixes::

    [keys.emulator]
    key = "s3cr3t"
    prefixes = ["0a1b2c3d4e5f"]

A prefix ``P`` allows the topics whose name starts with ``P`` and the streams whose name starts with
``streaming-P`` (so the default prefix covers ``P.pin`` and ``streaming-P-pin`` alike).
A client sends its key as ``X-API-Key: K`` or ``Authorization: Bearer K``. Keys are compared in constant
time and never logged; only the key's name is (``cli`` for command-line keys). With no key configured at
all the API is open, and says so once at startup.
"""

from __future__ import annotations

import hmac
import math
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pinpipe.config import ApiSettings
from pinpipe.errors import ConfigError
from pinpipe.ingest.errors import ApiError


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name and the prefixes it may use (None: every name)."""

    name: str
    prefixes: tuple[str, ...] | None

    def may_use(self, name: str) -> bool:
        if self.prefixes is None:
            return True
        return any(name.startswith(p) or name.startswith(f"streaming-{p}") for p in self.prefixes)


ANONYMOUS = Principal("anonymous", None)


@dataclass(frozen=True)
class _Key:
    secret: bytes
    principal: Principal


def _load_keys_file(path: Path) -> list[_Key]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read API keys file {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"API keys file {path} is not valid TOML: {exc}") from exc
    keys = []
    for name, entry in (data.get("keys") or {}).items():
        secret = entry.get("key") if isinstance(entry, dict) else None
        prefixes = entry.get("prefixes", []) if isinstance(entry, dict) else None
        if not isinstance(secret, str) or not secret:
            raise ConfigError(f'API keys file {path}: [keys.{name}] needs a non-empty key = "..."')
        if not isinstance(prefixes, list) or not all(isinstance(p, str) and p for p in prefixes):
            raise ConfigError(f"API keys file {path}: [keys.{name}] prefixes must be a list of strings")
        keys.append(_Key(secret.encode(), Principal(name, tuple(prefixes))))
    return keys


class KeyRing:
    """The configured keys; :meth:`authenticate` turns request headers into a :class:`Principal`."""

    def __init__(self, settings: ApiSettings) -> None:
        self._keys = [
            _Key(k.get_secret_value().encode(), Principal("cli" if i == 0 else f"cli{i}", None))
            for i, k in enumerate(settings.api_keys)
            if k.get_secret_value()
        ]
        if settings.keys_file is not None:
            self._keys.extend(_load_keys_file(settings.keys_file))

    @property
    def open(self) -> bool:
        """True when no key is configured: every request is allowed."""
        return not self._keys

    def authenticate(self, x_api_key: str | None, authorization: str | None) -> Principal:
        """The caller's principal, or ApiError 40101 when the key is missing or unknown."""
        if self.open:
            return ANONYMOUS
        given = x_api_key
        if given is None and authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() == "bearer":
                given = token.strip()
        if not given:
            raise ApiError(40101, "missing API key: send the X-API-Key or Authorization: Bearer header")
        candidate = given.encode("utf-8", "surrogateescape")
        found = None
        for key in self._keys:  # check every key: the time taken does not depend on which one matched
            if hmac.compare_digest(key.secret, candidate):
                found = key.principal
        if found is None:
            raise ApiError(40101, "invalid API key")
        return found


def authorize(principal: Principal, name: str) -> None:
    """ApiError 40301 unless ``principal`` may use the topic or stream ``name``."""
    if not principal.may_use(name):
        raise ApiError(40301, f"API key '{principal.name}' may not use {name!r}")


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
                    42901, f"rate limit of {self.rate:g} requests/s exceeded", {"Retry-After": str(wait)}
                )
            self._buckets[who] = (tokens - 1.0, now)
