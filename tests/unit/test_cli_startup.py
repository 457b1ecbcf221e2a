"""A process that runs one command imports it with the cyclic garbage collector paused, then freezes what
the imports made; importing a command in a process that goes on (tests) leaves the collector alone."""

from __future__ import annotations

import gc
import subprocess
import sys

from pinpipe.cli import LazyGroup, cli

IMPORT_BATCH = (
    "import gc, sys\n"
    "from pinpipe.cli import cli, run_then_exit\n"
    "def entry():\n"
    "    assert 'pinpipe.config' not in sys.modules  # imported with the command, not with pinpipe\n"
    "    frozen = gc.get_freeze_count()\n"
    "    cli.get_command(None, 'batch')\n"
    "    print(gc.get_freeze_count() > frozen + 10000, gc.isenabled())\n"
    "run_then_exit(entry)\n"
)


def test_a_command_process_freezes_what_importing_its_command_made() -> None:
    done = subprocess.run([sys.executable, "-c", IMPORT_BATCH], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "True"], done.stderr


def test_importing_a_command_in_a_process_that_goes_on_leaves_the_collector_alone() -> None:
    frozen = gc.get_freeze_count()
    assert isinstance(cli, LazyGroup)
    assert cli.get_command(None, "status") is not None  # type: ignore[arg-type]
    assert gc.get_freeze_count() == frozen and gc.isenabled()
