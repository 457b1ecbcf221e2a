"""Delivery reports of records produced together, and waiting for them.

librdkafka calls a record's ``on_delivery`` from whichever thread polls or flushes the producer, so the
reports of one call may be served by another thread's wait: :class:`Deliveries` counts them under a lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from pinpipe.errors import LogUnavailableError

DELIVERY_MARGIN_S = 5.0
"""Waited beyond ``message.timeout.ms`` (which bounds every record) for the report's scheduling."""


class Deliveries:
    """The delivery reports of ``size`` records produced together: where each landed, and the errors."""

    def __init__(self, size: int) -> None:
        self.placed: list[tuple[int, int] | None] = [None] * size
        self.errors: list[Any] = []
        self.waiting = size
        self._lock = threading.Lock()

    def report(self, i: int, err: Any, msg: Any) -> None:
        with self._lock:
            self.waiting -= 1
            if err is not None:
                self.errors.append(err)
            else:
                self.placed[i] = (msg.partition(), msg.offset())

    def callback(self, i: int) -> Callable[[Any, Any], None]:
        """The ``on_delivery`` of record ``i`` (a partial: called by librdkafka once per record, it is
        cheaper than a lambda calling the method)."""
        return partial(self.report, i)

    def skip(self) -> None:
        """One record that is not produced after all (nothing to wait for)."""
        with self._lock:
            self.waiting -= 1


def wait_for(
    deliveries: Sequence[Deliveries], serve: Callable[[], object], timeout_s: float, what: str
) -> None:
    """Call ``serve`` (the producer's poll or flush) until every record of ``deliveries`` has its report;
    LogUnavailableError("Kafka: <what> did not arrive in time") after ``timeout_s`` and the margin."""
    deadline = time.monotonic() + timeout_s + DELIVERY_MARGIN_S
    while any(d.waiting > 0 for d in deliveries):
        if time.monotonic() > deadline:
            raise LogUnavailableError(f"Kafka: {what} did not arrive in time")
        serve()
