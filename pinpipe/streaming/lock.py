"""One stream processor per table set: an exclusive lock file next to the stream tables.

Two processors appending to the same tables would each trust offsets the other is moving. The lock is
an OS advisory lock (``flock``), released by the kernel when the process dies, even by ``kill -9``, so
a restart after a crash never waits for a stale lock. Tables on object stores (``s3://``) are not
locked: run a single processor there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Self

from pinpipe.config import Settings
from pinpipe.errors import StreamError
from pinpipe.locations import delta_uri
from pinpipe.tables import stream_table


class ProcessorLock:
    def __init__(self, settings: Settings) -> None:
        location = stream_table(settings, "pin")
        self.path: Path | None = None
        if "://" not in delta_uri(location):
            self.path = Path(delta_uri(location)).parent / ".processor.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        if self.path is None:
            return
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held open for the processor's lifetime
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            raise StreamError(f"another stream processor is running on {self.path.parent}") from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
