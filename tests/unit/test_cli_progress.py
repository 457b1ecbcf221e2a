"""Progress lines: none (no carriage returns) when stderr is not a terminal, and ``-q`` on every
long-running command."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from pinpipe.cli import cli
from pinpipe.config import Settings
from pinpipe.log import open_settings_log
from pinpipe.log.base import OutgoingRecord
from pinpipe.schema import KINDS, stream_name
from tests.processes import clean_env

LONG_RUNNING = [
    ("stream", "run"),
    ("sink", "run"),
    ("batch", "run"),
    ("emulate",),
    ("demo",),
    ("source", "seed"),
    ("source", "load"),
]


@pytest.mark.parametrize("command", LONG_RUNNING, ids=" ".join)
def test_every_long_running_command_takes_q(command: tuple[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "-q, --quiet" in result.output


def test_stream_run_writes_no_carriage_return_off_a_terminal(settings: Settings) -> None:
    log = open_settings_log(settings)
    for kind in KINDS:
        log.create_topic(stream_name(settings.prefix, kind), 1)
    pin = stream_name(settings.prefix, "pin")
    log.writer().append(pin, [OutgoingRecord(b'{"not": "a pin"}') for _ in range(5)])
    log.close()
    done = subprocess.run(
        [sys.executable, "-m", "pinpipe", "stream", "run", "--until-idle", "--max-records", "1"],
        cwd=settings.workdir.parent,
        env={**clean_env(settings.workdir.parent), "PINPIPE_WORKDIR": str(settings.workdir)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("stream: 5 records in "), done.stdout  # micro-batches ran: progress was due
    assert "\r" not in done.stderr and "\r" not in done.stdout
    assert done.stderr == ""
