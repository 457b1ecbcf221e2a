"""Embedded formats of the REST proxy: which content types carry JSON values and which base64 bytes.

A v2 produce's ``Content-Type`` names how record keys and values are embedded in the JSON body:

- ``json``: ``application/vnd.kafka.json.v2+json`` (and its v1 alias): keys and values are JSON.
- ``binary``: ``application/vnd.kafka.binary.v2+json`` (and its v1 alias), and the generic types that name
  no format (``application/vnd.kafka.v2+json``, ``application/vnd.kafka.v1+json``,
  ``application/vnd.kafka+json``, ``application/json``): keys and values are base64 strings, as the
  Confluent proxy assumed when the format was omitted (what its Node.js client sends).

A binary value on a pin/geo/user topic must decode to UTF-8 JSON of that kind: it is parsed with its exact
numbers and validated like a json value, or refused per record (42206); a key or value that is not a
base64 string is a malformed request, refused whole (42206), as the documented schema says. Avro, JSON
Schema and Protobuf need a schema registry: 415 naming the types accepted. Headers (``[{"name": ...,
"value": base64 or null}]``, the v3 form) are stored with the record; names starting ``pinpipe-`` are the
log's own and refused.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Literal

from pinpipe.errors import ErrorCode
from pinpipe.ingest.errors import ApiError
from pinpipe.ingest.models import BASE64
from pinpipe.ingest.service import Item, parse_json
from pinpipe.log.base import RESERVED_HEADER_PREFIX, Headers

Format = Literal["json", "binary"]

JSON_TYPES = frozenset({"application/vnd.kafka.json.v2+json", "application/vnd.kafka.json.v1+json"})
BINARY_TYPES = frozenset(
    {
        "application/vnd.kafka.binary.v2+json",
        "application/vnd.kafka.binary.v1+json",
        "application/vnd.kafka.v2+json",
        "application/vnd.kafka.v1+json",
        "application/vnd.kafka+json",
        "application/json",
    }
)
ACCEPTED = JSON_TYPES | BINARY_TYPES
SCHEMA_FORMATS = re.compile(r"application/vnd\.kafka\.(avro|jsonschema|protobuf)\.v[12]\+json")
BASE64_TEXT = re.compile(BASE64)


def embedded_format(content_type: str | None) -> Format:
    """The embedded format a produce's ``Content-Type`` names, or ApiError 41501 naming what is accepted."""
    if content_type in JSON_TYPES:  # as clients send it: no parameters, lower case
        return "json"
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    accepted = "application/vnd.kafka.json.v2+json (JSON values) or application/vnd.kafka.binary.v2+json"
    if SCHEMA_FORMATS.fullmatch(media_type):
        raise ApiError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"{media_type} needs a schema registry, which pinpipe has not: send {accepted} (base64 values)",
        )
    if media_type in JSON_TYPES:
        return "json"
    if media_type in BINARY_TYPES:
        return "binary"
    shown = repr(media_type) if media_type else "missing"
    raise ApiError(
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        f"Content-Type {shown} not accepted: send {accepted} (base64 values)",
    )


def decode_base64(text: str) -> bytes:
    """Standard padded base64 exactly as the documented pattern says (b64decode alone allows more), or
    ValueError."""
    if not BASE64_TEXT.fullmatch(text):
        raise ValueError("not base64")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


def binary_item(value: Any, key: Any, where: str, kind_known: bool) -> Item:
    """A binary-format record: the key's bytes, and the value parsed as JSON on a pin/geo/user topic
    (per-record problem when it is not) or kept as bytes on another topic. A key or value that is not a
    base64 string or null is a malformed request (42206), as the documented schema says."""
    decoded: dict[str, bytes | None] = {}
    for field, given in (("key", key), ("value", value)):
        if given is not None and not isinstance(given, str):
            raise ApiError(
                ErrorCode.INVALID,
                f"{where}.{field} must be a base64 string or null in the binary format; send JSON "
                "values as application/vnd.kafka.json.v2+json",
            )
        try:
            decoded[field] = None if given is None else decode_base64(given)
        except ValueError:
            raise ApiError(
                ErrorCode.INVALID, f"{where}.{field} is not base64 (standard alphabet, padded)"
            ) from None
    raw = decoded["value"]
    if raw is None:
        return Item(None, decoded["key"], problem="value is null: pinpipe stores no tombstones")
    return bytes_item(
        raw, decoded["key"], kind_known, "value is not base64 of UTF-8 JSON (a record of this topic)"
    )


def bytes_item(raw: bytes, key: bytes | None, kind_known: bool, not_json: str) -> Item:
    """A record sent as bytes: kept as they are on a topic of no kind; on a pin/geo/user topic parsed as
    JSON (numbers exact) for validation, or refused per record with ``not_json``."""
    if not kind_known:
        return Item(None, key, raw=raw)
    try:
        return Item(parse_json(raw), key)
    except ApiError:
        return Item(None, key, problem=not_json)


def parse_headers(given: Any, where: str) -> Headers:
    """``[{"name": str, "value": base64 or null}, ...]`` as (name, bytes) pairs, or ApiError 42206."""
    if given is None:
        return ()
    if not isinstance(given, list):
        raise ApiError(ErrorCode.INVALID, f"{where}.headers must be an array of {{'name', 'value'}} objects")
    headers = []
    for i, header in enumerate(given):
        name = header.get("name") if isinstance(header, dict) else None
        value = header.get("value") if isinstance(header, dict) else None
        if not isinstance(name, str) or not name or not _utf8(name):
            raise ApiError(
                ErrorCode.INVALID, f"{where}.headers[{i}].name must be a non-empty string of valid Unicode"
            )
        if name.lower().startswith(RESERVED_HEADER_PREFIX):
            raise ApiError(
                ErrorCode.INVALID,
                f"{where}.headers[{i}].name: names starting {RESERVED_HEADER_PREFIX!r} are reserved",
            )
        if value is not None and not isinstance(value, str):
            raise ApiError(ErrorCode.INVALID, f"{where}.headers[{i}].value must be a base64 string or null")
        try:
            headers.append((name, None if value is None else decode_base64(value)))
        except ValueError:
            raise ApiError(ErrorCode.INVALID, f"{where}.headers[{i}].value is not base64") from None
    return tuple(headers)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
