"""The stream processor's offsets, kept in its Delta tables as application transactions.

Every commit of an output table carries, for each (stream, partition) it consumed, the app id
``pinpipe-stream:<stream>:<partition>`` with version = the next offset to read. The rows and the offsets
become visible atomically (:func:`pinpipe.delta.append`), so on restart the table itself says where to
resume, and a replayed record below that version is never written twice.
"""

from __future__ import annotations

from collections.abc import Mapping

from pinpipe import delta
from pinpipe.log.base import TopicPartition

APP_PREFIX = "pinpipe-stream"


def app_id(tp: TopicPartition) -> str:
    """Application transaction id of one consumed (stream, partition)."""
    return f"{APP_PREFIX}:{tp[0]}:{tp[1]}"


def transactions(offsets: Mapping[TopicPartition, int]) -> dict[str, int]:
    """The application transactions that record ``offsets`` (next offset per stream partition)."""
    return {app_id(tp): offset for tp, offset in offsets.items()}


def committed_offsets(url: str, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    """Per (stream, partition), the next offset the table has consumed (0 when never committed)."""
    versions = delta.transaction_versions(url, [app_id(tp) for tp in partitions])
    return {tp: versions.get(app_id(tp), 0) for tp in partitions}
