"""What anyone may see carries no secret of the configuration: the dashboard answers whoever reaches it
when no API key is configured, and what `api serve` prints goes to the journal of a deployed unit."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pinpipe.config import Settings, load_settings
from pinpipe.dashboard.app import create_dashboard_app

SECRET = "hunter2-not-to-be-shown"


def test_the_status_shows_the_log_url_with_its_secrets_masked(settings: Settings) -> None:
    """``/api/status`` showed ``log.url`` as configured, a ``sasl.password`` in its query included."""
    url = f"kafka://127.0.0.1:1?sasl.username=pinpipe&sasl.password={SECRET}&timeout_s=1"
    settings = load_settings(workdir=settings.workdir, **{"log.url": url})
    with TestClient(create_dashboard_app(settings)) as dashboard:
        answer = dashboard.get("/api/status")
    assert answer.status_code == 200
    status = answer.json()
    assert SECRET not in answer.text
    assert (
        status["log_url"].startswith("kafka://127.0.0.1:1?") and "sasl.username=pinpipe" in status["log_url"]
    )
    assert status["available"] is False and status["hint"].startswith("log not readable")


def test_the_listening_line_masks_the_log_urls_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``api serve`` printed the log URL as configured, a ``sasl.password`` in its query included, to its
    output (the journal of a deployed unit)."""
    import asyncio

    import uvicorn

    from pinpipe.cli import main

    async def started(self: uvicorn.Server, sockets: object = None) -> None:
        self.started = True

    monkeypatch.setattr(uvicorn.Server, "startup", started)  # the subclass's startup still prints
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: asyncio.run(self.startup(sockets)))
    url = f"memory://?sasl.username=pinpipe&sasl.password={SECRET}"
    main(["api", "serve", "--workdir", str(tmp_path), "--log", url, "--port", "0"])
    out = capsys.readouterr().out
    assert "pinpipe api listening on http://127.0.0.1:" in out and "sasl.username=pinpipe" in out
    assert SECRET not in out


def test_the_demos_summary_masks_the_log_urls_secrets(settings: Settings) -> None:
    """The demo's closing summary printed both log URLs as configured, a ``sasl.password`` included."""
    from rich.console import Console

    from pinpipe.demo import DemoOptions, DemoReport, _print_locations

    url = f"kafka://127.0.0.1:1?sasl.username=pinpipe&sasl.password={SECRET}"
    settings = load_settings(workdir=settings.workdir, **{"log.url": url})
    console = Console(record=True, width=200)
    _print_locations(settings, DemoOptions(), DemoReport(), console)
    shown = console.export_text()
    assert "log (topics)" in shown and "sasl.username=pinpipe" in shown
    assert SECRET not in shown


@pytest.mark.parametrize(
    "url", ["kinesis://?state=/w/kinesis-state.db", "kinesis://", "embedded:///w/log", "file:///w/lake"]
)
def test_a_url_without_secrets_is_shown_as_given(url: str) -> None:
    """Masking rebuilt every URL, and an empty authority was dropped: ``kinesis://?state=`` became
    ``kinesis:?state=``, which the demo's hint then printed."""
    from pinpipe.config_show import mask_url

    assert mask_url(url) == url


def test_the_v3_cluster_id_tells_nothing_of_the_log_urls_secrets() -> None:
    """``GET /v3/clusters`` answers any caller with an id that was a hash of the log URL as configured,
    its password included: a guess of the password could be checked against it offline."""
    from pinpipe.ingest.rest_v3 import cluster_id_of

    base = "kafka://pinpipe:{}@127.0.0.1:9092?sasl.password={}"
    assert cluster_id_of(base.format(SECRET, SECRET)) == cluster_id_of(base.format("guess", "guess"))
    plain = "kafka://127.0.0.1:9092"
    assert cluster_id_of(plain) != cluster_id_of("kafka://127.0.0.1:9093")
