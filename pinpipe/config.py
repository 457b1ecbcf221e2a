"""Settings: the only module that reads the environment, ``.env`` or ``pinpipe.toml``.

Priority, lowest first: defaults < ``pinpipe.toml`` (in the current directory, or ``PINPIPE_CONFIG``)
< ``.env`` < environment (``PINPIPE_LOG__URL=kafka://127.0.0.1:9092``) < flags (given to
:func:`load_settings`).
Settings are frozen and loaded once at the edge (CLI, DAG, ASGI factory), then passed down.

URLs left empty are derived from ``workdir``, so one ``--workdir`` moves everything.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic import ValidationError as PydanticValidationError

from pinpipe.errors import ConfigError
from pinpipe.schema import DEFAULT_PREFIX


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceSettings(_Section):
    url: str = ""
    """SQLAlchemy URL of the source database; default ``sqlite:///<workdir>/source.db``."""


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: tuple[SecretStr, ...] = ()
    """Keys allowed to write to every topic and stream."""
    keys_file: Path | None = None
    """TOML file ``[keys.NAME] key = "...", prefixes = ["0a1b2c3d4e5f"]`` giving keys limited to prefixes."""
    max_body_bytes: int = 10 * 1024 * 1024
    max_records: int = 500
    rate_limit: float = 0.0
    """Requests per second allowed to each API key (token bucket; 0: no limit)."""
    rate_burst: int = 0
    """Bucket size of the rate limit; 0 means ``max(1, rate_limit)``."""


class LogSettings(_Section):
    url: str = ""
    """``embedded:///path`` (default ``<workdir>/log``), ``kafka://host:port``, ``kinesis://``."""
    stream_url: str = ""
    """Log of the Kinesis-style streams; default: the same as ``url``."""
    partitions: int = 3
    """Partitions (shards) of each topic or stream created by pinpipe."""
    kafka: dict[str, str] = Field(default_factory=dict)
    """Extra librdkafka settings (SASL/SSL...), passed through as they are."""


class LakeSettings(_Section):
    url: str = ""
    """``file:///path`` (default ``<workdir>/lake``) or ``s3://bucket/prefix``."""
    flush_size: int = 500
    rotate_interval_s: float = 0.0
    """Rotate a file when record time moves this far past its first record (0: off)."""
    idle_flush_s: float = 5.0
    format: Literal["json", "parquet"] = "json"


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
    tables_url: str = ""
    """Where Delta tables live; default ``<workdir>/tables``."""


class StreamSettings(_Section):
    max_records: int = 1000
    max_wait_s: float = 0.5
    watermark_s: float = 600.0
    top_k: int = 10


class DashboardSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 8050
    refresh_s: float = 2.0


class Settings(BaseModel):
    """Every setting of pinpipe, by section (built by :func:`load_settings`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    workdir: Path = Path(".pinpipe")
    prefix: str = DEFAULT_PREFIX
    source: SourceSettings = SourceSettings()
    api: ApiSettings = ApiSettings()
    log: LogSettings = LogSettings()
    lake: LakeSettings = LakeSettings()
    engine: EngineSettings = EngineSettings()
    stream: StreamSettings = StreamSettings()
    dashboard: DashboardSettings = DashboardSettings()

    # Resolved locations: empty settings derive from the workdir.
    @property
    def source_url(self) -> str:
        return self.source.url or f"sqlite:///{self.workdir.resolve() / 'source.db'}"

    @property
    def log_url(self) -> str:
        return self._with_state(self.log.url) or f"embedded://{self.workdir.resolve() / 'log'}"

    @property
    def stream_log_url(self) -> str:
        return self._with_state(self.log.stream_url) or self.log_url

    def _with_state(self, url: str) -> str:
        """Kinesis keeps dense offsets and group commits in a state file: by default in the workdir."""
        parsed = urlparse(url)
        if parsed.scheme != "kinesis" or "state=" in parsed.query:
            return url
        return f"{url}{'&' if parsed.query else '?'}state={self.workdir.resolve() / 'kinesis-state.db'}"

    @property
    def lake_url(self) -> str:
        return self.lake.url or f"file://{self.workdir.resolve() / 'lake'}"

    @property
    def tables_url(self) -> str:
        """Default: ``<workdir>/tables``; beside an S3 lake (``s3://b/lake`` -> ``s3://b/tables``), so the
        results of a cloud run are not left on one machine's disk."""
        if self.engine.tables_url:
            return self.engine.tables_url
        lake = urlparse(self.lake.url)
        if lake.scheme == "s3":
            parent = [p for p in lake.path.strip("/").split("/") if p][:-1]
            return "/".join([f"s3://{lake.netloc}", *parent, "tables"])
        return f"file://{self.workdir.resolve() / 'tables'}"


ENV_PREFIX = "PINPIPE_"
_NESTED = "__"


def _toml_layer() -> dict[str, Any]:
    """``pinpipe.toml`` in the current directory, or the file ``PINPIPE_CONFIG`` names; {} if absent."""
    path = Path(os.environ.get("PINPIPE_CONFIG", "pinpipe.toml"))
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def _environment() -> dict[str, str]:
    """``.env`` (current directory) overlaid by the process environment."""
    variables: dict[str, str] = {}
    if Path(".env").is_file():
        from dotenv import dotenv_values  # only when there is a .env: it costs start-up time

        variables.update({k: v for k, v in dotenv_values(".env").items() if v is not None})
    variables.update(os.environ)
    return variables


def _is_structured(model: type[BaseModel], path: list[str]) -> bool:
    """Whether the setting at ``path`` is a section, a table or a list: given as JSON in the environment."""
    field = model.model_fields.get(path[0])
    if field is None:
        return False
    kind = field.annotation
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return len(path) == 1 or _is_structured(kind, path[1:])
    return len(path) == 1 and getattr(kind, "__origin__", None) in (dict, tuple, list)


def _env_layer(variables: Mapping[str, str]) -> dict[str, Any]:
    """``PINPIPE_<SECTION>__<FIELD>`` variables (any case) as nested settings; other names are ignored.

    A section, table or list is JSON (``PINPIPE_LOG__KAFKA='{"security.protocol": "SSL"}'``); one more
    ``__`` level sets one key of a table (``PINPIPE_LOG__KAFKA__SASL.USERNAME=u``, lowercased).
    """
    found = []
    for name, raw in variables.items():
        if not name.upper().startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX) :].lower().split(_NESTED)
        if path[0] not in Settings.model_fields:
            continue  # PINPIPE_CONFIG, PINPIPE_DAG_*, ...: not settings
        value: Any = raw
        if _is_structured(Settings, path):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{name} must be JSON ({exc})") from exc  # no value: it may be a key
        found.append((path, value))
    layer: dict[str, Any] = {}
    for path, value in sorted(found, key=lambda item: len(item[0])):  # whole sections first
        _merge(layer, _nest([(path, value)]))
    return layer


def _nest(settings: list[tuple[list[str], Any]]) -> dict[str, Any]:
    """Turn ``[(["log", "url"], x)]`` into ``{"log": {"url": x}}``, dropping None (a flag not given)."""
    nested: dict[str, Any] = {}
    for (*parents, leaf), value in settings:
        if value is None:
            continue
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _merge(base: dict[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    """``layer`` over ``base`` (in place), table by table: a section given in part keeps its other fields."""
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def load_settings(**overrides: Any) -> Settings:
    """Settings from every source, with ``overrides`` (flags, as ``section.field=value``) on top.

    Layers, lowest first: defaults, ``pinpipe.toml``, ``.env`` and the environment, flags. Sections given
    in part by a layer are merged with the lower layers field by field.
    """
    merged: dict[str, Any] = {}
    flags = _nest([(dotted.split("."), value) for dotted, value in overrides.items()])
    for layer in (_toml_layer(), _env_layer(_environment()), flags):
        _merge(merged, layer)
    try:
        return Settings.model_validate(merged)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from exc
