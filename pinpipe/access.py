"""Who owns a name, and what a tenant prefix and an API key must look like.

A tenant prefix ``P`` owns exactly the topics ``P.<name>`` and the streams ``streaming-P-<name>``. A prefix is
1 to 64 characters of ``a-z``, ``0-9`` and ``_``, starting with a letter or a digit (the default,
``0a1b2c3d4e5f``, is 12 hex digits). It can hold neither ``.`` nor ``-``, the separators of the two name
forms, so a name has at most one owner: ``0a1b.geo`` belongs to ``0a1b`` and to no other prefix, and
``streaming-ab-c-geo`` to ``ab`` (never to ``ab-c``, which is not a prefix). Upper case is refused so two
tenants never differ by case alone.

A configured API key is 16 to 1024 characters of printable ASCII without spaces (``!`` to ``~``): what an
HTTP header carries unchanged, so the bytes a client sends are the bytes configured.
"""

from __future__ import annotations

import re

PREFIX = re.compile(r"[a-z0-9][a-z0-9_]{0,63}")
PREFIX_RULE = "1 to 64 characters of a-z, 0-9 and _, starting with a letter or digit"
STREAM_START = "streaming-"
KEY_MIN_LENGTH = 16
KEY_MAX_LENGTH = 1024
KEY_CHARACTERS = re.compile(r"[!-~]*")


def prefix_problem(prefix: object) -> str | None:
    """Why ``prefix`` is not a tenant prefix, or None when it is one."""
    if not isinstance(prefix, str) or not PREFIX.fullmatch(prefix):
        return f"invalid prefix {prefix!r}: a prefix is {PREFIX_RULE}"
    return None


def check_prefix(prefix: str) -> str:
    """``prefix`` itself, or ValueError saying what a prefix is (for settings validators)."""
    problem = prefix_problem(prefix)
    if problem:
        raise ValueError(problem)
    return prefix


def owner(name: str) -> str | None:
    """The prefix owning a topic (``P.<name>``) or stream (``streaming-P-<name>``) name, None for a name no
    prefix owns."""
    if name.startswith(STREAM_START):
        prefix, separator, rest = name[len(STREAM_START) :].partition("-")
    else:
        prefix, separator, rest = name.partition(".")
    if separator and rest and PREFIX.fullmatch(prefix):
        return prefix
    return None


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be a configured API key, or None; never repeats the key itself."""
    if key != key.strip():
        return "an API key must not begin or end with a space"
    if not key.isascii():
        return "an API key must be ASCII (a header carries other characters in no agreed encoding)"
    if not KEY_CHARACTERS.fullmatch(key):
        return "an API key must be printable ASCII without spaces or control characters"
    if not KEY_MIN_LENGTH <= len(key) <= KEY_MAX_LENGTH:
        return f"an API key must be {KEY_MIN_LENGTH} to {KEY_MAX_LENGTH} characters long (got {len(key)})"
    return None
