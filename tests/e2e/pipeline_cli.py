"""Running the pipeline the way a user does, one ``pinpipe`` command per subprocess, for the e2e tests.

Commands run with a clean environment (no developer ``PINPIPE_*`` variables, no pinpipe.toml), so a
test sees only the flags it passes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Self

import httpx

from pinpipe.config import Settings, load_settings
from pinpipe.delta import read_table
from pinpipe.lake.formats import parse_key
from pinpipe.lake.store import FileStore
from pinpipe.locations import file_url
from pinpipe.schema import KEY_FIELD, KINDS, Kind
from pinpipe.tables import stream_table
from tests.processes import clean_env as clean_env  # re-exported for the e2e tests
from tests.processes import free_port as free_port


def pinpipe(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``pinpipe ARGS``; a non-zero exit fails the test with the command's output."""
    done = subprocess.run(
        [sys.executable, "-m", "pinpipe", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, (
        f"pinpipe {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done


def location_flags(workdir: Path, log: str | None = None, prefix: str | None = None) -> list[str]:
    flags = ["--workdir", str(workdir)]
    if log is not None:
        flags += ["--log", log]
    if prefix is not None:
        flags += ["--prefix", prefix]
    return flags


def load_aicore(flags: list[str], aicore: Path, env: dict[str, str]) -> None:
    """``pinpipe source load`` of the three real tables into the workdir's source database."""
    pinpipe(
        "source", "load", *flags,
        "--pin", str(aicore / "pinterest_data.jsonl"),
        "--geo", str(aicore / "geolocation_data.csv"),
        "--user", str(aicore / "user_data.csv"),
        "--no-progress",
        env=env,
    )  # fmt: skip


def expected_rows(flags: list[str], iterations: int, env: dict[str, str]) -> list[dict[str, Any]]:
    """What the emulator will send, iteration by iteration (``emulate --dry-run``; null: row missing)."""
    done = pinpipe("emulate", *flags, "--iterations", str(iterations), "--no-sleep", "--dry-run", env=env)
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


class PinpipeProcess:
    """A long-running ``pinpipe ARGS`` in a subprocess, started by the test with ``with`` (or
    :meth:`start`), killed with :meth:`kill` and started again on the same arguments.

    Its output goes to ``log_path``, appended across restarts, not a pipe: a pipe nobody reads fills up
    (librdkafka logs every reconnect during a broker outage) and blocks the process's logging.
    """

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.command = [sys.executable, "-m", "pinpipe", *args]
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log_start = 0

    def start(self) -> None:
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        """What the current run printed so far."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(self._log_start)
            return log.read().decode(errors="replace")

    def kill(self) -> None:
        """``kill -9``, as a crash."""
        assert self.process is not None and self.process.poll() is None, "not running"
        self.process.kill()
        self.process.wait()

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM (a graceful stop), SIGKILL after ``timeout``; the exit status (None: not running)."""
        if self.process is None or self.process.poll() is not None:
            return None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ApiProcess(PinpipeProcess):
    """``pinpipe api serve`` on a free port (kept across restarts); started once it answers ``/readyz``."""

    def __init__(self, flags: list[str], env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(["api", "serve", *flags, "--port", str(self.port)], env, log_path)

    def start(self) -> None:
        super().start()
        assert self.process is not None
        deadline = time.monotonic() + 120
        while f"listening on {self.url}" not in self.output():  # printed once it accepts requests
            assert self.process.poll() is None, f"pinpipe api serve exited:\n{self.output()}"
            assert time.monotonic() < deadline, f"pinpipe api serve did not start:\n{self.output()}"
            time.sleep(0.1)
        assert httpx.get(f"{self.url}/readyz", timeout=30).status_code == 200


def start_demo(
    workdir: Path, aicore: Path, env: dict[str, str], iterations: int, *flags: str
) -> subprocess.Popen[str]:
    """``pinpipe demo`` of the real data (seed 100, no sleeps) into ``workdir``, exporting the ten CSVs to
    ``workdir/E``, in the background; its output goes to ``workdir/demo.out``."""
    workdir.mkdir(parents=True)
    with (workdir / "demo.out").open("w") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [
                sys.executable, "-m", "pinpipe", "demo", "--workdir", str(workdir), *flags,
                "--load-dir", str(aicore), "--seed", "100", "--iterations", str(iterations), "--no-sleep",
                "--export", str(workdir / "E"),
            ],
            env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip


def lake_values(lake: Path, topic: str) -> list[bytes]:
    """Every record value of ``topic`` in the lake, in object-key order (one JSON line each)."""
    store = FileStore(file_url(lake))
    keys = sorted(k for k in store.list() if (parsed := parse_key(k)) is not None and parsed[0] == topic)
    return [line for key in keys for line in store.get(key).splitlines() if line]


def canonical(value: bytes | dict[str, Any]) -> str:
    """A record's JSON with sorted keys, to compare records however their fields were ordered."""
    return json.dumps(json.loads(value) if isinstance(value, bytes) else value, sort_keys=True)


def settings_for(workdir: Path, prefix: str | None = None) -> Settings:
    """Settings as the subprocesses see them (for table locations)."""
    overrides = {"prefix": prefix} if prefix else {}
    return load_settings(workdir=workdir, **overrides)


def expected_values(expected: list[dict[str, Any]], kind: Kind) -> Counter[str]:
    """The multiset of ``kind`` records the emulator sends (its dry run's rows), in :func:`canonical` form."""
    return Counter(canonical(row[kind]) for row in expected if row[kind] is not None)


def assert_stream_tables_hold(settings: Settings, expected: list[dict[str, Any]]) -> None:
    """Each stream table holds every emulated iteration's row of its kind once (compared by ``ind``)."""
    for kind in KINDS:
        table = read_table(stream_table(settings, kind))
        want = Counter(int(row[kind][KEY_FIELD[kind]]) for row in expected if row[kind] is not None)
        got = Counter(table.column("ind").to_pylist())
        assert got == want, f"{kind} stream table: {sum(got.values())} rows, {sum(want.values())} expected"
