"""How much of the lake the DuckDB engine stages at once: its memory limit and the chunks of objects."""

from __future__ import annotations

from typing import Any

from pinpipe.engines.duckdb.sql import fetch_one

MAX_MEMORY = 2 << 30
_MIN_MEMORY = 256 << 20


def memory_limit(lake_bytes: int) -> int:
    """Three fifths of the lake's size, between 256 MB and 2 GB: the job's peak (the limit plus ~150 MB of
    Python and Arrow) stays below the size of what it reads.

    DuckDB spills beyond it (sorts, joins and tables, to ``workdir/tmp``); a kind too big to stage and clean
    within it is cleaned in chunks (:data:`STAGE_MEMORY`). At 1M posts the peak is 0.74x the raw size.
    """
    return max(_MIN_MEMORY, min(MAX_MEMORY, lake_bytes * 3 // 5))


STAGE_MEMORY = 1.8
"""DuckDB memory per byte of raw JSON staged and cleaned at once without spilling: 445 MB of pin objects
(1M posts) stage in 352 MB, and cleaning them into Parquet peaked at ~800 MB. A kind bigger than the memory
limit / this is cleaned in chunks of objects: at 1M posts (limit 432 MB) the pins in two, 2.7-2.9 s,
against 3.1-3.4 s for a single pass that spilled ~170 MB."""

_UNITS = {"bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


def chunk_bytes(con: Any) -> int | None:
    """Raw bytes of lake objects to stage and clean at once: the memory limit / :data:`STAGE_MEMORY`.

    None (no chunking) if DuckDB prints its limit in a form not understood here (it prints e.g. '411.9 MiB').
    """
    text = fetch_one(con, "SELECT current_setting('memory_limit')")
    number, _, unit = str(text).partition(" ")
    try:
        return int(float(number) * _UNITS[unit] / STAGE_MEMORY)
    except (ValueError, KeyError):
        return None


def chunks(sizes: list[int], budget: int | None) -> list[list[int]]:
    """Object indexes in runs of consecutive objects of about equal bytes, as few runs as keep each within
    ``budget`` (a single object may exceed it); one run if ``budget`` is None, ``[[]]`` without objects."""
    if not sizes:
        return [[]]
    total = sum(sizes) or 1
    count = max(1, -(-total // budget)) if budget else 1
    runs: dict[int, list[int]] = {}
    before = 0
    for i, size in enumerate(sizes):  # an object goes to the run its middle byte falls in
        runs.setdefault(min(count - 1, (2 * before + size) * count // (2 * total)), []).append(i)
        before += size
    return list(runs.values())
