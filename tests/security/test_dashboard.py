"""The dashboard answers anyone who reaches it: nothing it serves may carry a secret of the configuration."""

from __future__ import annotations

from fastapi.testclient import TestClient

from pinpipe.config import Settings, load_settings
from pinpipe.dashboard.app import create_dashboard_app

SECRET = "hunter2-not-for-the-page"


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
