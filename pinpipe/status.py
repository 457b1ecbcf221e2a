"""What the logs hold: per topic its partitions' end offsets and record count, per consumer group its
committed offsets and lag. Built only from the :class:`~pinpipe.log.base.LogAdmin` protocol, so it reads
the embedded log, Kafka and Kinesis alike.

Definitions (the JSON of ``pinpipe status --json``)::

    {"topics": {TOPIC: {"records": n, "partitions": {"0": {"end_offset": n}, ...}}},
     "groups": {GROUP: {TOPIC: {"0": {"committed": n, "lag": n, "owner": "..."}, ...}}},
     "brokers": {"1": "host:port", ...}}

- ``end_offset``: the offset the next record appended to the partition will get;
- ``records``: the records the topic holds now, the sum over partitions of end offset minus the oldest
  retained offset (``start_offsets``, when the backend offers it; 0 otherwise). Without retention this
  is simply the number of records ever appended;
- ``committed``: the group's committed offset (the next one it will read); a partition the group never
  committed shows 0, where the group would start;
- ``lag``: records the group has still to read, ``end_offset - max(committed, oldest retained)``;
- ``owner`` (Kafka): the client id of the group member reading the partition now (sink workers are
  ``pinpipe-HOST-PID``), ``""`` when no member owns it;
- ``brokers`` (Kafka): the cluster's live brokers by id.

A group appears under a topic once it committed any partition of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from pinpipe.log.base import LogAdmin


def collect_status(logs: Sequence[LogAdmin]) -> dict[str, Any]:
    """The status of one or more logs (e.g. the batch topics' log and the streams' log), merged."""
    topics: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}
    brokers: dict[str, str] = {}
    for log in logs:
        brokers_of = getattr(log, "brokers", None)
        if callable(brokers_of):
            brokers.update({str(b): where for b, where in brokers_of().items()})
        owners_of = getattr(log, "owners", None)
        names = sorted(log.topics())
        bounds: dict[str, dict[int, tuple[int, int]]] = {}
        for name in names:
            ends = log.end_offsets(name)
            starts_of = getattr(log, "start_offsets", None)
            starts: dict[int, int] = starts_of(name) if callable(starts_of) else {}
            bounds[name] = {p: (min(starts.get(p, 0), end), end) for p, end in sorted(ends.items())}
            topics[name] = {
                "records": sum(end - start for start, end in bounds[name].values()),
                "partitions": {str(p): {"end_offset": end} for p, (_, end) in bounds[name].items()},
            }
        for group in sorted(log.groups()):
            owners: dict[tuple[str, int], str] | None = owners_of(group) if callable(owners_of) else None
            for name in names:
                committed = log.committed(group, name)
                if not committed:
                    continue
                groups.setdefault(group, {})[name] = {
                    str(p): {
                        "committed": committed.get(p, 0),
                        "lag": max(0, end - max(committed.get(p, 0), start)),
                        **({} if owners is None else {"owner": owners.get((name, p), "")}),
                    }
                    for p, (start, end) in bounds[name].items()
                }
    out = {"topics": dict(sorted(topics.items())), "groups": dict(sorted(groups.items()))}
    if brokers:
        out["brokers"] = dict(sorted(brokers.items(), key=lambda b: int(b[0])))
    return out


def render_status(status: dict[str, Any], console: Console) -> None:
    """Two tables: topics with their partitions, consumer groups with their lag."""
    topics = Table(title="Topics and streams", title_justify="left")
    for column in ("topic", "partition", "end offset", "records"):
        topics.add_column(column, justify="left" if column == "topic" else "right")
    for name, info in status["topics"].items():
        for i, (p, part) in enumerate(info["partitions"].items()):
            topics.add_row(
                name if i == 0 else "", p, str(part["end_offset"]), str(info["records"]) if i == 0 else ""
            )
    if not status["topics"]:
        topics.add_row("(none)", "", "", "")
    console.print(topics)
    groups = Table(title="Consumer groups", title_justify="left")
    owned = "brokers" in status  # Kafka: who reads each partition now
    columns = ("group", "topic", "partition", "committed", "lag") + (("owner",) if owned else ())
    for column in columns:
        groups.add_column(column, justify="left" if column in ("group", "topic", "owner") else "right")
    for group, by_topic in status["groups"].items():
        for name, parts in by_topic.items():
            for p, info in parts.items():
                owner = (info.get("owner") or "-",) if owned else ()
                groups.add_row(group, name, p, str(info["committed"]), str(info["lag"]), *owner)
    if not status["groups"]:
        groups.add_row("(none)", *[""] * (len(columns) - 1))
    console.print(groups)
    if owned:
        console.print("Brokers: " + ", ".join(f"{b} at {where}" for b, where in status["brokers"].items()))
