"""Reading the real data in data/aicore (the ``aicore`` fixture's folder) in tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPLAY = "seed100_replay_first2524.jsonl"
"""The original emulator's first 2,524 iterations at seed 100: one {"pin", "geo", "user"} line each."""


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON Lines file, decoded."""
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def replay(aicore: Path) -> list[dict[str, Any]]:
    """The recorded iterations of :data:`REPLAY`, in order."""
    return read_jsonl(aicore / REPLAY)
