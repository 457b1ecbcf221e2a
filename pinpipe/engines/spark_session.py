"""The SparkSession pinpipe runs on: Delta Lake, the Kafka source, s3a, and naive timestamps.

One session per process (Spark allows one SparkContext): :func:`spark_session` returns the active one when
there is one, so under ``spark-submit`` or on Databricks the cluster's session (and its jars) is used as it
is. Otherwise it starts ``settings.engine.spark_master`` (``local[*]`` by default) with:

- ``spark.jars``: the jars ``bash infra/spark.sh install`` fetched from Maven Central (spark-sql-kafka,
  delta-spark + delta-storage, hadoop-aws + the AWS SDK v2 modules), or ``engine.spark_jars``;
- Delta's SQL extension and catalog;
- ``spark.sql.session.timeZone=UTC`` and ``spark.sql.timestampType=TIMESTAMP_NTZ``: timestamps are naive, as
  written (docs/data-rules.md), whatever the host's zone; the shared SQL casts to ``TIMESTAMP_NTZ`` as well;
- no web UI unless asked for;
- driver bound to 127.0.0.1 (``SPARK_LOCAL_IP``) when the master is local or on this machine's loopback
  (a standalone cluster from ``bash infra/spark.sh cluster start``); a remote master's executors must reach
  the driver, so then Spark picks the host's address;
- on a cluster master, the executors' Python (``spark.pyspark.python``): ``engine.spark_python`` or this
  interpreter. The jars are shipped to the executors by ``spark.jars`` itself;
- ``s3://`` served by S3A with the endpoint and credentials of the standard AWS configuration
  (:func:`pinpipe.aws.s3_settings`), only when the lake or the tables are on S3.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pinpipe._optional import require
from pinpipe.config import Settings
from pinpipe.errors import EngineError

JARS_DIR = Path(__file__).resolve().parents[2] / "infra" / ".cache" / "spark-jars"
"""Where ``bash infra/spark.sh install`` leaves the jars in a source checkout."""

DEFAULTS: dict[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    "spark.sql.adaptive.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.databricks.delta.optimizeWrite.enabled": "false",
    "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
}

_lock = threading.Lock()


def find_jars(explicit: str = "") -> str:
    """Comma-separated jar paths: ``explicit`` (``engine.spark_jars``) or the infra/spark.sh cache."""
    if explicit:
        return explicit
    jars = sorted(JARS_DIR.glob("*.jar")) if JARS_DIR.is_dir() else []
    if not jars:
        raise EngineError(
            f"the Spark jars are missing (no jars in {JARS_DIR}): run `bash infra/spark.sh install`, "
            "or give them with PINPIPE_ENGINE__SPARK_JARS=a.jar,b.jar"
        )
    return ",".join(str(j) for j in jars)


def s3a_conf() -> dict[str, str]:
    """S3A settings from the standard AWS configuration (endpoint, region, static or session keys)."""
    from pinpipe.aws import s3_settings

    found = s3_settings()
    conf = {"spark.hadoop.fs.s3a.endpoint.region": found.region}
    if found.endpoint_url:
        conf["spark.hadoop.fs.s3a.endpoint"] = found.endpoint_url
        conf["spark.hadoop.fs.s3a.path.style.access"] = "true"
        conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(found.endpoint_url.startswith("https"))
    if found.access_key_id and found.secret_access_key:
        conf["spark.hadoop.fs.s3a.access.key"] = found.access_key_id
        conf["spark.hadoop.fs.s3a.secret.key"] = found.secret_access_key
        if found.session_token:
            conf["spark.hadoop.fs.s3a.session.token"] = found.session_token
            conf["spark.hadoop.fs.s3a.aws.credentials.provider"] = (
                "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
            )
        else:
            conf["spark.hadoop.fs.s3a.aws.credentials.provider"] = (
                "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
            )
    return conf


def uses_s3(settings: Settings) -> bool:
    return any(urlparse(u).scheme in ("s3", "s3a") for u in (settings.lake_url, settings.tables_url))


def on_loopback(master: str) -> bool:
    """True for ``local[...]`` and for a master on 127.0.0.1/localhost: the driver then listens there only."""
    if master.startswith("local"):
        return True
    host = urlparse(master).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


def session_conf(settings: Settings, conf: dict[str, str] | None = None) -> dict[str, str]:
    """Every setting a new session gets: the defaults, jars, s3a when needed, then ``conf`` on top."""
    merged = dict(DEFAULTS)
    if "spark.jars" not in (conf or {}):
        merged["spark.jars"] = find_jars(settings.engine.spark_jars)
    master = settings.engine.spark_master
    if master.startswith("local"):
        # small shuffles: a few tasks per core instead of Spark's 200 (adaptive execution coalesces more)
        merged["spark.sql.shuffle.partitions"] = str(min(16, 2 * (os.cpu_count() or 2)))
    else:
        merged["spark.pyspark.python"] = settings.engine.spark_python or sys.executable
    if on_loopback(master):
        merged["spark.driver.host"] = "127.0.0.1"
        merged["spark.driver.bindAddress"] = "127.0.0.1"
    if uses_s3(settings):
        merged.update(s3a_conf())
    merged.update(settings.engine.spark_conf)
    merged.update(conf or {})
    return merged


def spark_session(settings: Settings, conf: dict[str, str] | None = None) -> Any:
    """The active SparkSession, or a new one for ``settings`` (see the module docstring)."""
    require("pyspark", "spark")
    from pyspark.sql import SparkSession

    with _lock:
        active = SparkSession.getActiveSession()
        if active is not None:
            return active
        if on_loopback(settings.engine.spark_master):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = SparkSession.builder.master(settings.engine.spark_master).appName("pinpipe")
        for key, value in session_conf(settings, conf).items():
            builder = builder.config(key, value)
        try:
            session = builder.getOrCreate()
        except Exception as exc:  # Java missing, bad master URL...: one clear line
            raise EngineError(f"could not start Spark ({settings.engine.spark_master}): {exc}") from exc
        session.sparkContext.setLogLevel("WARN")
        _quiet(session, "org.apache.spark.sql.execution.window.WindowExec")
        return session


def _quiet(session: Any, logger: str) -> None:
    """Errors only from ``logger``: WindowExec warns on every global rank over a small output table."""
    jvm = session.sparkContext._jvm
    level = jvm.org.apache.logging.log4j.Level.ERROR
    jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(logger, level)
