"""Graceful stops: SIGTERM and SIGINT ask a long-running stage to finish its current step and return.

One helper for every stage runner (the lake sink, the stream processor): the previous handlers are put
back when the stage returns, so a library caller or a test that runs a stage keeps its own handlers.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """Set by a signal (or by :meth:`set`); stages poll it between steps."""

    def __init__(self, on_stop: Callable[[], None] | None = None) -> None:
        self._event = threading.Event()
        self._on_stop = on_stop

    def set(self) -> None:
        self._event.set()
        if self._on_stop is not None:
            self._on_stop()

    def call_on_stop(self, on_stop: Callable[[], None]) -> None:
        """Call ``on_stop`` on a stop, and now if one came already: for a stage built after the signals
        were taken (a stop while it started is not lost)."""
        self._on_stop = on_stop
        if self():
            on_stop()

    def __call__(self) -> bool:
        return self._event.is_set()


@contextlib.contextmanager
def stop_on_signals(on_stop: Callable[[], None] | None = None, enabled: bool = True) -> Iterator[StopRequest]:
    """Within the block SIGTERM/SIGINT set the yielded :class:`StopRequest` (and call ``on_stop``).
    Signal handlers can only be set from the main thread: elsewhere (or with ``enabled`` False) the
    request is only set by its owner."""
    request = StopRequest(on_stop)
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handle(signum: int, frame: object) -> None:
        request.set()

    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    for sig in SIGNALS:
        signal.signal(sig, handle)
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
