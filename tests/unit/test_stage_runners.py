"""What every stage runner shares: built, it holds configuration only; ``start()`` acquires and, when a
step fails, releases what it had; ``close()`` releases everything and may be repeated; ``with`` starts
and closes. Graceful stops on signals leave the caller's handlers as they were, and one rule says which
stream processor runs."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pinpipe.config import Settings, load_settings
from pinpipe.errors import ConfigError, LogError, LogUnavailableError
from pinpipe.lake.sink import LakeSink
from pinpipe.lake.store import FileStore
from pinpipe.locations import file_url
from pinpipe.log.embedded import EmbeddedLog
from pinpipe.stage import Stage
from pinpipe.stopping import stop_on_signals
from pinpipe.streaming import spark_stream, stream_engine
from pinpipe.streaming.processor import StreamProcessor
from pinpipe.streaming.spark_stream import SparkStreamJob

STAGE_THREADS = ("lake-sink-puts", "pinpipe-delta")


class Unreachable:
    """A log that is not there (a broker down): every call fails, and is counted."""

    url = "kafka://127.0.0.1:1"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        def call(*args: object, **kwargs: object) -> Any:
            self.calls.append(name)
            raise LogUnavailableError(f"{name}: no broker at {self.url}")

        return call


def held(under: Path) -> list[str]:
    """The files under ``under`` this process holds open, once per descriptor (Linux)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the descriptor listdir itself used, closed meanwhile
            continue
        if target.startswith(str(under)):
            found.append(target)
    return sorted(found)


def stage_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(STAGE_THREADS)]


def files(under: Path) -> list[Path]:
    return sorted(under.rglob("*"))


def sink_on(log: Any, tmp_path: Path, settings: Settings) -> Stage:
    return LakeSink(log, FileStore(file_url(tmp_path / "lake")), ["t.pin"])


def processor_on(log: Any, tmp_path: Path, settings: Settings) -> Stage:
    return StreamProcessor(settings, log)


STAGES: dict[str, Callable[[Any, Path, Settings], Stage]] = {"sink": sink_on, "processor": processor_on}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_built_stage_opens_nothing_and_a_failed_start_leaves_nothing(
    tmp_path: Path, settings: Settings, stage: str
) -> None:
    log = Unreachable()
    before = files(tmp_path)
    runner = STAGES[stage](log, tmp_path, settings)
    assert log.calls == []
    assert files(tmp_path) == before and held(tmp_path) == [] and stage_threads() == []
    with pytest.raises(LogUnavailableError):
        runner.start()
    assert log.calls  # it did try
    assert held(tmp_path) == [] and stage_threads() == []  # the processor's lock file is closed too
    runner.close()
    runner.close()


def test_a_sink_whose_start_fails_half_way_releases_its_lock_and_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = EmbeddedLog(f"embedded://{tmp_path / 'log'}")
    store = FileStore(file_url(tmp_path / "lake"))
    before = held(tmp_path)

    def refused(group: str, topics: object) -> Any:
        raise LogUnavailableError("the reader could not open")

    monkeypatch.setattr(log, "reader", refused)  # after the group's lock and the topics
    sink = LakeSink(log, store, ["t.pin"])
    with pytest.raises(LogUnavailableError, match="reader could not open"):
        sink.start()
    assert held(tmp_path) == before and stage_threads() == []
    monkeypatch.undo()
    with LakeSink(log, store, ["t.pin"]) as again:  # the group's lock is free
        assert again.run(until_idle=True).records == 0
    log.close()


def test_a_processor_whose_start_fails_half_way_releases_its_lock_log_and_readers(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    real_reader = EmbeddedLog.reader

    def second_refused(self: EmbeddedLog, group: str, topics: list[str]) -> Any:
        opened.extend(topics)
        if len(opened) == 2:
            raise LogUnavailableError("the second stream's reader could not open")
        return real_reader(self, group, topics)

    monkeypatch.setattr(EmbeddedLog, "reader", second_refused)
    processor = StreamProcessor(settings)  # opens its own log (embedded, in the workdir)
    with pytest.raises(LogUnavailableError, match="second stream"):
        processor.start()
    assert len(opened) == 2
    assert held(tmp_path) == [] and stage_threads() == []
    monkeypatch.undo()
    with StreamProcessor(settings) as again:  # the processor lock is free
        assert held(tmp_path)
        assert again.run(until_idle=True).records == 0
    assert held(tmp_path) == []


def readers_of(log: EmbeddedLog, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every reader ``log`` opens from now on."""
    made: list[Any] = []
    real = log.reader

    def reader(group: str, topics: list[str]) -> Any:
        made.append(real(group, topics))
        return made[-1]

    monkeypatch.setattr(log, "reader", reader)
    return made


def lock_files(under: Path) -> list[str]:
    """Held files other than the embedded log's database (SQLite keeps a closed connection's descriptor
    while another connection of the process holds locks on the file)."""
    return [path for path in held(under) if not Path(path).name.startswith("log.db")]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_with_starts_and_closes_and_close_may_be_repeated(
    tmp_path: Path, settings: Settings, stage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = EmbeddedLog(f"embedded://{tmp_path / 'log'}")
    readers = readers_of(log, monkeypatch)
    runner = STAGES[stage](log, tmp_path, settings)
    with pytest.raises(RuntimeError, match=r"not started: call start\(\) first"):
        runner.run(until_idle=True)  # type: ignore[attr-defined]
    with runner as started:
        assert started is runner and started.started
        assert len(lock_files(tmp_path)) == 1
        started.run(until_idle=True)  # type: ignore[attr-defined]
    assert lock_files(tmp_path) == [] and stage_threads() == []
    assert readers
    for reader in readers:
        with pytest.raises(LogError, match="closed"):
            reader.poll(1, 0)
    runner.close()
    with pytest.raises(RuntimeError, match="closed"):
        runner.start()
    log.close()


def test_the_spark_stream_job_opens_nothing_when_built_and_releases_a_failed_start(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Spark stream job's driver side has the same shape: no lock, log or writer until start()."""
    before = files(tmp_path)
    job = SparkStreamJob(settings)
    assert files(tmp_path) == before and held(tmp_path) == [] and stage_threads() == []

    def unreachable(settings: Settings, url: str) -> Any:
        raise LogUnavailableError(f"no broker at {url}")

    monkeypatch.setattr(spark_stream, "open_settings_log", unreachable)  # after the processor lock
    with pytest.raises(LogUnavailableError):
        job.start()
    assert held(tmp_path) == [] and stage_threads() == []
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="not started"):
        SparkStreamJob(settings).idle_step()
    with SparkStreamJob(settings) as again:  # the processor lock is free
        assert lock_files(tmp_path) and again.streams
    assert lock_files(tmp_path) == [] and stage_threads() == []


def test_a_signal_sets_the_stop_request_and_the_previous_handlers_come_back() -> None:
    seen: list[int] = []
    mine = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        stopped: list[bool] = []
        with stop_on_signals(on_stop=lambda: stopped.append(True)) as stop:
            assert not stop()
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop() and stopped == [True]
        assert seen == []  # the stage's handler took it
        os.kill(os.getpid(), signal.SIGTERM)
        assert seen == [signal.SIGTERM]  # the caller's handler is back
    finally:
        signal.signal(signal.SIGTERM, mine)


def test_disabled_signals_leave_the_handlers_alone() -> None:
    before = signal.getsignal(signal.SIGINT)
    with stop_on_signals(enabled=False) as stop:
        assert signal.getsignal(signal.SIGINT) is before
        stop.set()
        assert stop()


@pytest.mark.parametrize(
    ("engine", "batch_engine", "log", "expected"),
    [
        ("auto", "duckdb", "", "embedded"),
        ("auto", "spark", "", "embedded"),  # Structured Streaming reads Kafka only
        ("auto", "spark", "kafka://127.0.0.1:9092", "spark"),
        ("auto", "duckdb", "kafka://127.0.0.1:9092", "embedded"),
        ("embedded", "spark", "kafka://127.0.0.1:9092", "embedded"),
        ("spark", "duckdb", "kafka://127.0.0.1:9092", "spark"),
    ],
)
def test_one_rule_chooses_the_stream_processor(
    tmp_path: Path, engine: str, batch_engine: str, log: str, expected: str
) -> None:
    overrides = {"stream.engine": engine, "engine.name": batch_engine, **({"log.url": log} if log else {})}
    settings = load_settings(workdir=tmp_path, **overrides)
    assert stream_engine(settings) == expected


def test_an_unknown_stream_engine_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"stream\.engine"):
        load_settings(workdir=tmp_path, **{"stream.engine": "flink"})
