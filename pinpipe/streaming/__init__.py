"""The real-time path: the stream processor (streams -> cleaned Delta tables) and its metrics.

Library entry points (imported lazily, so ``import pinpipe.streaming`` stays cheap):
``run_stream(settings, until_idle=True, ...) -> StreamSummary`` and ``read_metrics(settings) -> dict``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pinpipe.streaming.processor import StreamSummary, run_stream
    from pinpipe.streaming.read import read_metrics

__all__ = ["StreamSummary", "read_metrics", "run_stream"]


def __getattr__(name: str) -> Any:
    if name in ("run_stream", "StreamSummary"):
        from pinpipe.streaming import processor

        return getattr(processor, name)
    if name == "read_metrics":
        from pinpipe.streaming.read import read_metrics

        return read_metrics
    raise AttributeError(name)
