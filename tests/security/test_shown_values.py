"""Values are shown in a terminal as they were sent: ``pinpipe batch run``, ``pinpipe metrics`` and the
quarantine warning draw record text as text, never as rich markup (``[/]`` stopped the command with a
MarkupError after the tables were written; ``[red]`` and ``:thumbs_up:`` were drawn as a colour and an
emoji, not as the name sent), and a control character as its escape (``\\x1b``), never raw: a tenant's
``\\x1b[2J`` cleared the operator's screen."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pinpipe.cli import cli
from pinpipe.log.base import OutgoingRecord
from pinpipe.schema import KINDS, topic_name
from tests.security.pipeline import pipeline, quick_pairing

CATEGORY, POSTER, COUNTRY = "[/]", "[red]p :thumbs_up:", "[/bold]c\x1b[2J"
SHOWN_COUNTRY = "[/bold]c\\x1b[2J"
PIN = {"index": 1, "unique_id": "u", "poster_name": POSTER, "follower_count": "10k", "category": CATEGORY}
GEO = {"ind": 1, "timestamp": "2020-01-01 00:00:00", "latitude": 1.0, "longitude": 2.0, "country": COUNTRY}
USER = {"ind": 1, "first_name": "[b]", "last_name": "[/i]", "age": 30, "date_joined": "2016-01-01 00:00:00"}


WIDE = {"COLUMNS": "250"}
"""A terminal wide enough that rich wraps no cell (the metric tables have seven columns)."""


def shown(output: str) -> str:
    """The output with every run of spaces, line ends and table borders as one space."""
    for border in "│┃━─┏┓┗┛┡┩└┘┌┐┳╇╈┼├┤┬┴":
        output = output.replace(border, " ")
    return " ".join(output.split())


def test_names_in_outputs_and_metrics_are_printed_as_sent(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    with quick_pairing(), pipeline(workdir) as p:
        for kind, record in zip(KINDS, (PIN, GEO, USER), strict=True):
            p.send(kind, [json.dumps(record)])
        p.sink()
        batch = CliRunner().invoke(cli, ["batch", "run", "--workdir", str(workdir)], env=WIDE)
        p.stream()
        metrics = CliRunner().invoke(cli, ["metrics", "--workdir", str(workdir)], env=WIDE)
    assert batch.exit_code == 0, batch.output
    assert f"{SHOWN_COUNTRY} {CATEGORY} 1" in shown(batch.output)  # popular_category_by_country
    assert f"{SHOWN_COUNTRY} {POSTER} 10000" in shown(batch.output)  # top_user_by_country
    assert metrics.exit_code == 0, metrics.output
    assert f" {SHOWN_COUNTRY} " in shown(metrics.output), metrics.output  # country_activity
    assert "\x1b" not in batch.output + metrics.output


def test_the_quarantine_warning_prints_a_reason_holding_brackets_as_it_is(tmp_path: Path) -> None:
    """A record written past the API (another producer) whose timestamp is ``[/]``: quarantined, and the
    warning naming it must not stop the run."""
    workdir = tmp_path / "work"
    bad = json.dumps({**GEO, "ind": 2, "timestamp": "[/]"})
    with pipeline(workdir) as p:
        writer = p.log.writer()
        records = [OutgoingRecord(json.dumps(GEO).encode()), OutgoingRecord(bad.encode())]
        writer.append(topic_name(p.settings.prefix, "geo"), records)
        writer.flush()
        p.sink()
        batch = CliRunner().invoke(cli, ["batch", "run", "--workdir", str(workdir), "--quiet"], env=WIDE)
    assert batch.exit_code == 0, batch.output
    assert "field 'timestamp' must be datetime, got '[/]'" in shown(batch.output)
    assert "WARNING: 1 lake record(s) quarantined" in shown(batch.output)
