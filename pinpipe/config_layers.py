"""How the layers of the settings under the flags are read, each as nested values
(``{"log": {"url": "..."}}``): ``pinpipe.toml``, ``.env`` and the environment's variables, which
:mod:`pinpipe.config` (the one reader of the environment) passes in and merges.

A variable ``PINPIPE_<FIELD>`` (any case) sets a top-level field, ``PINPIPE_<SECTION>__<FIELD>`` one
field of a section, ``PINPIPE_LOG__KAFKA__<KEY>`` one key of a table (lowercased); a section, table or
list given whole is JSON. Other ``PINPIPE_*`` variables are not settings.

Read here rather than through pydantic-settings: importing that library (asyncio, its plugin scan) took
~70 ms of every command's start, an eighth of a small incremental batch run.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from pinpipe.errors import ConfigError

ENV_PREFIX = "pinpipe_"
DELIMITER = "__"
DOTENV = Path(".env")


def toml_layer(path: Path) -> dict[str, Any]:
    """The TOML file's values; nothing when it does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    import tomllib  # only when there is a file: most runs have none

    try:
        return tomllib.loads(data.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def dotenv_layer(model: type[BaseModel], path: Path = DOTENV) -> dict[str, Any]:
    """The settings among ``.env``'s variables (read as python-dotenv reads them); nothing without one."""
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return variables_layer(model, dotenv_values(path), "the .env file")


def variables_layer(
    model: type[BaseModel], variables: Mapping[str, str | None], where: str
) -> dict[str, Any]:
    """The settings named by ``variables`` (see the module's docstring), values still text except JSON
    given for a section, table or list."""
    given = sorted(
        (name.lower()[len(ENV_PREFIX) :], value)
        for name, value in variables.items()
        if value is not None and name.lower().startswith(ENV_PREFIX)
    )
    out: dict[str, Any] = {}
    for field, info in model.model_fields.items():
        whole = next((value for name, value in given if name == field), None)
        if whole is not None:
            out[field] = _decode(info.annotation, whole, field, where)
        for name, value in given:
            if not name.startswith(field + DELIMITER):
                continue
            path = name[len(field) + len(DELIMITER) :].split(DELIMITER)
            node = out.setdefault(field, {})
            if not isinstance(node, dict):
                continue  # a scalar field has no parts
            annotation = _inner(info.annotation, path[0])
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = _decode(annotation, value, field, where) if len(path) == 1 else value
        if out.get(field) == {} and whole is None:
            del out[field]
    return out


def merge(lower: dict[str, Any], higher: Mapping[str, Any]) -> dict[str, Any]:
    """``higher`` over ``lower``, tables merged key by key at every depth."""
    merged = dict(lower)
    for key, value in higher.items():
        below = merged.get(key)
        merged[key] = merge(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
    return merged


def _inner(annotation: Any, name: str) -> Any:
    """The annotation of field ``name`` of the section ``annotation`` (None when it has no such field)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        info = annotation.model_fields.get(name)
        return None if info is None else info.annotation
    return None


def _decode(annotation: Any, value: str, field: str, where: str) -> Any:
    """``value`` as JSON when ``annotation`` is a section, table or list, else as given."""
    if not _structured(annotation):
        return value
    try:
        return json.loads(value)
    except ValueError:  # the value is not repeated: it may be a key
        raise ConfigError(
            f'invalid setting: error parsing value for field "{field}" from {where}; in the environment '
            """a section, table or list is JSON, e.g. PINPIPE_API__API_KEYS='["key1", "key2"]'"""
        ) from None


def _structured(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_structured(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    if origin is not None:
        return origin in (list, tuple, set, frozenset, dict)
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
