"""API keys: which are configured, who holds each, and which one a request carries.

One home for the ingestion API and the dashboard, so both accept the same keys, sent the same ways, and
compare them the same way. Keys come from configuration only, never from a request: ``api.api_keys``
(producer keys) and ``api.admin_keys`` (admin keys), both on every prefix, from the environment
(``PINPIPE_API__API_KEYS``, ``PINPIPE_API__ADMIN_KEYS``) or ``pinpipe.toml``; and a keys file
(``api.keys_file``, TOML) of named keys limited to tenant prefixes::

    [keys.emulator]
    key = "s3cr3t-at-least-16-chars"
    prefixes = ["0a1b2c3d4e5f"]
    role = "producer"            # or "admin"; default producer

A prefix ``P`` gives exactly the topics ``P.<name>`` and the streams ``streaming-P-<name>``: the name is
parsed (:func:`pinpipe.access.owner`), never compared as a string prefix.

A client sends its key as ``X-API-Key: K``, ``Authorization: Bearer K``, ``Authorization: Basic
base64(USER:K)`` (the key is the password; the user name is ignored, as Confluent's clients and browsers
send one), or, from an AWS SDK, as the access key id of a SigV4 ``Authorization: AWS4-HMAC-SHA256
Credential=K/...`` header. Only that id is checked, never the signature: keys have no secret beside
themselves, so whoever holds the key may call, exactly as with ``X-API-Key`` (send the key over TLS). The
header's bytes are compared with every configured key through their SHA-256 digests in constant time, so the
time taken depends neither on which key matched nor on the lengths involved. Keys are never logged; only a
key's name is (``cli``, ``admin`` for configured keys, the ``[keys.NAME]`` of a keys file).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from pinpipe.access import key_problem, owner, prefix_problem
from pinpipe.config import ApiSettings
from pinpipe.errors import AuthenticationError, ConfigError

ROLES = ("producer", "admin")

OPENAPI_SCHEMES: dict[str, dict[str, str]] = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "Bearer": {"type": "http", "scheme": "bearer"},
    "Basic": {"type": "http", "scheme": "basic"},
}
"""The ways of sending a key, as /openapi.json publishes them when keys are configured."""

OPENAPI_SECURITY: list[dict[str, list[str]]] = [{name: []} for name in OPENAPI_SCHEMES]
"""An operation's ``security``: any one of :data:`OPENAPI_SCHEMES`."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name, the prefixes it may use (None: every prefix) and its role."""

    name: str
    prefixes: frozenset[str] | None
    admin: bool = False

    def may_use(self, name: str) -> bool:
        """True when the topic or stream ``name`` belongs to one of this principal's prefixes."""
        return self.prefixes is None or owner(name) in self.prefixes


ANONYMOUS = Principal("anonymous", None)
"""The caller when no key is configured: a producer on every prefix, never an admin."""


@dataclass(frozen=True)
class _Key:
    digest: bytes
    principal: Principal


def _digest(secret: bytes) -> bytes:
    return hashlib.sha256(secret).digest()


def _load_keys_file(path: Path) -> list[_Key]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read API keys file {path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"API keys file {path} is not valid TOML: {exc}") from exc
    entries = data.get("keys") or {}
    if not isinstance(entries, dict):
        raise ConfigError(f"API keys file {path}: 'keys' must be tables [keys.NAME]")
    return [_key_entry(path, name, entry) for name, entry in entries.items()]


def _key_entry(path: Path, name: str, entry: Any) -> _Key:
    where = f"API keys file {path}: [keys.{name}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(entry) - {"key", "prefixes", "role"})
    if unknown:
        raise ConfigError(f"{where} has unknown fields {unknown}: only key, prefixes and role are read")
    secret = entry.get("key")
    if not isinstance(secret, str) or not secret:
        raise ConfigError(f'{where} needs a non-empty key = "..."')
    problem = key_problem(secret)
    if problem:
        raise ConfigError(f"{where}: {problem}")
    prefixes = entry.get("prefixes")
    if not isinstance(prefixes, list) or not prefixes or not all(isinstance(p, str) for p in prefixes):
        raise ConfigError(f'{where} prefixes must be a non-empty list of strings, e.g. ["0a1b2c3d4e5f"]')
    for prefix in prefixes:
        problem = prefix_problem(prefix)
        if problem:
            raise ConfigError(f"{where}: {problem}")
    role = entry.get("role", "producer")
    if role not in ROLES:
        raise ConfigError(f"{where} role must be one of {', '.join(ROLES)}")
    principal = Principal(name, frozenset(prefixes), admin=role == "admin")
    return _Key(_digest(secret.encode("ascii")), principal)


def _configured(keys: tuple[SecretStr, ...], name: str, admin: bool) -> list[_Key]:
    return [
        _Key(_digest(k.get_secret_value().encode("ascii")), Principal(f"{name}{i or ''}", None, admin))
        for i, k in enumerate(keys)
    ]


class KeyRing:
    """The configured keys; :meth:`authenticate` turns request headers into a :class:`Principal`."""

    def __init__(self, settings: ApiSettings) -> None:
        self._keys = _configured(settings.api_keys, "cli", False)
        self._keys += _configured(settings.admin_keys, "admin", True)
        if settings.keys_file is not None:
            self._keys.extend(_load_keys_file(settings.keys_file))
        seen: set[bytes] = set()
        names: set[str] = set()  # a name scopes idempotency keys and the rate limit: one key each
        for key in self._keys:
            if key.digest in seen:
                raise ConfigError(
                    f"API key '{key.principal.name}' is configured twice (one secret, two keys)"
                )
            if key.principal.name in names:
                raise ConfigError(
                    f"two API keys are named '{key.principal.name}': rename the [keys.NAME] of the keys "
                    "file (configured keys are named cli, cli1, ... and admin, admin1, ...)"
                )
            seen.add(key.digest)
            names.add(key.principal.name)

    @property
    def open(self) -> bool:
        """True when no key is configured: every caller is :data:`ANONYMOUS`."""
        return not self._keys

    def authenticate(self, x_api_key: str | None, authorization: str | None) -> Principal:
        """The caller's principal, or AuthenticationError when the key is missing or unknown (the
        message never repeats what was sent)."""
        if self.open:
            return ANONYMOUS
        given = x_api_key if x_api_key is not None else key_of_authorization(authorization)
        if not given:
            raise AuthenticationError("missing API key", missing=True)
        candidate = _digest(_header_bytes(given))
        found = None
        for key in self._keys:  # every key is checked: the time does not depend on which one matched
            if hmac.compare_digest(key.digest, candidate):
                found = key.principal
        if found is None:
            raise AuthenticationError("invalid API key", missing=False)
        return found


def key_of_authorization(authorization: str | None) -> str | None:
    """The API key an ``Authorization`` header carries (Bearer, Basic password, SigV4 access key id)."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    scheme, token = scheme.lower(), token.strip(" ")
    if scheme == "bearer":
        return token
    if scheme == "basic":
        try:
            decoded = base64.b64decode(token, validate=True).decode("latin-1")
        except (binascii.Error, ValueError):
            return None
        return decoded.partition(":")[2] or None
    if scheme == "aws4-hmac-sha256":
        match = _SIGV4_CREDENTIAL.search(token)
        return match.group(1) if match else None
    return None


_SIGV4_CREDENTIAL = re.compile(r"(?:^|[\s,])Credential=([^/,\s]+)/")
"""The access key id in ``Credential=ID/DATE/REGION/SERVICE/aws4_request``."""


def _header_bytes(value: str) -> bytes:
    """The bytes the client sent: the server decodes header bytes as latin-1, which this undoes."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:  # not from an HTTP header; matches no (ASCII) key anyway
        return value.encode("utf-8", "surrogatepass")
