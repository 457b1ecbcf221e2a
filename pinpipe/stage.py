"""The shape of every stage runner (the lake sink, the stream processor).

Construction stores configuration only, so a stage can be built, passed around and configured without
touching a log, a file lock or a thread. :meth:`Stage.start` acquires what the stage runs on, each
resource registered with the ``ExitStack`` it is given as soon as it is acquired: if a later step fails,
what was acquired is released before the error propagates. :meth:`Stage.close` releases everything, in
reverse order, and may be called any number of times. ``with Stage(...) as stage:`` starts and closes.
"""

from __future__ import annotations

import contextlib
from typing import Self


class Stage:
    """Base of the stage runners: subclasses acquire their resources in :meth:`_open`."""

    _resources: contextlib.ExitStack | None = None
    _closed: bool = False

    def _open(self, acquired: contextlib.ExitStack) -> None:
        """Acquire the stage's resources, registering each one's release on ``acquired`` at once."""
        raise NotImplementedError

    def start(self) -> Self:
        """Acquire the stage's resources (a second call does nothing); on a failure release what was
        acquired and raise."""
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed: build a new one to run again")
        if self._resources is None:
            with contextlib.ExitStack() as acquired:
                self._open(acquired)
                self._resources = acquired.pop_all()
        return self

    @property
    def started(self) -> bool:
        return self._resources is not None

    def _require_started(self) -> None:
        if self._resources is None:
            raise RuntimeError(
                f"{type(self).__name__} is not started: call start() first, or use it in a with block"
            )

    def close(self) -> None:
        """Release everything :meth:`start` acquired, last first; idempotent."""
        self._closed = True
        resources, self._resources = self._resources, None
        if resources is not None:
            resources.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
