"""Delivery reports of records produced together, and waiting for them.

librdkafka calls a record's ``on_delivery`` from whichever thread polls or flushes the producer, so the
reports of one call may be served by another thread's wait: :class:`Deliveries` keeps them in a list.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from pinpipe.errors import LogUnavailableError

DELIVERY_MARGIN_S = 5.0
"""Waited beyond ``message.timeout.ms`` (which bounds every record) for the report's scheduling."""


class Deliveries:
    """The delivery reports of ``size`` records produced together: where each landed, and the errors.

    A report is one ``list.append``, atomic without a lock: confluent-kafka can run the first callback
    after a fatal error with that error still pending, when every C call it makes (a lock's acquire
    too) takes effect and then raises; an append made so is kept, a lock acquired so is never released.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._reports: list[tuple[int, Any, Any]] = []  # (record, error, message), in arrival order
        self._skipped = 0  # counted by the producing thread only
        self._placed: list[tuple[int, int] | None] = [None] * size
        self._counted = 0  # reports folded into _placed

    def report(self, i: int, err: Any, msg: Any) -> None:
        self._reports.append((i, err, msg))

    @property
    def waiting(self) -> int:
        return self.size - self._skipped - len(self._reports)

    @property
    def errors(self) -> list[Any]:
        return [err for _, err, _ in self._reports if err is not None]

    @property
    def placed(self) -> list[tuple[int, int] | None]:
        """Where each record landed (None: no report yet, an error, or not produced). Safe from several
        threads without a lock: folding a report twice writes the same position, and ``_counted`` is set
        to what was folded, never advanced past it."""
        end = len(self._reports)
        for i, err, msg in self._reports[self._counted : end]:
            if err is None:
                self._placed[i] = (msg.partition(), msg.offset())
        self._counted = end
        return self._placed

    def callback(self, i: int) -> Callable[[Any, Any], None]:
        """The ``on_delivery`` of record ``i`` (a partial: called by librdkafka once per record, it is
        cheaper than a lambda calling the method)."""
        return partial(self.report, i)

    def skip(self) -> None:
        """One record that is not produced after all (nothing to wait for)."""
        self._skipped += 1


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
