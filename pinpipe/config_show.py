"""What ``pinpipe config show`` prints: every effective setting, the layer it came from, secrets masked.

The layers are those of :mod:`pinpipe.config`, highest first: a flag, the environment, ``.env``,
``pinpipe.toml``, else the default. Each setting is credited to the highest layer that gives it.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse

from pydantic import BaseModel, SecretStr

from pinpipe.config import Settings, _nest, setting_layers

MASK = "********"
SECRET_NAME = re.compile(r"pass|secret|token|key|credential", re.IGNORECASE)
"""Names whose values are masked in tables of free-form settings (log.kafka's sasl.password ...)."""

_MISSING = object()


def _layers(overrides: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, nested values) of each layer above the defaults, highest first."""
    return [("flag", _nest(overrides)), *setting_layers()]


def _lookup(tree: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = tree
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _leaves(settings: Settings) -> list[tuple[tuple[str, ...], Any]]:
    """(path, value) of every setting; a free-form table (log.kafka) is one value. Values stay as the
    model holds them, so a SecretStr is still one."""
    out: list[tuple[tuple[str, ...], Any]] = []
    for name, value in settings:
        if isinstance(value, BaseModel):
            out += [((name, field), inner) for field, inner in value]
        else:
            out.append(((name,), value))
    return out


def mask_url(url: str) -> str:
    """``url`` with a password in its user part and secret-looking query values masked."""
    parsed = urlparse(url)
    if not parsed.scheme:
        return url
    netloc = parsed.netloc
    if parsed.password is not None:
        netloc = netloc.replace(f":{parsed.password}@", f":{MASK}@", 1)
    query = parsed.query
    if query and SECRET_NAME.search(query):
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if SECRET_NAME.search(k) else v) for k, v in pairs], safe="*/:,")
    if netloc == parsed.netloc and query == parsed.query:
        return url  # nothing to mask: as given (geturl would drop an empty authority, kinesis://?...)
    return parsed._replace(netloc=netloc, query=query).geturl()


def shown(value: Any) -> str:
    """A setting's value as printed, with every secret masked."""
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, list | tuple):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(
            f"{k} = {MASK if SECRET_NAME.search(str(k)) else shown(v)}" for k, v in value.items()
        )
        return "{" + inner + "}"
    if isinstance(value, str):
        return mask_url(value)
    return "" if value is None else str(value)


def _source(layers: list[tuple[str, dict[str, Any]]], path: tuple[str, ...]) -> str:
    variable = "PINPIPE_" + "__".join(path).upper()
    for label, values in layers:
        if _lookup(values, path) is not _MISSING:
            return f"{label} ({variable})" if label in ("environment", ".env") else label
    return "default"


def effective_settings(settings: Settings, overrides: dict[str, Any]) -> list[dict[str, str]]:
    """One row per setting, ``{"setting": "api.port", "value": "8000", "source": "default"}``, then the
    locations the commands use (``log_url`` ...), "derived from workdir" when their setting is empty."""
    layers = _layers(overrides)
    rows = [
        {"setting": ".".join(path), "value": shown(value), "source": _source(layers, path)}
        for path, value in _leaves(settings)
    ]
    locations = {
        "source_url": ("source", "url"),
        "log_url": ("log", "url"),
        "stream_log_url": ("log", "stream_url"),
        "lake_url": ("lake", "url"),
        "tables_url": ("engine", "tables_url"),
    }
    for name, path in locations.items():
        given = _lookup(settings.model_dump(), path)
        source = _source(layers, path) if given else "derived from workdir"
        if name == "stream_log_url" and not given:
            source = "same as log_url"
        elif name == "tables_url" and not given and settings.lake.url.startswith("s3://"):
            source = "beside lake.url"
        rows.append({"setting": name, "value": shown(getattr(settings, name)), "source": source})
    return rows
