"""The real-time path: the stream processor (streams -> cleaned Delta tables) and its metrics.

Library entry points (imported lazily, so ``import pinpipe.streaming`` stays cheap):
``run_stream(settings, until_idle=True, ...) -> StreamSummary`` (the embedded processor),
``stream_runner(settings)`` (the processor the settings choose) and ``read_metrics(settings) -> dict``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pinpipe.locations import scheme

if TYPE_CHECKING:
    from pinpipe.config import Settings
    from pinpipe.streaming.processor import StreamSummary, run_stream
    from pinpipe.streaming.read import read_metrics

__all__ = ["StreamSummary", "read_metrics", "run_stream", "stream_engine", "stream_runner"]


def stream_engine(settings: Settings) -> Literal["embedded", "spark"]:
    """The one rule for which processor runs (``pinpipe stream run`` and the demo): the
    ``stream.engine`` setting; ``auto`` is Spark when the batch engine is Spark and the streams are on
    Kafka (what Structured Streaming reads), else the embedded processor."""
    chosen = settings.stream.engine
    if chosen != "auto":
        return chosen
    spark_on_kafka = settings.engine.name == "spark" and scheme(settings.stream_log_url) == "kafka"
    return "spark" if spark_on_kafka else "embedded"


def stream_runner(settings: Settings) -> Callable[..., StreamSummary]:
    """``run_stream`` of the processor :func:`stream_engine` chooses (same arguments and summary)."""
    if stream_engine(settings) == "spark":
        from pinpipe.streaming.spark_stream import run_spark_stream

        return run_spark_stream
    from pinpipe.streaming.processor import run_stream

    return run_stream


def __getattr__(name: str) -> Any:
    if name in ("run_stream", "StreamSummary"):
        from pinpipe.streaming import processor

        return getattr(processor, name)
    if name == "read_metrics":
        from pinpipe.streaming.read import read_metrics

        return read_metrics
    raise AttributeError(name)
