"""Progress bars for long source work (seed, load, emulate), drawn on stderr so stdout stays data, and only
on a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pinpipe.progress import progress_wanted


def row_progress(enabled: bool = True) -> Progress:
    """A rich progress display for counted work; a no-op display when ``enabled`` is false or stderr is
    not a terminal (:func:`pinpipe.progress.progress_wanted`)."""
    console = Console(stderr=True)
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not progress_wanted(not enabled, console),
        transient=False,
    )
