"""An earlier demo run's state outside the workdir (a Kafka or Kinesis log, an S3 lake or tables).

The demo rebuilds its workdir, but a broker or a bucket keeps what an earlier run wrote under the same
prefix; reading it again would silently mix two runs into one set of results. So the demo looks first, and
refuses unless told what to do (``--fresh`` deletes and recreates the log's topics and streams).
"""

from __future__ import annotations

import secrets
from urllib.parse import urlparse

from rich.console import Console

from pinpipe.config import Settings
from pinpipe.errors import ConfigError
from pinpipe.schema import KINDS, stream_names, topic_names
from pinpipe.workdir import in_workdir


def _outside(settings: Settings, url: str) -> bool:
    """True when ``url`` is not state inside the workdir (a Kafka cluster, Kinesis, S3, another folder);
    Kinesis streams are outside even when their small state file is inside."""
    return urlparse(url).scheme == "kinesis" or not in_workdir(settings, url)


def _prefix_names(settings: Settings) -> list[str]:
    return [*topic_names(settings.prefix).values(), *stream_names(settings.prefix).values()]


def earlier_records(settings: Settings) -> dict[str, dict[str, int]]:
    """Records an earlier run left under this prefix on the logs outside the workdir:
    {log URL: {topic or stream: records}} (empty when there are none)."""
    from pinpipe.log import open_settings_log

    found: dict[str, dict[str, int]] = {}
    for url in dict.fromkeys([settings.log_url, settings.stream_log_url]):
        if not _outside(settings, url):
            continue
        log = open_settings_log(settings, url)
        try:
            existing = log.topics()
            names = [name for name in _prefix_names(settings) if name in existing]
            held = {name: sum(log.end_offsets(name).values()) for name in names}
        finally:
            log.close()
        held = {name: n for name, n in held.items() if n > 0}
        if held:
            found[url] = held
    return found


def earlier_objects(settings: Settings) -> list[str]:
    """Where an earlier run left this prefix's lake objects or stream tables outside the workdir: the sink
    and the stream processor would resume after them and skip this run's records."""
    from pinpipe.delta import open_table
    from pinpipe.lake.store import open_store
    from pinpipe.tables import stream_table

    found: list[str] = []
    if _outside(settings, settings.lake_url):
        store = open_store(settings.lake_url)
        for topic in topic_names(settings.prefix).values():
            if next(iter(store.list(f"topics/{topic}/")), None) is not None:
                found.append(f"{settings.lake_url} (topics/{topic}/)")
    if _outside(settings, settings.tables_url):
        for kind in KINDS:
            try:
                open_table(stream_table(settings, kind))
            except Exception:  # deltalake's TableNotFoundError: nothing left there
                continue
            found.append(stream_table(settings, kind))
    return found


def check_earlier_run(settings: Settings, *, keep: bool, fresh: bool) -> dict[str, dict[str, int]]:
    """Refuse (ConfigError) to mix an earlier run's records outside the workdir into this one, unless
    ``keep`` (mixing asked for) or ``fresh`` (the logs' records are to be deleted); returns what ``fresh``
    will delete (with :func:`delete_earlier_records`)."""
    if keep:
        return {}
    another = secrets.token_hex(6)
    objects = earlier_objects(settings)
    if objects:
        raise ConfigError(
            f"an earlier run left prefix {settings.prefix}'s data at {', '.join(objects)}, which the demo "
            f"does not delete; run it with a new prefix, e.g. --prefix {another}"
        )
    records = earlier_records(settings)
    if records and not fresh:
        held = "; ".join(
            f"{url}: " + ", ".join(f"{name} {n:,}" for name, n in names.items())
            for url, names in records.items()
        )
        raise ConfigError(
            f"the log already holds records of prefix {settings.prefix} from an earlier run ({held}), "
            "which this run would mix into its results: give --fresh to delete and recreate those topics "
            f"and streams, or a new prefix, e.g. --prefix {another}"
        )
    return records


def delete_earlier_records(settings: Settings, records: dict[str, dict[str, int]], console: Console) -> None:
    """``--fresh``: delete the topics and streams that hold an earlier run's records (they are created
    again, empty, when the ingestion API starts)."""
    from pinpipe.log import open_settings_log

    for url, names in records.items():
        log = open_settings_log(settings, url)
        try:
            for name in names:
                log.delete_topic(name)
        finally:
            log.close()
        console.print(f"--fresh: deleted {', '.join(names)} on {url} (an earlier run's records)")
