"""The ingestion API: Kafka REST Proxy v2 and Kinesis-style routes in front of the log."""

from __future__ import annotations

from pinpipe.ingest.app import create_app

__all__ = ["create_app"]
