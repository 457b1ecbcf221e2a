"""The progress line of long-running commands (stream run, sink run, batch run).

Drawn on stderr, and only when stderr is a terminal: under cron, systemd or a pipe there is no carriage
return redrawing one ever-growing line, only the command's closing summary. ``-q`` turns it off on a
terminal too.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported only to draw: a quiet run's start-up does without it
    from rich.console import Console
    from rich.status import Status


def progress_wanted(quiet: bool, console: Console | None = None) -> bool:
    """True when a progress display should be drawn: not ``quiet`` and stderr is a terminal."""
    if quiet:
        return False
    from rich.console import Console

    return (console or Console(stderr=True)).is_terminal


class StatusLine:
    """A one-line status (spinner and text) redrawn in place on a terminal; nothing otherwise."""

    def __init__(self, text: str, *, quiet: bool = False, console: Console | None = None) -> None:
        self._status: Status | None = None
        if not quiet:
            from rich.console import Console

            console = console or Console(stderr=True)
            if console.is_terminal:  # what progress_wanted asks, on the console already made
                self._status = console.status(text)

    def update(self, text: str) -> None:
        if self._status is not None:
            self._status.update(text)

    def __enter__(self) -> StatusLine:
        if self._status is not None:
            self._status.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._status is not None:
            self._status.stop()
