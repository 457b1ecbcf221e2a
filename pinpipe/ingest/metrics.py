"""Prometheus metrics of the API, written in the text exposition format by hand (no extra dependency).

- ``pinpipe_api_requests_total{route, method, status}``: answered requests;
- ``pinpipe_api_records_total{topic, status}``: records per topic, ``status`` = ``ok`` or the error code;
- ``pinpipe_api_request_duration_seconds{route}``: latency histogram.

Labels only take bounded values: ``route`` is the route template (``/topics/{topic}``), never the raw path,
and ``topic`` only names existing topics. :meth:`ApiMetrics.render` shows the records of the topics a
caller may use only (a tenant never sees another tenant's topics or counts), and the request counts and
latencies, which every tenant's requests make, only to a caller on every prefix: to a tenant they told how
many requests the others sent, when, and which failed.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Callable

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(**labels: str) -> str:
    inner = ",".join(
        f'{name}="{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for name, value in labels.items()
    )
    return "{" + inner + "}"


class ApiMetrics:
    """Counters and one histogram, safe to update from the event loop and the worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._records: dict[tuple[str, str], int] = defaultdict(int)
        self._hist: dict[str, list[int]] = {}
        self._sum: dict[str, float] = defaultdict(float)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        bucket = bisect.bisect_left(BUCKETS, seconds)  # outside the lock: it holds for less
        with self._lock:
            self._requests[(route, method, status)] += 1
            counts = self._hist.get(route)
            if counts is None:
                counts = self._hist[route] = [0] * (len(BUCKETS) + 1)
            counts[bucket] += 1
            self._sum[route] += seconds

    def count_records(self, topic: str, status: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self._records[(topic, status)] += n

    def records(self, topic: str, status: str = "ok") -> int:
        with self._lock:
            return self._records.get((topic, status), 0)

    def render(self, visible: Callable[[str], bool] = lambda topic: True, requests: bool = True) -> str:
        """The Prometheus text exposition (version 0.0.4), with the record counts of the ``visible``
        topics only, and the request counts and latencies of every route when ``requests``."""
        out = [
            "# HELP pinpipe_api_records_total Records received, by topic and outcome (ok or error code).",
            "# TYPE pinpipe_api_records_total counter",
        ]
        with self._lock:
            for (topic, outcome), n in sorted(self._records.items()):
                if not visible(topic):
                    continue
                out.append(f"pinpipe_api_records_total{_labels(topic=topic, status=outcome)} {n}")
            if not requests:
                return "\n".join(out) + "\n"
            out += [
                "# HELP pinpipe_api_requests_total Requests answered by the ingestion API.",
                "# TYPE pinpipe_api_requests_total counter",
            ]
            for (route, method, code), n in sorted(self._requests.items()):
                labels = _labels(route=route, method=method, status=str(code))
                out.append(f"pinpipe_api_requests_total{labels} {n}")
            out += [
                "# HELP pinpipe_api_request_duration_seconds Time to answer a request.",
                "# TYPE pinpipe_api_request_duration_seconds histogram",
            ]
            for route, counts in sorted(self._hist.items()):
                cumulative = 0
                for bound, n in zip((*BUCKETS, float("inf")), counts, strict=True):
                    cumulative += n
                    le = "+Inf" if bound == float("inf") else repr(bound)
                    labels = _labels(route=route, le=le)
                    out.append(f"pinpipe_api_request_duration_seconds_bucket{labels} {cumulative}")
                out.append(
                    f"pinpipe_api_request_duration_seconds_sum{_labels(route=route)} {self._sum[route]}"
                )
                out.append(f"pinpipe_api_request_duration_seconds_count{_labels(route=route)} {cumulative}")
        return "\n".join(out) + "\n"
