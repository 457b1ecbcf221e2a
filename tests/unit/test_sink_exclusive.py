"""On the embedded log a second lake sink of the same group is refused (it would race on the commits)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pinpipe.errors import LogError
from pinpipe.lake.sink import LakeSink
from pinpipe.lake.store import FileStore
from pinpipe.log.embedded import EmbeddedLog


def test_a_second_sink_of_the_group_on_one_embedded_log_is_refused(tmp_path: Path) -> None:
    log = EmbeddedLog(f"embedded://{tmp_path / 'log'}")
    store = FileStore(f"file://{tmp_path / 'lake'}")
    with LakeSink(log, store, ["t.pin"]):
        second = LakeSink(log, store, ["t.pin"])  # built: configuration only
        with pytest.raises(LogError, match="another lake sink of group 'pinpipe-lake-sink'") as err:
            second.start()
        assert "\n" not in str(err.value)
        LakeSink(log, store, ["t.pin"], group="other").start().close()  # another group is fine
    LakeSink(log, store, ["t.pin"]).start().close()  # and the group is free again once the first one closed
    log.close()
