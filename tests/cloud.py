"""AWS test helpers: point boto3 (and so pinpipe) at the session's moto server, through the standard
AWS variables a user would set, and make fresh buckets."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

AWS_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN")


def aws_environment(endpoint: str) -> dict[str, str]:
    """The variables that point every AWS client at ``endpoint`` (moto accepts any credentials)."""
    return {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ENDPOINT_URL_KINESIS": endpoint,
        "AWS_ACCESS_KEY_ID": "pinpipe-test",
        "AWS_SECRET_ACCESS_KEY": "pinpipe-test-secret",
        "AWS_REGION": "us-east-1",
    }


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """This test's process talks to moto through the AWS variables; returns them (for subprocesses)."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    env = aws_environment(moto_endpoint)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env


def new_bucket() -> str:
    """Create a bucket with a fresh name on the configured endpoint and return its name."""
    from pinpipe import aws

    name = f"pinpipe-{uuid.uuid4().hex[:16]}"
    aws.client("s3").create_bucket(Bucket=name)
    return name
