"""JSON that keeps every number exactly as it was sent: what the API stores equals what it acknowledged.

A parser hands numbers over as doubles and 64-bit integers, and an encoder writes them back in its own
spelling, so a plain parse and re-encode changes values: ``1e400`` becomes ``null`` (or ``Infinity``),
``2**70`` becomes ``1.1805916207174113e+21``, ``1e-400`` becomes ``0.0``, ``-0`` becomes ``0``. Here a
number whose text the encoder would not give back is parsed as :class:`ExactInt` or :class:`ExactFloat`:
an ``int``/``float`` for validation, that also carries its text, which :func:`dumps` writes verbatim.
Strings, objects and arrays keep their value (the log stores compact JSON, so whitespace and string
escapes may be spelled differently; the value is the same).

The fast path is orjson: when re-encoding the parsed document gives the body back byte for byte (what
orjson-encoding clients such as pinpipe's own emulator send), every number is already exact. The other
path is Python's parser with a call per number, about 2 MB/s: inside :func:`fast_only` it is not run
(:class:`NeedsPythonParse` instead), so a server can run it off its event loop.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import orjson

_ORJSON_INT_MIN, _ORJSON_INT_MAX = -(2**63), 2**64 - 1
"""The integers orjson encodes; others are written from their text."""


_FAST_ONLY: ContextVar[bool] = ContextVar("pinpipe_exact_json_fast_only", default=False)


_PYTHON_PARSE: ContextVar[contextlib.AbstractContextManager[Any] | None] = ContextVar(
    "pinpipe_exact_json_python_parse", default=None
)


@contextlib.contextmanager
def python_parse_under(lock: contextlib.AbstractContextManager[Any]) -> Iterator[None]:
    """:func:`loads` in this block runs Python's parser holding ``lock`` (a ``threading.Lock``: a thread
    waiting for it holds no GIL), so a server can let one tenant's slow parses take turns."""
    token = _PYTHON_PARSE.set(lock)
    try:
        yield
    finally:
        _PYTHON_PARSE.reset(token)


class NeedsPythonParse(Exception):
    """Raised by :func:`loads` inside :func:`fast_only` for a body orjson does not read back exactly, or
    at all: Python's (slow) parser reads it, or says why it is not JSON. Not a ValueError: it may be
    valid JSON."""


@contextlib.contextmanager
def fast_only() -> Iterator[None]:
    """:func:`loads` in this block raises NeedsPythonParse rather than parse in Python."""
    token = _FAST_ONLY.set(True)
    try:
        yield
    finally:
        _FAST_ONLY.reset(token)


class _Exact:
    """A number that keeps the text it was sent as; ``repr`` (which the encoder writes) is that text."""

    text: str

    def __new__(cls, text: str) -> _Exact:
        number = super().__new__(cls, text)  # type: ignore[call-arg]
        number.text = text
        return number

    def __repr__(self) -> str:
        return self.text


class ExactInt(_Exact, int):
    """An integer with the text it was sent as (``-0``, or beyond 64 bits)."""


class ExactFloat(_Exact, float):
    """A number with a fraction or exponent whose double does not print back as its text (``1.10``,
    ``1e2``, ``1e-400``, ``1e400``: the last one is ``inf`` as a double, and refused in a known field)."""


class IntegerTooLong(ValueError):
    """An integer of more digits than Python converts (``sys.get_int_max_str_digits()``, 4300): valid
    JSON that no reader here (the API, the stream processor, the batch job's exact path) can take."""


def _int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        digits, limit = len(text.lstrip("-")), sys.get_int_max_str_digits()
        raise IntegerTooLong(f"an integer of {digits} digits: at most {limit} are read") from None
    if _ORJSON_INT_MIN <= value <= _ORJSON_INT_MAX and (value != 0 or text == "0"):
        return value
    return ExactInt(text)


def _float(text: str) -> float:
    value = float(text)
    if orjson.dumps(value) == text.encode():
        return value
    return ExactFloat(text)


def _refuse_constant(constant: str) -> Any:
    raise ValueError(f"{constant} is not valid JSON")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise ValueError(f"the member {name!r} is named twice in one object")
            seen.add(name)
    return value


def loads(body: bytes, unique_names: bool = False) -> Any:
    """The JSON document in ``body``, numbers exact; ValueError (or a subclass) when it is not JSON, or
    when a string is not valid Unicode (a lone surrogate escape such as ``"\\ud800"``, as orjson says).
    ``unique_names``: an object naming a member twice is a ValueError too (a parser keeps one of them,
    so the value would not be the one sent)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    else:
        try:
            if orjson.dumps(doc) == body:  # a member named twice would be written once: never equal
                return doc
        except orjson.JSONEncodeError:  # nested deeper than orjson writes (254 levels)
            pass
    if _FAST_ONLY.get():
        raise NeedsPythonParse
    lock = _PYTHON_PARSE.get()
    with lock if lock is not None else contextlib.nullcontext():
        doc = json.loads(
            body.decode("utf-8"),
            parse_int=_int,
            parse_float=_float,
            parse_constant=_refuse_constant,
            object_pairs_hook=_unique_object if unique_names else None,
        )
    try:
        dumps(doc)
    except ValueError as exc:
        raise ValueError(f"a string is not valid Unicode: {exc}") from None
    return doc


def _verbatim(value: Any) -> Any:
    if isinstance(value, ExactInt | ExactFloat):
        return orjson.Fragment(value.text)
    if isinstance(value, int):  # a subclass of int that is not ours (never from loads)
        return int(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of a value from :func:`loads`, every number written as it was sent.

    Raises ValueError (UnicodeEncodeError) for a string that is not valid Unicode (a lone surrogate)."""
    try:
        return orjson.dumps(value, default=_verbatim, option=orjson.OPT_PASSTHROUGH_SUBCLASS)
    except orjson.JSONEncodeError:  # a lone surrogate, or deeper than orjson writes: say which
        return _text(value).encode("utf-8")


def _text(value: Any) -> str:
    """What :func:`dumps` writes, in Python (only for what orjson refuses: values nested 255 deep)."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else "true" if value else "false"
    if isinstance(value, ExactInt | ExactFloat):
        return value.text
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return orjson.dumps(value).decode()
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_text(str(k))}:{_text(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"not JSON: {type(value).__name__}")
