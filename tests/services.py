"""Real services for the tests, started through the same infra/<service>.sh scripts that users run.

Registered for the whole suite by ``pytest_plugins`` in tests/conftest.py. Each session fixture starts
its service once, on 127.0.0.1 and free ports, with its state in a per-session directory, yields the
endpoint (the last line the script prints) and stops it at the end of the session.

A service that cannot start fails the tests that need it, with the tail of the script's log; it never
skips silently. Only outside CI, and only when ``PINPIPE_ALLOW_MISSING_SERVICES=1`` is set, is it a skip.

Tests that stop or restart a service (broker outages) make their own with :class:`InfraService`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ALLOW_MISSING = os.environ.get("PINPIPE_ALLOW_MISSING_SERVICES") == "1"


class ServiceError(RuntimeError):
    """An infra script failed; the message carries its output and log tail."""


class InfraService:
    """One infra/<name>.sh service with its own state directory (``PINPIPE_INFRA_DIR``); ``command`` goes
    before each action (``("cluster",)``: ``infra/spark.sh cluster start``); ``env``: more variables for
    the script."""

    def __init__(
        self,
        name: str,
        state_dir: Path,
        start_timeout: float = 300.0,
        start_args: tuple[str, ...] = (),
        command: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.state_dir = state_dir
        self.start_timeout = start_timeout
        self.start_args = start_args
        self.command = command
        self.env = env or {}
        self.endpoint: str | None = None

    def run(self, action: str, timeout: float, *args: str) -> str:
        env = {**os.environ, **self.env, "PINPIPE_INFRA_DIR": str(self.state_dir)}
        try:
            done = subprocess.run(
                ["bash", str(INFRA / f"{self.name}.sh"), *self.command, action, *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServiceError(
                f"infra/{self.name}.sh {action} timed out after {timeout}s\n{self.log_tail()}"
            ) from exc
        if done.returncode != 0:
            raise ServiceError(
                f"infra/{self.name}.sh {action} exited {done.returncode}\n"
                f"{done.stdout[-2000:]}{done.stderr[-4000:]}\n{self.log_tail()}"
            )
        return done.stdout

    def start(self) -> str:
        output = self.run("start", self.start_timeout, *self.start_args)
        lines = [line for line in output.splitlines() if line.strip()]
        if not lines:
            raise ServiceError(f"infra/{self.name}.sh start printed no endpoint\n{self.log_tail()}")
        self.endpoint = lines[-1].strip()
        return self.endpoint

    def stop(self) -> None:
        self.run("stop", 120)

    def pids(self) -> list[int]:
        """PIDs of the service's processes (one per broker for Kafka; master, then workers for Spark)."""
        return [int(line) for line in self.run("pids", 30).split()]

    def log_tail(self, lines: int = 40) -> str:
        logs = sorted((self.state_dir / self.name).glob(f"**/{self.name}.log"))
        if not logs:
            return f"(no log under {self.state_dir / self.name})"
        return "\n".join(
            f"last lines of {log}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
            for log in logs
        )


def service_missing(message: str) -> None:
    """Fail (always in CI); skip only when the developer explicitly allows missing services."""
    if ALLOW_MISSING and not IN_CI:
        pytest.skip(f"service missing (PINPIPE_ALLOW_MISSING_SERVICES=1): {message}")
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def infra_state_dir() -> Iterator[Path]:
    """A per-session state directory for infra scripts, traversable by the ``postgres`` user."""
    path = Path(tempfile.mkdtemp(prefix="pinpipe-infra-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def running(service: InfraService) -> Iterator[InfraService]:
    """Start ``service``, yield it, stop it; a failed start fails the test (:func:`service_missing`)."""
    try:
        service.start()
    except ServiceError as exc:
        with contextlib.suppress(ServiceError):
            service.stop()
        service_missing(str(exc))
        raise  # not reached: service_missing fails or skips
    try:
        yield service
    finally:
        service.stop()


def _serve(name: str, state_dir: Path, *start_args: str) -> Iterator[str]:
    for service in running(InfraService(name, state_dir, start_args=start_args)):
        assert service.endpoint is not None
        yield service.endpoint


@pytest.fixture(scope="session")
def kafka_bootstrap(infra_state_dir: Path) -> Iterator[str]:
    """``127.0.0.1:PORT`` of a Kafka 4 broker (KRaft) for the session."""
    yield from _serve("kafka", infra_state_dir)


@pytest.fixture(scope="session")
def kafka_cluster(infra_state_dir: Path) -> Iterator[InfraService]:
    """A three-broker Kafka cluster (three KRaft voters) for the session; ``.endpoint`` is the
    bootstrap list, ``.pids()`` one PID per broker. Tests that kill a broker start it again
    (``.start()``) before they end.

    Stopped with a 5 s grace: brokers stopped together wait on each other's controlled shutdown until
    SIGKILL (30 s by default), and the session's cluster and its data are thrown away anyway."""
    service = InfraService(
        "kafka", infra_state_dir / "cluster", start_args=("--brokers", "3"), env={"KAFKA_STOP_GRACE": "5"}
    )
    service.state_dir.mkdir(exist_ok=True)
    yield from running(service)


@pytest.fixture(scope="session")
def moto_endpoint(infra_state_dir: Path) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a moto server (S3 and Kinesis)."""
    yield from _serve("moto", infra_state_dir)


@pytest.fixture(scope="session")
def mariadb_url(infra_state_dir: Path) -> Iterator[str]:
    """``mysql+pymysql://...`` URL of a MariaDB database ``pinpipe``."""
    yield from _serve("mariadb", infra_state_dir)


@pytest.fixture(scope="session")
def postgres_url(infra_state_dir: Path) -> Iterator[str]:
    """``postgresql+psycopg://...`` URL of a PostgreSQL database ``pinpipe``."""
    yield from _serve("postgres", infra_state_dir)


@pytest.fixture(scope="session")
def spark_jars(infra_state_dir: Path) -> Iterator[str]:
    """Comma-separated jar paths for ``spark.jars`` (Kafka source, Delta, hadoop-aws)."""
    yield from _serve("spark", infra_state_dir)


@pytest.fixture(scope="session")
def chromium_path(infra_state_dir: Path) -> Iterator[str]:
    """Path of Debian's headless-capable Chromium executable."""
    yield from _serve("chromium", infra_state_dir)


@pytest.fixture(scope="session")
def airflow_python(infra_state_dir: Path) -> Iterator[str]:
    """Path of the Python of ``.venv-airflow`` (Apache Airflow installed, no server running)."""
    yield from _serve("airflow", infra_state_dir)


@pytest.fixture
def kafka_log(kafka_bootstrap: str) -> Iterator[object]:
    """A KafkaLog on the session broker (3 partitions by default); closed after the test."""
    from pinpipe.log.kafka import KafkaLog

    log = KafkaLog(f"kafka://{kafka_bootstrap}", partitions=3)
    try:
        yield log
    finally:
        log.close()
