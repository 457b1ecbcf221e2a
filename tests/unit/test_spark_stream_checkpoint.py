"""The Spark stream job refuses to start over tables whose batch ids its checkpoint never planned.

Its appends are Delta idempotent writes (``txnVersion`` = batch id): with the checkpoint deleted (or an
older one restored) and the tables kept, the query would run those batch ids again on new records and
Delta would skip them without a word. The check reads the tables with delta-rs: no Spark, no Kafka.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import CommitProperties, Transaction, write_deltalake

from pinpipe import tables
from pinpipe.config import Settings
from pinpipe.errors import StreamError
from pinpipe.locations import delta_uri
from pinpipe.streaming.spark_stream import refuse_lost_checkpoint, txn_app_id


def commit(url: str, app: str, version: int) -> None:
    """One append to the table at ``url`` carrying the application transaction (app, version)."""
    props = CommitProperties(app_transactions=[Transaction(app, version)])
    write_deltalake(delta_uri(url), pa.table({"x": [1]}), mode="append", commit_properties=props)


def plan(settings: Settings, last: int, committed: int) -> None:
    """A checkpoint whose offsets log plans batches 0..last and whose commits log holds 0..committed."""
    checkpoint = tables.spark_checkpoint(settings)
    for log, upto in (("offsets", last), ("commits", committed)):
        (checkpoint / log).mkdir(parents=True, exist_ok=True)
        for batch in range(upto + 1):
            (checkpoint / log / str(batch)).write_text("v1\n")
            (checkpoint / log / f".{batch}.crc").write_bytes(b"")


def test_a_kept_table_without_its_checkpoint_refuses_to_start(settings: Settings) -> None:
    refuse_lost_checkpoint(settings)  # nothing written yet: a fresh start
    pin = tables.stream_table(settings, "pin")
    commit(pin, "pinpipe-stream:some-stream:0", 40)  # the embedded processor's offsets: not this job's
    commit(pin, "pinpipe-spark-stream-ffffffffffff-pin", 9)  # another prefix's Spark job
    refuse_lost_checkpoint(settings)

    dead = tables.dead_letter_table(settings)
    commit(dead, txn_app_id(settings, "dead"), 2)
    checkpoint = tables.spark_checkpoint(settings)
    with pytest.raises(StreamError) as error:
        refuse_lost_checkpoint(settings)
    message = str(error.value)
    assert "\n" not in message
    assert f"{checkpoint} has planned no batch" in message
    assert f"{dead} holds transaction pinpipe-spark-stream-{settings.prefix}-dead version 2" in message
    assert f"Restore the checkpoint, or reset the Spark stream: delete {dead} and {checkpoint}" in message

    plan(settings, last=2, committed=1)  # crashed in batch 2 after the Delta commit: replayed, skipped
    refuse_lost_checkpoint(settings)
    commit(pin, txn_app_id(settings, "pin"), 5)  # an older checkpoint restored: batches 3..5 unknown
    with pytest.raises(StreamError, match=f"has planned batches up to 2, but {pin} holds .* version 5"):
        refuse_lost_checkpoint(settings)
    plan(settings, last=5, committed=5)
    refuse_lost_checkpoint(settings)


def test_the_cli_says_it_in_one_line_before_starting_spark(
    settings: Settings, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pinpipe.cli import main

    commit(tables.stream_table(settings, "geo"), txn_app_id(settings, "geo"), 0)
    args = ["stream", "run", "--engine", "spark", "--workdir", str(workdir), "--log", "kafka://127.0.0.1:9"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--until-idle", "--quiet"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("pinpipe: error: the Spark stream checkpoint") and "\n" not in err
    assert "version 0" in err and "Traceback" not in err
