"""Settings: the only module that reads the environment, ``.env`` or ``pinpipe.toml``.

Besides the settings it reads two kinds of variables that are not settings, so that every read of the
environment stands here: the ``AWS_*`` variables (boto3 reads them itself; :func:`aws_variables`
keys pinpipe's client caches on them) and the tests' fault injection (:func:`kill_after_claim`).

Priority, lowest first: defaults < ``pinpipe.toml`` (in the current directory, or ``PINPIPE_CONFIG``)
< ``.env`` < environment (``PINPIPE_LOG__URL=kafka://127.0.0.1:9092``) < flags (given to
:func:`load_settings`).
Settings are frozen and loaded once at the edge (CLI, DAG, ASGI factory), then passed down.

URLs left empty are derived from ``workdir``, so one ``--workdir`` moves everything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic import ValidationError as PydanticValidationError

from pinpipe import locations
from pinpipe.access import check_prefix, key_problem
from pinpipe.config_layers import dotenv_layer, merge, toml_layer, variables_layer
from pinpipe.errors import ConfigError
from pinpipe.schema import DEFAULT_PREFIX

# pydantic looks for plugins, an entry-point scan of every installed distribution (~10 ms of a command's
# start-up), when it builds a model; the settings models need none. The scan is skipped while they are
# built (pydantic then remembers no answer: a model built later, elsewhere, still gets its plugins).
_NO_PLUGINS = "PYDANTIC_DISABLE_PLUGINS"
_plugins_setting = os.environ.get(_NO_PLUGINS)
os.environ[_NO_PLUGINS] = "__all__"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceSettings(_Section):
    url: str = ""
    """SQLAlchemy URL of the source database; default ``sqlite:///<workdir>/source.db``."""


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: tuple[SecretStr, ...] = ()
    """Producer keys: may write to (and list, describe) every topic and stream."""
    admin_keys: tuple[SecretStr, ...] = ()
    """Admin keys: producer rights plus creating and deleting streams, on every prefix."""
    keys_file: Path | None = None
    """TOML file ``[keys.NAME] key = "...", prefixes = ["0a1b2c3d4e5f"], role = "producer"|"admin"`` giving
    keys limited to prefixes."""
    max_shard_count: int = Field(default=32, ge=1)
    """Largest ``ShardCount`` a CreateStream may ask for."""
    max_streams: int = Field(default=100, ge=1)
    """Streams the stream log may hold; CreateStream beyond that is refused (40902)."""
    max_streams_per_prefix: int = Field(default=20, ge=1)
    """Streams one prefix (tenant) may hold, its own three included; CreateStream beyond that is refused
    (40902), so one tenant's admin key cannot take all of ``max_streams`` from the others."""
    max_body_bytes: int = 10 * 1024 * 1024
    body_timeout_s: float = 30.0
    """Seconds a request body may take to arrive in full; then 408 and the connection is closed."""
    max_pending_body_bytes: int = 64 * 1024 * 1024
    """Bytes all unfinished request bodies may hold together; beyond, 503 and the connection is closed."""
    max_pending_body_bytes_per_key: int = Field(default=0, ge=0)
    """Bytes the unfinished bodies of one API key may hold (with its large bodies waiting for their turn in
    the threadpool), so that one tenant cannot take all of ``max_pending_body_bytes`` from the others; 0: a
    quarter of it, at least ``max_body_bytes``. An open API (no key configured) cannot tell its callers
    apart: they share the whole budget."""
    max_records: int = 500
    rate_limit: float = 0.0
    """Requests per second allowed to each API key (token bucket; 0: no limit)."""
    rate_burst: int = 0
    """Bucket size of the rate limit; 0 means ``max(1, rate_limit)``."""

    @field_validator("api_keys", "admin_keys")
    @classmethod
    def _keys_are_usable(cls, keys: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for key in keys:
            problem = key_problem(key.get_secret_value())
            if problem:
                raise ValueError(problem)
        return keys


class LogSettings(_Section):
    url: str = ""
    """``embedded:///path`` (default ``<workdir>/log``), ``kafka://host:port``, ``kinesis://``."""
    stream_url: str = ""
    """Log of the Kinesis-style streams; default: the same as ``url``."""
    partitions: int = 3
    """Partitions (shards) of each topic or stream created by pinpipe."""
    kafka: dict[str, str] = Field(default_factory=dict)
    """Extra librdkafka settings (SASL/SSL...), passed through as they are."""
    replication_factor: int = Field(default=0, ge=0)
    """Replicas of each Kafka topic pinpipe creates; 0: the broker count, at most 3."""
    min_insync_replicas: int = Field(default=0, ge=0)
    """``min.insync.replicas`` of those topics; 0: 2 with three replicas or more, else 1."""


class LakeSettings(_Section):
    url: str = ""
    """``file:///path`` (default ``<workdir>/lake``) or ``s3://bucket/prefix``."""
    flush_size: int = 500
    rotate_interval_s: float = 0.0
    """Rotate a file when record time moves this far past its first record (0: off)."""
    idle_flush_s: float = 5.0
    format: Literal["json", "parquet"] = "json"
    group_instance_id: str = ""
    """Kafka static group membership of this sink worker (``group.instance.id``): a name unique among the
    workers and kept across restarts, so a restarted worker takes its partitions back without a rebalance.
    Empty: dynamic membership."""


class EngineSettings(_Section):
    name: Literal["duckdb", "spark"] = "duckdb"
    keep_duplicates: bool = False
    median: Literal["lower", "exact"] = "lower"
    keep_ties: bool = False
    spark_master: str = "local[*]"
    spark_jars: str = ""
    """Comma-separated jars for ``spark.jars``; default: those ``bash infra/spark.sh install`` fetched."""
    spark_conf: dict[str, str] = Field(default_factory=dict)
    """Extra Spark settings for sessions pinpipe starts (``spark.driver.memory`` ...)."""
    spark_python: str = ""
    """Python the executors of a cluster master run (``spark.pyspark.python``); default: the driver's own
    interpreter, whose path must then exist on every worker (one machine, or one image on all)."""
    tables_url: str = ""
    """Where Delta tables live; default ``<workdir>/tables``."""
    retain_hours: int = Field(default=168, ge=0)
    """How long a batch table's replaced files stay on disk, so its older versions stay readable; Delta's
    default, a week. The batch job then deletes them."""
    duckdb_memory_limit: str = ""
    """DuckDB's ``memory_limit`` (``4GB``); empty: sized from the lake's bytes, spilling beyond it."""
    duckdb_on_disk: bool = False
    """Keep DuckDB's scratch tables in a compressed database file instead of memory: lower peak, more CPU."""


class StreamSettings(_Section):
    engine: Literal["auto", "embedded", "spark"] = "auto"
    """The stream processor: ``embedded`` (in-process), ``spark`` (Structured Streaming, reads Kafka), or
    ``auto``: Spark when the batch engine is Spark and the streams are on Kafka, else embedded."""
    max_records: int = 20_000
    """The most records one micro-batch reads: a processor behind by more takes its backlog in parts."""
    max_wait_s: float = 0.1
    """Micro-batches start at most this often, so a record waits at most this long for its micro-batch
    while the processor keeps up (a processing-time trigger)."""
    watermark_s: float = 600.0
    top_k: int = 10
    event_time: Literal["timestamp", "arrival"] = "timestamp"
    """Clock of the metrics' windows: the posts' own ``timestamp``, or their ``arrival`` in the log (the
    demo's choice: replayed history then counts as posted now). A saved metrics state keeps its own."""


class DashboardSettings(_Section):
    """Where the dashboard listens; who may read it is ``api``'s keys (:mod:`pinpipe.dashboard.gate`)."""

    host: str = "127.0.0.1"
    port: int = 8050
    refresh_s: float = 2.0


class Settings(BaseModel):
    """Every setting of pinpipe, by section. ``Settings(**values)`` reads the layers under ``values``
    (:mod:`pinpipe.config_layers`); ``model_validate`` takes its values alone."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    if not TYPE_CHECKING:  # hidden from mypy, which then checks calls against the fields

        def __init__(self, **values: Any) -> None:
            layered: dict[str, Any] = {}
            for _, layer in reversed(setting_layers()):
                layered = merge(layered, layer)
            super().__init__(**merge(layered, values))

    workdir: Path = Path(".pinpipe")
    prefix: str = DEFAULT_PREFIX
    """Tenant prefix of the topics and streams (grammar in :mod:`pinpipe.access`)."""
    source: SourceSettings = SourceSettings()
    api: ApiSettings = ApiSettings()
    log: LogSettings = LogSettings()
    lake: LakeSettings = LakeSettings()
    engine: EngineSettings = EngineSettings()
    stream: StreamSettings = StreamSettings()
    dashboard: DashboardSettings = DashboardSettings()

    @field_validator("prefix")
    @classmethod
    def _prefix_is_valid(cls, prefix: str) -> str:
        return check_prefix(prefix)

    # Resolved locations: empty settings derive from the workdir.
    @property
    def source_url(self) -> str:
        return self.source.url or locations.sqlite_url(self.workdir.resolve() / "source.db")

    @property
    def log_url(self) -> str:
        return self._with_state(self.log.url) or locations.embedded_url(self.workdir.resolve() / "log")

    @property
    def stream_log_url(self) -> str:
        return self._with_state(self.log.stream_url) or self.log_url

    def _with_state(self, url: str) -> str:
        """Kinesis keeps dense offsets and group commits in a state file: by default in the workdir."""
        parsed = urlsplit(url)
        if parsed.scheme != "kinesis" or "state=" in parsed.query:
            return url
        state = urlencode({"state": self.workdir.resolve() / "kinesis-state.db"})
        return f"{url}{'&' if parsed.query else '?'}{state}"

    @property
    def lake_url(self) -> str:
        return self.lake.url or locations.file_url(self.workdir.resolve() / "lake")

    @property
    def tables_url(self) -> str:
        """Default: ``<workdir>/tables``; beside an S3 lake (``s3://b/lake`` -> ``s3://b/tables``), so the
        results of a cloud run are not left on one machine's disk."""
        if self.engine.tables_url:  # a bare path is taken as the directory it names
            given = self.engine.tables_url
            return given if locations.scheme(given) else locations.file_url(Path(given).resolve())
        if locations.scheme(self.lake.url) == "s3":
            bucket, prefix = locations.s3_location(self.lake.url)
            parent = [p for p in prefix.split("/") if p][:-1]
            return locations.join(f"s3://{bucket}", *parent, "tables")
        return locations.file_url(self.workdir.resolve() / "tables")


if _plugins_setting is None:  # the settings models are built: plugins as configured again
    del os.environ[_NO_PLUGINS]
else:
    os.environ[_NO_PLUGINS] = _plugins_setting


KILL_AFTER_CLAIM = "PINPIPE_TEST_KILL_AFTER_CLAIM"


def kill_after_claim() -> str | None:
    """Tests only: the text of the idempotency keys after whose claim :mod:`pinpipe.log.kafka.claims`
    ``kill -9``s its process (the crash the claim's lease exists for); None when not set."""
    return os.environ.get(KILL_AFTER_CLAIM) or None


def aws_variables() -> tuple[str, ...]:
    """The ``AWS_*`` variables as they are now, as ``NAME=value``: a changed variable changes the key."""
    return tuple(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("AWS_"))


def _toml_path() -> Path:
    return Path(os.environ.get("PINPIPE_CONFIG", "pinpipe.toml"))


def setting_layers() -> list[tuple[str, dict[str, Any]]]:
    """(label, nested values) of each layer under the flags, highest first."""
    toml = _toml_path()
    return [
        ("environment", variables_layer(Settings, os.environ, "the environment")),
        (".env", dotenv_layer(Settings)),
        (str(toml), toml_layer(toml)),
    ]


def _nest(overrides: dict[str, Any]) -> dict[str, Any]:
    """Turn flat ``{"log.url": x}`` overrides into ``{"log": {"url": x}}``, dropping None (flag not given)."""
    nested: dict[str, Any] = {}
    for dotted, value in overrides.items():
        if value is None:
            continue
        *parents, leaf = dotted.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def load_settings(**overrides: Any) -> Settings:
    """Settings from every source, with ``overrides`` (flags, as ``section.field=value``) on top.

    Sections given partly by flags are merged with the lower layers field by field.
    """
    try:
        base = Settings()
        flags = _nest(overrides)
        if not flags:
            return base
        merged = base.model_dump()
        for key, value in flags.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        return Settings.model_validate(merged)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from exc
