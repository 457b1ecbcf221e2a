"""Hostile records through the batch job as cron runs it: the default duplicate rule (a pin's first record
per unique_id, identical geo/user rows once), one incremental run per delivery. Whatever the API
acknowledged is cleaned, never quarantined, and the runs leave the tables one run over the whole lake
(``--full-refresh``) gives: the incremental paths (kept unique_id keys, kept rows, the rebuild when a new
object sorts before cleaned ones) meet the same records as the one-pass definition."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pinpipe import tables
from pinpipe.config import Settings
from pinpipe.delta import read_table
from pinpipe.engines import run_batch
from pinpipe.schema import KINDS, Kind
from pinpipe.transform.queries import OUTPUTS
from tests.security.pipeline import pipeline
from tests.security.records import records

EXAMPLES = int(os.environ.get("PINPIPE_POISON_EXAMPLES_INCREMENTAL", "6"))
"""About 1.3 s each (two or three deliveries, a batch run after each, then a full refresh)."""


def rows(settings: Settings) -> dict[str, list[str]]:
    """Every cleaned table and output as sorted row texts (row order is no part of a table)."""
    names = [*KINDS, *OUTPUTS]
    return {
        name: sorted(map(repr, read_table(tables.batch_table(settings, name)).to_pylist())) for name in names
    }


@st.composite
def deliveries(draw: st.DrawFn) -> list[dict[Kind, list[str]]]:
    """Two or three deliveries; a later one resends some earlier records (a client retrying without an
    idempotency key) among new ones, so the duplicate rule meets records the tables hold already."""
    sent = [
        draw(st.fixed_dictionaries({kind: st.lists(records(kind), min_size=1, max_size=4) for kind in KINDS}))
    ]
    for _ in range(draw(st.integers(1, 2))):
        later: dict[Kind, list[str]] = {}
        for kind in KINDS:
            resent = draw(st.lists(st.sampled_from([t for d in sent for t in d[kind]]), max_size=3))
            texts = draw(st.permutations(resent + draw(st.lists(records(kind), max_size=3))))
            later[kind] = texts or [draw(records(kind))]
        sent.append(later)
    return sent


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(deliveries())
def test_incremental_default_runs_equal_one_run_over_the_whole_lake(
    sent: list[dict[Kind, list[str]]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp, pipeline(Path(tmp) / "work") as p:
        quarantined: list[Any] = []
        for delivery in sent:
            for kind, texts in delivery.items():
                p.send(kind, texts)
            p.sink()
            quarantined += run_batch(p.settings).quarantined
        incremental = rows(p.settings)
        whole = run_batch(p.settings, full_refresh=True)
        assert not quarantined and not whole.quarantined, quarantined or whole.quarantined
        assert incremental == rows(p.settings)
