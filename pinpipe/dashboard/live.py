"""The live half of the page: lag and arrival rates from the log, real-time metrics from the stream tables.

Events per second are measured where events arrive, in the log: the end offsets of each stream are
sampled on every ``/api/status`` request and the rate is the growth over the last ``RATE_WINDOW_S``
seconds. So the number is live even before the stream processor runs, and it drops to 0 when producers stop.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from pinpipe.config import Settings
from pinpipe.config_show import mask_url
from pinpipe.dashboard.models import PartitionLag, Status, StreamRate
from pinpipe.errors import PinpipeError
from pinpipe.keys import ANONYMOUS, Principal
from pinpipe.locations import local_path, scheme
from pinpipe.log import open_settings_log
from pinpipe.schema import KINDS, stream_name, topic_name
from pinpipe.status import collect_status

RATE_WINDOW_S = 10.0
LOG_UNREADABLE = "log not readable now (keys on every prefix are shown why)"
LOG_HINT = "no log yet: run `pinpipe demo`, or `pinpipe api serve` and `pinpipe emulate`"


def _log_exists(url: str) -> bool:
    """An embedded log is only opened when it exists: looking must never create one."""
    path = local_path(url) if scheme(url) == "embedded" else None
    return path is None or path.exists()


def read_partitions(settings: Settings) -> list[PartitionLag] | None:
    """Per topic/stream of this prefix and partition: end offset, and the lag of each group that
    committed there (from :func:`pinpipe.status.collect_status`). None when no log exists yet."""
    urls = [u for u in dict.fromkeys([settings.log_url, settings.stream_log_url]) if _log_exists(u)]
    if not urls:
        return None
    logs = [open_settings_log(settings, u) for u in urls]
    try:
        status = collect_status(logs)
    finally:
        for log in logs:
            log.close()
    ours = {topic_name(settings.prefix, k) for k in KINDS} | {stream_name(settings.prefix, k) for k in KINDS}
    rows: list[PartitionLag] = []
    for topic, info in status["topics"].items():
        if topic not in ours:
            continue
        for partition, part in info["partitions"].items():
            end = part["end_offset"]
            lags = [
                (group, by_topic[topic][partition])
                for group, by_topic in status["groups"].items()
                if partition in by_topic.get(topic, {})
            ]
            if not lags:
                rows.append(PartitionLag(topic=topic, partition=int(partition), end_offset=end))
            rows.extend(
                PartitionLag(
                    topic=topic,
                    partition=int(partition),
                    end_offset=end,
                    group=group,
                    committed=lag["committed"],
                    lag=lag["lag"],
                )
                for group, lag in lags
            )
    return rows


class StatusSampler:
    """Keeps recent end-offset samples per stream to turn offsets into events per second."""

    def __init__(self, settings: Settings, window_s: float = RATE_WINDOW_S) -> None:
        self._settings = settings
        self._window_s = window_s
        self._samples: deque[tuple[float, dict[str, int]]] = deque()
        self._lock = threading.Lock()

    def status(self, principal: Principal = ANONYMOUS) -> Status:
        """The page's live numbers on the topics and streams ``principal`` may use; the log URL masked
        (its query may hold a password), as everywhere."""
        url = mask_url(self._settings.log_url)
        try:
            partitions = read_partitions(self._settings)
        except PinpipeError as exc:
            if principal.prefixes is not None:  # the reason may name any tenant's topic
                return Status(available=False, hint=LOG_UNREADABLE, log_url=url)
            hint = f"log not readable: {exc}"
            for raw in (self._settings.log_url, self._settings.stream_log_url):
                hint = hint.replace(raw, mask_url(raw))
            return Status(available=False, hint=hint, log_url=url)
        if partitions is None:
            return Status(available=False, hint=LOG_HINT, log_url=url)
        rates = self._rates(partitions)  # sampled over every topic, whoever asks: one series of samples
        if principal.prefixes is not None:
            partitions = [p for p in partitions if principal.may_use(p.topic)]
            rates = [r for r in rates if principal.may_use(r.stream)]
            if not partitions:
                hint = f"no topic or stream shown here belongs to the prefixes of API key '{principal.name}'"
                return Status(available=False, hint=hint, log_url=url)
        return Status(available=True, log_url=url, partitions=partitions, rates=rates)

    def _rates(self, partitions: list[PartitionLag]) -> list[StreamRate]:
        totals: dict[str, int] = {}
        seen: set[tuple[str, int]] = set()
        for row in partitions:
            if (row.topic, row.partition) not in seen:
                seen.add((row.topic, row.partition))
                totals[row.topic] = totals.get(row.topic, 0) + row.end_offset
        now = time.monotonic()
        with self._lock:
            self._samples.append((now, totals))
            while len(self._samples) > 2 and now - self._samples[1][0] >= self._window_s:
                self._samples.popleft()
            first_t, first = self._samples[0]
        span = now - first_t
        rates = []
        for topic, total in totals.items():
            events = total - first.get(topic, total)
            rate = events / span if span > 0 else 0.0
            rates.append(StreamRate(stream=topic, events_per_second=round(rate, 2), events=events))
        return rates
