"""The lake on S3 or any S3-compatible server: ``s3://bucket/prefix``.

Endpoint, region and credentials come from the AWS configuration (see :mod:`pinpipe.aws`). Atomicity is
S3's own: an object becomes visible only when its single PUT, or its multipart upload's completion,
succeeds, so a reader never sees a torn object. Objects above ``multipart_threshold`` are uploaded in
parts (S3 caps a single PUT at 5 GiB; parts also retry alone); a failed upload is aborted so no parts
are left behind. The bucket must exist: pinpipe never creates buckets (on AWS that is a decision about
ownership, region and policy).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator
from typing import Any

from pinpipe import aws
from pinpipe.errors import ConfigError, LakeError, ObjectNotFoundError
from pinpipe.locations import s3_location

MIB = 1024 * 1024


class S3Store:
    """An :class:`~pinpipe.lake.store.ObjectStore` over one bucket and key prefix."""

    def __init__(
        self,
        url: str,
        client: Any = None,
        multipart_threshold: int = 64 * MIB,
        part_size: int = 16 * MIB,
    ) -> None:
        bucket, prefix = s3_location(url)
        if part_size < 5 * MIB:
            raise ConfigError("S3 multipart parts must be at least 5 MiB")
        self.url = url.rstrip("/")
        self.bucket = bucket
        self.prefix = prefix
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self._client = client if client is not None else aws.client("s3")

    def _key(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise LakeError(f"invalid object key {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, action: str, key: str, exc: Exception) -> LakeError:
        return LakeError(f"cannot {action} s3://{self.bucket}/{self._key(key)}: {exc}")

    def put(self, key: str, data: bytes) -> None:
        full = self._key(key)
        try:
            if len(data) <= self.multipart_threshold:
                self._client.put_object(Bucket=self.bucket, Key=full, Body=data)
            else:
                self._multipart(full, data)
        except LakeError:
            raise
        except Exception as exc:  # botocore raises ClientError and several connection errors
            raise self._error("write", key, exc) from exc

    def _multipart(self, full: str, data: bytes) -> None:
        upload = self._client.create_multipart_upload(Bucket=self.bucket, Key=full)["UploadId"]
        try:
            parts = []
            view = memoryview(data)
            for number, start in enumerate(range(0, len(data), self.part_size), start=1):
                body = bytes(view[start : start + self.part_size])
                done = self._client.upload_part(
                    Bucket=self.bucket, Key=full, UploadId=upload, PartNumber=number, Body=body
                )
                parts.append({"PartNumber": number, "ETag": done["ETag"]})
            self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=full, UploadId=upload, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            # the original error matters more; S3 lifecycle rules can reap leftovers
            with contextlib.suppress(Exception):
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload)
            raise

    def get(self, key: str) -> bytes:
        try:
            body: bytes = self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
            return body
        except Exception as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                raise ObjectNotFoundError(f"no object {key!r} in {self.url}") from exc
            raise self._error("read", key, exc) from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under ``prefix`` in lexicographic order (S3 lists in UTF-8 byte order, the same)."""
        return iter(sorted(self._listing(prefix)))

    def stats(self, keys: Collection[str]) -> dict[str, tuple[int, str]]:
        """Size and ETag (unquoted) of each of ``keys`` that exists, from one listing of their common
        prefix: what tells the batch job an object changed after it was cleaned (``engines.increments``)."""
        if not keys:
            return {}
        first, last = min(keys), max(keys)  # their common prefix is every key's
        same = next((i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), len(first))
        found = self._listing(first[: first.rfind("/", 0, same) + 1])
        return {k: found[k] for k in keys if k in found}

    def _listing(self, prefix: str) -> dict[str, tuple[int, str]]:
        """Key -> (size, ETag) of every object under ``prefix``."""
        base = f"{self.prefix}/" if self.prefix else ""
        try:
            found: dict[str, tuple[int, str]] = {}
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base + prefix
            )
            for page in pages:
                for item in page.get("Contents", ()):
                    found[item["Key"][len(base) :]] = (int(item["Size"]), str(item["ETag"]).strip('"'))
        except Exception as exc:
            raise LakeError(f"cannot list {self.url}/{prefix}: {exc}") from exc
        return found

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except Exception as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._error("check", key, exc) from exc


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
