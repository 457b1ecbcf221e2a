"""Object stores: where the lake lives. ``open_store(url)`` picks ``file://`` or ``s3://``.

Keys are ``/``-separated relative paths (``topics/x.pin/partition=0/x.pin+0+0000000000.json``).
``put`` is atomic: a reader sees the whole object or none of it, never a torn one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from pinpipe import locations
from pinpipe.errors import ConfigError, LakeError, ObjectNotFoundError


class ObjectStore(Protocol):
    url: str

    def put(self, key: str, data: bytes) -> None:
        """Write atomically and durably (replacing any object at ``key``)."""
        ...

    def get(self, key: str) -> bytes: ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix``, in lexicographic order."""
        ...

    def exists(self, key: str) -> bool: ...


class FileStore:
    """A local directory: temp file in the same directory, fsync, rename, fsync the directory."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        root = locations.local_path(url) if locations.scheme(url) == "file" else None
        if root is None:
            raise ConfigError(f"not a file lake URL: {url!r} (use file:///abs/dir)")
        self.root = root

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise LakeError(f"invalid object key {key!r}")
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"no object {key!r} in {self.url}") from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        if not self.root.exists():
            return iter(())
        keys = (
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        )
        return iter(sorted(k for k in keys if k.startswith(prefix)))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


def open_store(url: str) -> ObjectStore:
    """``file:///abs/dir`` or ``s3://bucket/prefix`` (S3 needs ``pinpipe[s3]``)."""
    scheme = locations.scheme(url)
    if scheme == "file":
        return FileStore(url)
    if scheme == "s3":
        from pinpipe.lake.s3 import S3Store

        return S3Store(url)
    raise ConfigError(f"unknown lake URL {url!r}: use file:///dir or s3://bucket/prefix")
