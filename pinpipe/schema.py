"""The three record kinds (pin, geo, user), their topic and stream names, and record validation.

A record is the JSON object the emulator reads from one source row. Validation checks the type of every
known field that is present and not null, and that the tables can hold its value: an int is a BIGINT
(-2**63..2**63-1), a float a finite DOUBLE, a datetime one ``datetime.fromisoformat`` reads (years 1 to
9999, what Arrow, Delta, DuckDB and Spark all store). Unknown fields are kept (the REST proxy stores what
it is given) and never reach a table; missing fields are allowed (the real pin table has gaps, e.g.
``downloaded``). The API refuses a record that fails here, and every consumer dead-letters or quarantines
one that reached the log another way.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

KINDS: tuple[Kind, ...] = ("pin", "geo", "user")
Kind = Literal["pin", "geo", "user"]

DEFAULT_PREFIX = "0a1b2c3d4e5f"
"""A fixed 12-hex-character id, standing for the per-user prefix of the original deployment."""

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
"""How datetimes travel on the wire (the original emulator's format)."""

SOURCE_TABLES: dict[Kind, str] = {"pin": "pinterest_data", "geo": "geolocation_data", "user": "user_data"}

# Field -> JSON type name, in the source table's column order.
FIELDS: dict[Kind, dict[str, str]] = {
    "pin": {
        "index": "int",
        "unique_id": "str",
        "title": "str",
        "description": "str",
        "poster_name": "str",
        "follower_count": "str",
        "tag_list": "str",
        "is_image_or_video": "str",
        "image_src": "str",
        "downloaded": "int",
        "save_location": "str",
        "category": "str",
    },
    "geo": {
        "ind": "int",
        "timestamp": "datetime",
        "latitude": "float",
        "longitude": "float",
        "country": "str",
    },
    "user": {"ind": "int", "first_name": "str", "last_name": "str", "age": "int", "date_joined": "datetime"},
}

KEY_FIELD: dict[Kind, str] = {"pin": "index", "geo": "ind", "user": "ind"}
"""The column holding the row index (``ind``) that joins the three tables."""


def topic_name(prefix: str, kind: Kind) -> str:
    """Kafka REST proxy topic of a kind: ``<prefix>.pin``."""
    return f"{prefix}.{kind}"


def stream_name(prefix: str, kind: Kind) -> str:
    """Kinesis stream of a kind: ``streaming-<prefix>-pin``."""
    return f"streaming-{prefix}-{kind}"


def topic_names(prefix: str) -> dict[Kind, str]:
    return {kind: topic_name(prefix, kind) for kind in KINDS}


def stream_names(prefix: str) -> dict[Kind, str]:
    return {kind: stream_name(prefix, kind) for kind in KINDS}


@functools.lru_cache(maxsize=256)  # asked several times per produce request, of a few names
def kind_of_any(name: str) -> Kind | None:
    """The kind of a topic or stream name whatever its prefix (``x.pin``, ``streaming-x-geo``)."""
    stream = name.startswith("streaming-")
    for kind, topic_end, stream_end in _ENDINGS:
        if name.endswith(topic_end) or (stream and name.endswith(stream_end)):
            return kind
    return None


_ENDINGS = [(kind, f".{kind}", f"-{kind}") for kind in KINDS]


BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
"""The range of an int field: what a BIGINT (Arrow int64, Delta long) holds."""


def _type_ok(expected: str, value: Any) -> bool:
    if expected == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected == "str":
        return isinstance(value, str)
    if expected == "datetime":
        if not isinstance(value, str):
            return False
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return False
        return True
    raise AssertionError(expected)


def _range_problem(expected: str, value: Any) -> str | None:
    """Why the tables cannot hold a value of the right JSON type, or None."""
    if expected == "int" and not BIGINT_MIN <= value <= BIGINT_MAX:
        return "an integer from -2**63 to 2**63-1 (BIGINT)"
    if expected == "float":
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer too large for a double
            finite = False
        if not finite:
            return "a finite number (DOUBLE)"
    return None


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


_EXACT: dict[str, type] = {"int": int, "float": float, "str": str}
# Per kind: (field, the Python type that certainly passes, JSON type): the fast path of validate_record.
_PLAN: dict[str, tuple[tuple[str, type | None, str], ...]] = {
    kind: tuple((field, _EXACT.get(expected), expected) for field, expected in fields.items())
    for kind, fields in FIELDS.items()
}


# Per kind: every field, the exact type each must have (datetimes are strings), the int, float and datetime
# fields: validate_record's check of a whole record at once (a record with a missing, null or other-typed
# field takes the field-by-field path, which says what is wrong).
_WHOLE: dict[
    str, tuple[tuple[str, ...], tuple[type, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]
] = {
    kind: (
        tuple(fields),
        tuple(_EXACT.get(expected, str) for expected in fields.values()),
        tuple(f for f, expected in fields.items() if expected == "int"),
        tuple(f for f, expected in fields.items() if expected == "float"),
        tuple(f for f, expected in fields.items() if expected == "datetime"),
    )
    for kind, fields in FIELDS.items()
}


def _whole_record_ok(kind: Kind, value: dict[str, Any]) -> bool:
    fields, types, ints, floats, datetimes = _WHOLE[kind]
    if tuple(map(type, map(value.get, fields))) != types:
        return False
    for field in ints:
        if not BIGINT_MIN <= value[field] <= BIGINT_MAX:
            return False
    for field in floats:
        number = value[field]
        if number - number != 0.0:  # inf or NaN
            return False
    return all(_type_ok("datetime", value[field]) for field in datetimes)


def identity_problem(kind: Kind, value: Any) -> str | None:
    """Why an object of ``kind`` cannot be told apart from others (no identifying ``index``/``ind``), or
    None. The API refuses such a record; the consumers still clean one that reached the log another way."""
    field = KEY_FIELD[kind]
    if type(value) is dict and value.get(field) is not None:  # the common case, no Mapping check
        return None
    if isinstance(value, Mapping) and value.get(field) is None:
        return f"a {kind} record needs its identifying field '{field}' (an integer)"
    return None


def validate_record(kind: Kind, value: Any) -> list[str]:
    """Problems with ``value`` as a record of ``kind``; an empty list means it is valid."""
    if type(value) is dict and _whole_record_ok(kind, value):
        return []
    if type(value) is not dict and not isinstance(value, Mapping):
        return [f"a {kind} record must be a JSON object, got {type(value).__name__}"]
    problems = []
    for field, exact, expected in _PLAN[kind]:
        present: Any = value.get(field)
        if present is None:
            continue
        # the ingestion API validates every record: keep the common case cheap
        # (x - x is 0.0 for a finite float, NaN for inf and NaN)
        found = type(present)
        if found is exact and (
            exact is str
            or (BIGINT_MIN <= present <= BIGINT_MAX if exact is int else present - present == 0.0)
        ):
            continue
        if not _type_ok(expected, present):
            problems.append(f"field '{field}' must be {expected}, got {_shown(present)}")
        elif (needed := _range_problem(expected, present)) is not None:
            problems.append(f"field '{field}' must be {needed}, got {_shown(present)}")
    return problems
