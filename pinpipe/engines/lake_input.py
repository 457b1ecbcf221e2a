"""Finding a kind's objects in the lake and the exact, record-by-record reading of a suspicious object.

Engines read healthy objects in bulk; an object their fast reader rejects or flags is read here instead:
every line is parsed and checked with ``schema.validate_record``, good records go on and bad ones become
:class:`~pinpipe.engines.base.QuarantinedRecord` (object key, 1-based line, reason).
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pinpipe.engines.base import QuarantinedRecord
from pinpipe.errors import ValidationError
from pinpipe.lake.store import FileStore, ObjectStore
from pinpipe.schema import Kind, topic_name, validate_record
from pinpipe.transform.clean import conform_raw, raw_table

if TYPE_CHECKING:
    import pyarrow as pa

SUFFIXES = (".json", ".parquet")
_MAX_SHOWN = 10_000

NUMBER_LIKE: dict[Kind, frozenset[str]] = {"pin": frozenset({"follower_count", "poster_name"})}
"""String fields whose values often look like JSON numbers in real data (follower_count "997", the aicore
poster_name "967"): an engine's fast reader checks their JSON type exactly rather than guessing it from the
text, or it would flag most objects."""


@dataclass(frozen=True)
class LakeObject:
    key: str
    path: Path
    """A local file holding the object's bytes (the object itself for ``file://`` lakes)."""

    @property
    def is_parquet(self) -> bool:
        return self.key.endswith(".parquet")


def object_keys(store: ObjectStore, prefix: str, kind: Kind) -> list[str]:
    """Keys of a kind's lake objects, ``topics/<prefix>.<kind>/partition=<p>/...``, in key order."""
    base = f"topics/{topic_name(prefix, kind)}/"
    return [k for k in store.list(base) if k.endswith(SUFFIXES) and "/partition=" in k]


@contextmanager
def local_objects(store: ObjectStore, keys: list[str], scratch: Path) -> Iterator[list[LakeObject]]:
    """The objects as local files: in place for ``file://``, else downloaded into a scratch directory."""
    if isinstance(store, FileStore):
        yield [LakeObject(k, store.root / k) for k in keys]
        return
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix="lake-") as tmp:
        objects = []
        for key in keys:
            path = Path(tmp) / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(store.get(key))
            objects.append(LakeObject(key, path))
        yield objects


def _shown(text: bytes | str) -> str:
    value = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return value[:_MAX_SHOWN]


def scan_json_lines(kind: Kind, key: str, data: bytes) -> tuple[pa.Table, list[QuarantinedRecord]]:
    """Every record of a JSON-lines object, checked one by one.

    Returns the good records as a raw table (``transform.clean.raw_schema``, ``_seq`` = line number) and
    the bad ones. Blank lines are skipped silently.
    """
    from pinpipe import exact_json  # here: a healthy lake never needs it

    good: list[dict[str, Any]] = []
    lines: list[int] = []
    bad: list[QuarantinedRecord] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:  # numbers as sent: 1e400 or 2**70 in a field the tables never see is no reason to refuse
            value = exact_json.loads(line)
        except (ValueError, RecursionError) as exc:
            bad.append(QuarantinedRecord(kind, key, number, f"not JSON ({exc})", _shown(line)))
            continue
        problems = validate_record(kind, value)
        if problems:
            bad.append(
                QuarantinedRecord(kind, key, number, "wrong shape: " + "; ".join(problems), _shown(line))
            )
            continue
        good.append(value)
        lines.append(number)
    import pyarrow as pa

    table = raw_table(kind, good).append_column("_seq", pa.array(lines, pa.int64()))
    return conform_raw(kind, table), bad


def scan_parquet(kind: Kind, key: str, data: bytes) -> tuple[pa.Table, list[QuarantinedRecord]]:
    """A Parquet object's records; an unreadable one, or one with wrong column types, is quarantined whole."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
        table = table.append_column("_seq", pa.array(range(1, table.num_rows + 1), pa.int64()))
        return conform_raw(kind, table), []
    except (pa.ArrowException, ValidationError, OSError) as exc:
        reason = f"unreadable Parquet object ({exc})"
        return conform_raw(kind, pa.table({})), [QuarantinedRecord(kind, key, None, reason, "")]


def scan_object(kind: Kind, obj: LakeObject) -> tuple[pa.Table, list[QuarantinedRecord]]:
    data = obj.path.read_bytes()
    return scan_parquet(kind, obj.key, data) if obj.is_parquet else scan_json_lines(kind, obj.key, data)


def quarantine_schema() -> pa.Schema:
    """Columns of the ``batch/quarantine`` Delta table."""
    import pyarrow as pa

    return pa.schema(
        [
            ("kind", pa.string()),
            ("object_key", pa.string()),
            ("line", pa.int64()),
            ("reason", pa.string()),
            ("content", pa.string()),
        ]
    )


def quarantine_table(records: list[QuarantinedRecord]) -> pa.Table:
    """The quarantined records as the ``batch/quarantine`` Delta table."""
    import pyarrow as pa

    if not records:  # pyarrow imports pandas to convert Python lists: keep that off the usual path
        return pa.Table.from_batches([], quarantine_schema())
    rows = [
        {"kind": r.kind, "object_key": r.key, "line": r.line, "reason": r.reason, "content": r.content}
        for r in records
    ]
    return pa.Table.from_pylist(rows, schema=quarantine_schema())
