"""AWS clients and settings shared by the S3 lake, Delta tables (delta-rs), Spark's s3a and Kinesis.

Endpoint, region and credentials are never set in pinpipe's code: they come from the standard AWS
configuration that boto3 resolves, so what a user already set for the AWS CLI works here too:

- ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` and the shared
  ``~/.aws/config`` and ``~/.aws/credentials`` files, instance and container roles;
- ``AWS_REGION`` (or ``AWS_DEFAULT_REGION``, or the profile's region); ``us-east-1`` when none is set;
- ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL_KINESIS`` (or ``AWS_ENDPOINT_URL`` for every service, or
  ``endpoint_url`` in the profile) for S3-compatible servers and local Kinesis endpoints.

delta-rs does not use boto3, so :func:`delta_storage_options` hands it what boto3 resolved (one source
of truth, including ``AWS_ENDPOINT_URL_S3``, which delta-rs itself would not read).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from pinpipe._optional import require
from pinpipe.config import aws_variables

DEFAULT_REGION = "us-east-1"

_lock = threading.Lock()
_sessions: dict[tuple[int, tuple[str, ...]], Any] = {}
_s3_meta: dict[tuple[str, ...], tuple[str, str]] = {}


def session() -> Any:
    """A boto3 session for this thread (boto3 sessions are not thread-safe; clients are)."""
    boto3 = require("boto3", "s3")
    key = (threading.get_ident(), aws_variables())
    with _lock:
        found = _sessions.get(key)
        if found is None:
            found = _sessions[key] = boto3.session.Session()
        return found


def default_region() -> str:
    return session().region_name or DEFAULT_REGION


def client(service: str, endpoint_url: str | None = None, region: str | None = None, **config: Any) -> Any:
    """A boto3 client for ``service`` (``s3``, ``kinesis``); endpoint and region from the AWS
    configuration unless given; ``config`` goes to ``botocore.config.Config``."""
    botocore_config = require("botocore.config", "s3")
    s3_style = {"s3": {"addressing_style": "path"}} if service == "s3" else {}
    cfg = botocore_config.Config(retries={"max_attempts": 8, "mode": "standard"}, **s3_style, **config)
    return session().client(
        service, endpoint_url=endpoint_url or None, region_name=region or default_region(), config=cfg
    )


@dataclass(frozen=True)
class S3Settings:
    """What an S3 client needs, as boto3 resolved it (for clients that are not boto3)."""

    endpoint_url: str | None
    """None for AWS itself (the regional endpoint); set for S3-compatible servers."""
    region: str
    access_key_id: str | None
    secret_access_key: str | None
    session_token: str | None


def s3_settings() -> S3Settings:
    """Endpoint, region and credentials of S3, from the AWS configuration (see the module docstring)."""
    env = aws_variables()
    if env not in _s3_meta:
        s3 = client("s3")
        _s3_meta[env] = (s3.meta.endpoint_url, s3.meta.region_name or DEFAULT_REGION)
    endpoint, s3_region = _s3_meta[env]
    custom = None if (urlparse(endpoint).hostname or "").endswith("amazonaws.com") else endpoint
    creds = session().get_credentials()
    frozen = creds.get_frozen_credentials() if creds is not None else None
    return S3Settings(
        endpoint_url=custom,
        region=s3_region,
        access_key_id=frozen.access_key if frozen else None,
        secret_access_key=frozen.secret_key if frozen else None,
        session_token=frozen.token if frozen else None,
    )


def delta_storage_options(url: str) -> dict[str, str] | None:
    """``storage_options`` for deltalake at ``url``: None for local paths, the S3 settings for ``s3://``.

    Commits to S3 are coordinated by S3's conditional writes (``If-None-Match``), which delta-rs 1.x uses
    by default: no DynamoDB lock table and no ``AWS_S3_ALLOW_UNSAFE_RENAME``. The S3-compatible server
    must support conditional writes (AWS S3, MinIO, moto, R2 do).
    """
    if urlparse(url).scheme not in ("s3", "s3a"):
        return None
    found = s3_settings()
    options = {"AWS_REGION": found.region}
    if found.endpoint_url:
        options["AWS_ENDPOINT_URL"] = found.endpoint_url
        if found.endpoint_url.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    if found.access_key_id and found.secret_access_key:
        options["AWS_ACCESS_KEY_ID"] = found.access_key_id
        options["AWS_SECRET_ACCESS_KEY"] = found.secret_access_key
        if found.session_token:
            options["AWS_SESSION_TOKEN"] = found.session_token
    return options
