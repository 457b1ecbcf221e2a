"""What a new SparkSession is given for each kind of master (no JVM started: only the settings)."""

from __future__ import annotations

import sys

from pinpipe.config import Settings, load_settings
from pinpipe.engines.spark_session import on_loopback, session_conf

JARS = {"spark.jars": "/jars/a.jar,/jars/b.jar"}


def conf_for(settings: Settings, master: str, **engine: str) -> dict[str, str]:
    options = {"engine.spark_master": master, **{f"engine.{k}": v for k, v in engine.items()}}
    return session_conf(load_settings(workdir=settings.workdir, **options), JARS)


def test_local_master_binds_the_driver_to_loopback_with_small_shuffles(settings: Settings) -> None:
    conf = conf_for(settings, "local[2]")
    assert conf["spark.driver.bindAddress"] == conf["spark.driver.host"] == "127.0.0.1"
    assert int(conf["spark.sql.shuffle.partitions"]) <= 16
    assert "spark.pyspark.python" not in conf  # local: Python workers are this interpreter anyway
    assert conf["spark.jars"] == JARS["spark.jars"]


def test_a_cluster_on_this_machine_gets_loopback_and_this_python(settings: Settings) -> None:
    conf = conf_for(settings, "spark://127.0.0.1:7077")
    assert conf["spark.driver.host"] == "127.0.0.1"
    assert conf["spark.pyspark.python"] == sys.executable
    assert "spark.sql.shuffle.partitions" not in conf  # Spark's default, coalesced by adaptive execution


def test_a_remote_cluster_reaches_the_driver_on_its_address_with_the_given_python(settings: Settings) -> None:
    conf = conf_for(settings, "spark://spark-master.internal:7077", spark_python="/opt/venv/bin/python")
    assert "spark.driver.host" not in conf and "spark.driver.bindAddress" not in conf
    assert conf["spark.pyspark.python"] == "/opt/venv/bin/python"


def test_loopback_masters() -> None:
    assert all(map(on_loopback, ["local[*]", "spark://localhost:7077", "spark://127.0.0.1:1"]))
    assert not on_loopback("spark://10.0.0.5:7077") and not on_loopback("yarn")
