"""``pinpipe emulate``: an --api without its scheme is refused at once, and send errors name the URL and
the server's own message."""

from __future__ import annotations

import time

import httpx
import pytest

from pinpipe.cli import main
from pinpipe.config import Settings, load_settings
from pinpipe.ingest.app import create_app
from pinpipe.serve import background_server
from pinpipe.source.database import open_source
from pinpipe.source.synthetic import seed_database


@pytest.fixture
def seeded(settings: Settings) -> Settings:
    engine = open_source(settings.source_url)
    seed_database(engine, 11_001, seed=1, progress=False)
    engine.dispose()
    return settings


def emulate(settings: Settings, *args: str) -> int:
    with pytest.raises(SystemExit) as done:
        main(["emulate", "--workdir", str(settings.workdir), "--iterations", "1", "--no-sleep", "-q", *args])
    return int(done.value.code or 0)


def test_an_api_without_its_scheme_is_refused_at_once(
    seeded: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    code = emulate(seeded, "--api", "127.0.0.1:8000", "--max-retries", "3")
    took = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 1 and took < 5, (code, took, err)
    assert "'127.0.0.1:8000' is not an http:// or https:// URL" in err and "http://127.0.0.1:8000" in err
    assert len(err.strip().splitlines()) == 1, err


def test_a_refused_key_names_the_url_and_the_server_message(
    seeded: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PINPIPE_API__API_KEYS", '["the-right-key-0123"]')
    guarded = load_settings(workdir=seeded.workdir)
    with background_server(create_app(guarded)) as url:
        topic = f"{url}/topics/{guarded.prefix}.pin"
        answer = httpx.post(topic, json={"records": [{"value": {}}]}, headers={"X-API-Key": "wrong"})
        server_message = answer.json()["message"]
        code = emulate(seeded, "--api", url, "--api-key", "wrong", "--mode", "batch")
    err = capsys.readouterr().err
    assert answer.status_code == 401 and code == 1
    assert f"batch pin: POST {topic}: HTTP 401 error_code 40101: {server_message}" in err, err
