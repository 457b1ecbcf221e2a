"""How the lake lays out and encodes objects: keys, JSON lines, and Parquet.

Layout (the Kafka Connect S3 sink's default partitioner)::

    topics/<topic>/partition=<p>/<topic>+<p>+<start offset, 10 digits>.<json|parquet>

JSON lines are what Kafka Connect's ``JsonFormat`` writes: every record followed by ``"\\n"``, the last
one included. Each line is the record value exactly as the log stores it (the API stores compact JSON),
so with ``flush_size=1`` an object is the value plus a newline. One difference: Kafka Connect's
schemaless ``JsonConverter`` parses and re-serialises values through a Java map, which may reorder the
keys of an object; pinpipe keeps the bytes as posted. A value holding a raw newline (not compact JSON)
is re-encoded compactly so one record stays one line; a non-JSON value with a newline has it escaped as
``\\n`` (the batch job quarantines such lines anyway).

Parquet objects hold the same records as columns taken from the JSON values (first-seen key order);
they are not byte-compatible with anything the original wrote. pyarrow is imported only when used.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any, Protocol

from pinpipe import exact_json
from pinpipe.errors import ConfigError, LakeError

EXTENSIONS = (".json", ".parquet")
_KEY_RE = re.compile(
    r"^topics/(?P<topic>[^/]+)/partition=(?P<p>\d+)/(?P=topic)\+(?P=p)\+(?P<o>\d{10,})\.(\w+)$"
)


def partition_prefix(topic: str, partition: int) -> str:
    """The folder of one topic partition, ending with ``/``."""
    return f"topics/{topic}/partition={partition}/"


def object_key(topic: str, partition: int, start_offset: int, extension: str = ".json") -> str:
    """``topics/<topic>/partition=<p>/<topic>+<p>+<start offset zero-padded to 10><extension>``."""
    return f"{partition_prefix(topic, partition)}{topic}+{partition}+{start_offset:010d}{extension}"


def parse_key(key: str) -> tuple[str, int, int] | None:
    """(topic, partition, start offset) of a lake object key, or None when it is not one."""
    match = _KEY_RE.match(key)
    if match is None:
        return None
    return match["topic"], int(match["p"]), int(match["o"])


class LakeFormat(Protocol):
    """Encodes a run of record values into one object and counts the records of an object."""

    name: str
    extension: str

    def encode(self, values: Sequence[bytes]) -> bytes: ...

    def count(self, data: bytes) -> int: ...


class JsonLinesFormat:
    """Newline-delimited JSON, one record value per line, every line ending in ``\\n``."""

    name = "json"
    extension = ".json"

    @staticmethod
    def line(value: bytes) -> bytes:
        """The value as one line (without its newline)."""
        if b"\n" not in value:
            return value
        try:  # numbers as sent
            return exact_json.dumps(exact_json.loads(value))
        except (ValueError, TypeError, RecursionError):
            return value.replace(b"\n", b"\\n")

    def encode(self, values: Sequence[bytes]) -> bytes:
        data = b"\n".join(values) + b"\n"
        if data.count(b"\n") == len(values):  # the usual case: no value holds a newline
            return data
        return b"".join(self.line(v) + b"\n" for v in values)

    def count(self, data: bytes) -> int:
        return data.count(b"\n")


class ParquetFormat:
    """One Parquet file per object, columns from the JSON values (not byte-compatible with the original)."""

    name = "parquet"
    extension = ".parquet"

    def encode(self, values: Sequence[bytes]) -> bytes:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [_as_row(v) for v in values]
        columns: dict[str, None] = {}
        for row in rows:
            columns.update(dict.fromkeys(row))
        arrays = {name: _column([row.get(name) for row in rows]) for name in columns}
        table = pa.table(arrays) if arrays else pa.table({"_raw": pa.array([None] * len(rows), pa.string())})
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()

    def count(self, data: bytes) -> int:
        import pyarrow.parquet as pq

        try:
            return int(pq.read_metadata(io.BytesIO(data)).num_rows)
        except Exception as exc:  # a torn or foreign object: never guess its length
            raise LakeError(f"unreadable Parquet object: {exc}") from exc


def _as_row(value: bytes) -> dict[str, Any]:
    try:  # numbers as sent: a 1e400 or 2**70 anywhere must not turn the record into an unreadable _raw
        parsed = exact_json.loads(value)
    except (ValueError, RecursionError):
        return {"_raw": value.decode("utf-8", "replace")}
    return parsed if isinstance(parsed, dict) else {"_raw": value.decode("utf-8", "replace")}


def _column(values: list[Any]) -> Any:
    """An Arrow array of the values; numbers no integer type holds (2**64) become doubles, as a DOUBLE
    column reads them; a column mixing types becomes JSON text so nothing is lost."""
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass
    if all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values):
        try:
            return pa.array([None if v is None else float(v) for v in values], pa.float64())
        except OverflowError:  # beyond a double too
            pass
    return pa.array(
        [None if v is None else v if isinstance(v, str) else exact_json.dumps(v).decode() for v in values],
        pa.string(),
    )


FORMATS: dict[str, type[JsonLinesFormat] | type[ParquetFormat]] = {
    "json": JsonLinesFormat,
    "parquet": ParquetFormat,
}


def lake_format(name: str) -> LakeFormat:
    """The format called ``name`` (``json`` or ``parquet``)."""
    try:
        return FORMATS[name]()
    except KeyError:
        raise ConfigError(f"unknown lake format {name!r}: use json or parquet") from None


def format_of_key(key: str) -> LakeFormat:
    """The format of an object from its extension."""
    for name, cls in FORMATS.items():
        if key.endswith(cls.extension):
            return lake_format(name)
    raise LakeError(f"unknown lake object type {key!r}")
