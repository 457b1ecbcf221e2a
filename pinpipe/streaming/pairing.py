"""Pairing pins with geo events of the same ``ind`` to give each post an event time and a country.

The emulator sends the pin, geo and user records of one iteration to three streams with the same
``ind``. Rule (docs/metrics.md): a pin is *paired* when a geo event with the same ``ind`` arrived (log
append time) within ``window_s`` seconds of the pin, before or after; the post then takes that geo
event's timestamp (its event time) and country. Geo rows of one ``ind`` are the same source row, so any
matching geo event gives the same values. A pin with no such geo event is *unpaired* and counts only in
``late_events.unpaired``.

Pins of one partition are released in offset order (head of line waits), so the per-partition
lateness rule downstream sees them in log order. A pin waits until a match is seen or until every geo
partition has moved past ``arrival + window_s`` (its *frontier*); geo events are forgotten once every
pin partition has moved past ``arrival + window_s``. Both buffers therefore hold about ``window_s`` of
arrivals: memory stays bounded however long the stream runs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

GeoEvent = tuple[float, int, float, str | None]
"""A geo event kept for pairing: (arrival, ind, event time, country)."""


@dataclass(slots=True)
class PendingPin:
    offset: int
    arrival: float
    ind: int | None
    poster_name: str | None
    follower_count: int | None
    category: str | None

    def to_list(self) -> list[Any]:
        return [
            self.offset,
            self.arrival,
            self.ind,
            self.poster_name,
            self.follower_count,
            self.category,
        ]


@dataclass(slots=True)
class Post:
    """A paired pin: what the post-based metrics count."""

    partition: str
    offset: int
    ts: float
    country: str | None
    poster_name: str | None
    follower_count: int | None
    category: str | None


class PinGeoPairer:
    """Buffers pins and geo events and releases posts (or unpaired pins) deterministically."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.geo_order: deque[GeoEvent] = deque()
        """Recent geo events in the order read, to forget old ones and to save the state."""
        self.geos: dict[int, list[GeoEvent]] = {}
        """ind -> its events in ``geo_order`` (the same tuples), to pair pins; a list, as an ind has one
        event or a few (a deque would take ten times the memory for each of the window's inds)."""
        self.pins: dict[str, deque[PendingPin]] = {}
        self.pin_frontier: dict[str, float] = {}
        self.geo_frontier: dict[str, float] = {}

    # input
    def add_geo(
        self, partition: str, arrival: float, ind: int | None, ts: float | None, country: str | None
    ) -> None:
        self.geo_frontier[partition] = max(self.geo_frontier.get(partition, arrival), arrival)
        if ind is None or ts is None:
            return
        event = (arrival, ind, ts, country)
        self.geos.setdefault(ind, []).append(event)
        self.geo_order.append(event)

    def add_pin(self, partition: str, pin: PendingPin) -> None:
        self.pin_frontier[partition] = max(self.pin_frontier.get(partition, pin.arrival), pin.arrival)
        self.pins.setdefault(partition, deque()).append(pin)

    def advance_frontier(self, stream: str, partition: str, at_least: float) -> None:
        """A partition known to be caught up at time ``at_least`` (minus a safety margin)."""
        frontier = self.pin_frontier if stream == "pin" else self.geo_frontier
        frontier[partition] = max(frontier.get(partition, at_least), at_least)

    @property
    def pending(self) -> int:
        return sum(len(q) for q in self.pins.values())

    # output
    def _match(self, pin: PendingPin) -> tuple[float, str | None] | None:
        if pin.ind is None:
            return None
        for arrival, _, ts, country in self.geos.get(pin.ind, ()):
            if abs(arrival - pin.arrival) <= self.window_s:
                return ts, country
        return None

    def release(self, geo_partitions: int) -> tuple[list[Post], int]:
        """Posts that can be decided now, in offset order per partition, and the unpaired pin count."""
        posts: list[Post] = []
        unpaired = 0
        geo_frontier = (
            min(self.geo_frontier.values())
            if len(self.geo_frontier) >= geo_partitions and self.geo_frontier
            else None
        )
        for partition in sorted(self.pins):
            queue = self.pins[partition]
            while queue:
                pin = queue[0]
                match = self._match(pin)
                if match is not None:
                    posts.append(
                        Post(
                            partition,
                            pin.offset,
                            match[0],
                            match[1],
                            pin.poster_name,
                            pin.follower_count,
                            pin.category,
                        )
                    )
                elif geo_frontier is not None and geo_frontier > pin.arrival + self.window_s:
                    unpaired += 1
                else:
                    break
                queue.popleft()
        return posts, unpaired

    def forget(self, pin_partitions: int) -> None:
        """Drop geo events no pending or future pin can pair with."""
        if len(self.pin_frontier) < pin_partitions or not self.pin_frontier:
            return
        # pins already read but still waiting (head of line) need their geo events too
        oldest = min(self.pin_frontier.values())
        for queue in self.pins.values():
            oldest = min([oldest, *(pin.arrival for pin in queue)])
        horizon = oldest - self.window_s
        while self.geo_order and self.geo_order[0][0] < horizon:
            ind = self.geo_order.popleft()[1]
            entries = self.geos.get(ind)
            if entries:
                del entries[0]
                if not entries:
                    del self.geos[ind]

    # state
    def to_dict(self) -> dict[str, Any]:
        return {
            "geo_events": list(self.geo_order),  # [arrival, ind, event time, country]; geos derive from it
            "pins": {p: [pin.to_list() for pin in q] for p, q in self.pins.items()},
            "pin_frontier": self.pin_frontier,
            "geo_frontier": self.geo_frontier,
        }

    @classmethod
    def from_dict(cls, window_s: float, data: dict[str, Any]) -> PinGeoPairer:
        pairer = cls(window_s)
        if "geo_events" in data:
            events = [(a, int(i), ts, c) for a, i, ts, c in data["geo_events"]]
        else:  # the first state format: per-ind entries and the (arrival, ind) order apart
            entries = {int(i): deque(e) for i, e in data["geos"]}
            events = [(a, int(i), *entries[int(i)].popleft()[1:]) for a, i in data["geo_order"]]
        for event in events:
            pairer.geos.setdefault(event[1], []).append(event)
        pairer.geo_order = deque(events)
        pairer.pins = {p: deque(PendingPin(*row) for row in q) for p, q in data["pins"].items()}
        pairer.pin_frontier = dict(data["pin_frontier"])
        pairer.geo_frontier = dict(data["geo_frontier"])
        return pairer
