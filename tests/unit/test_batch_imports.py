"""What ``pinpipe batch run --quiet`` imports: a small daily run is short enough for its start-up to count, so
modules it does not use are imported only where they are used."""

from __future__ import annotations

import subprocess
import sys

from pinpipe.config import Settings
from pinpipe.engines import run_batch
from pinpipe.transform.queries import BatchOptions
from tests.unit.test_batch_incremental import lake_objects, put

UNUSED = ("tomllib", "rich.console", "rich.status", "rich.table", "pinpipe.exact_json", "pydantic_settings")
"""The TOML parser (no pinpipe.toml), rich (``--quiet`` without warnings: the summary is plain lines), and the
exact JSON parser of objects read record by record (a lake without bad records); no settings library beside
pydantic."""


def test_a_quiet_incremental_run_imports_only_what_it_uses(settings: Settings) -> None:
    objects = lake_objects([[("a", 1, 0)], [("b", 2, 1)]])  # two objects per kind, no bad record
    first, second = objects[:3], objects[3:]
    for kind, name, data in first:
        put(settings, kind, name, data)
    run_batch(settings, BatchOptions())
    for kind, name, data in second:
        put(settings, kind, name, data)
    code = (
        "import sys\nfrom pinpipe.cli import main\ntry:\n"
        "    main(['batch', 'run', '--workdir', sys.argv[1], '--quiet'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {UNUSED!r} if m in sys.modules))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(settings.workdir)], capture_output=True, text=True, check=True
    )
    assert "1 new objects" in run.stdout, run.stdout
    assert run.stdout.splitlines()[-1] == "[]", run.stdout
