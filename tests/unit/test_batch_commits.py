"""The DuckDB engine's background commits: made in the order asked, none after a failure, errors raised."""

from __future__ import annotations

import threading
import time

import pytest

from pinpipe.engines.duckdb.commits import Commits


def test_ordered_commits_are_made_one_after_the_other_in_order() -> None:
    made: list[int] = []
    running = threading.Lock()
    commits = Commits()

    def commit(n: int) -> None:
        assert running.acquire(blocking=False), "two ordered commits at once"
        time.sleep(0.002 * (5 - n))  # earlier ones slower: an unordered pool would reorder them
        made.append(n)
        running.release()

    for n in range(5):
        commits.submit(commit, n)
    commits.wait()
    commits.close()
    assert made == [0, 1, 2, 3, 4]


def test_a_failed_commit_is_raised_and_the_commits_after_it_are_not_made() -> None:
    made: list[str] = []
    commits = Commits()
    gate = threading.Event()

    def fail() -> None:
        gate.wait(5)
        raise OSError("disk full")

    commits.submit(made.append, "before")
    commits.submit(fail)
    commits.submit(made.append, "after")
    commits.submit(made.append, "unordered after", ordered=False)
    gate.set()
    with pytest.raises(OSError, match="disk full"):
        commits.wait()
    commits.close()
    assert "after" not in made and made[0] == "before"


def test_commits_run_in_the_callers_context() -> None:
    """The Delta handles of ``delta.shared_handles`` live in a context variable: commits see them."""
    from pinpipe import delta

    commits = Commits()
    seen: list[object] = []
    with delta.shared_handles():
        handles = delta._HANDLES.get()
        commits.submit(lambda: seen.append(delta._HANDLES.get()))
        commits.submit(lambda: seen.append(delta._HANDLES.get()), ordered=False)
        commits.wait()
    commits.close()
    assert seen == [handles, handles] and handles is not None
