"""What every stage runner shares: graceful stops on signals that leave the caller's handlers as they
were, and one rule for which stream processor runs."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from pinpipe.config import load_settings
from pinpipe.errors import ConfigError
from pinpipe.stopping import stop_on_signals
from pinpipe.streaming import stream_engine


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
