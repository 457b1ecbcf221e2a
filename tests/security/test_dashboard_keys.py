"""The dashboard behind the API's keys, over real HTTP on 127.0.0.1: a browser logs in with the key as the
Basic password, scripts send X-API-Key or Bearer, and a tenant's key reaches nothing of another tenant's."""

from __future__ import annotations

import base64
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from pinpipe.config import Settings
from pinpipe.dashboard import create_dashboard_app
from pinpipe.schema import stream_name, topic_name
from pinpipe.serve import background_server
from tests.unit.api_support import with_api, write_keys_file
from tests.unit.test_dashboard_api import write_output
from tests.unit.test_dashboard_live import fill_log

CLI_KEY = "dashboard-cli-key-0123456789"  # api.api_keys: a producer key on every prefix
ADMIN_KEY = "dashboard-admin-key-0123456789"  # api.admin_keys
OWN_KEY = "tenant-own-key-0123456789"  # keys file: the dashboard's own prefix
OTHER_KEY = "tenant-other-key-0123456789"  # keys file: a prefix that starts with the dashboard's
OTHER_ADMIN_KEY = "tenant-other-admin-key-0123456789"  # keys file: role admin, the other prefix only
WRONG_KEY = "wrong-key-0123456789abcdef"
REALM = 'Basic realm="pinpipe dashboard"'
SECRET_CATEGORY = "only-for-keys-on-every-prefix"
ROUTES = ("/", "/api/status", "/api/metrics", "/api/batch", "/api/batch/popular_category_by_year")


def basic(key: str, user: str = "anyone") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()}


@pytest.fixture
def secured(settings: Settings, tmp_path: Path) -> Settings:
    other = settings.prefix + "ab"
    keys = {
        "own": (OWN_KEY, settings.prefix, None),
        "other": (OTHER_KEY, other, None),
        "otheradmin": (OTHER_ADMIN_KEY, other, "admin"),
    }
    path = write_keys_file(tmp_path / "keys.toml", keys)
    secured = with_api(settings, api_keys=(CLI_KEY,), admin_keys=(ADMIN_KEY,), keys_file=path)
    fill_log(secured, pins=6, geos=4)
    write_output(
        secured,
        "popular_category_by_year",
        pa.table(
            {"post_year": pa.array([2020], pa.int32()), "category": [SECRET_CATEGORY], "category_count": [7]}
        ),
    )
    return secured


def serve(settings: Settings) -> Iterator[str]:
    with background_server(create_dashboard_app(settings)) as url:
        yield url


@pytest.fixture
def url(secured: Settings) -> Iterator[str]:
    yield from serve(secured)


@pytest.fixture
def open_url(settings: Settings) -> Iterator[str]:
    fill_log(settings, pins=2, geos=1)
    yield from serve(settings)


def get(url: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(url + path, headers=headers or {}, timeout=10)


@pytest.mark.parametrize("path", [*ROUTES, "/static/app.js", "/static/style.css", "/openapi.json", "/docs"])
def test_without_a_key_or_with_a_wrong_one_every_path_is_401_with_a_basic_challenge(
    url: str, path: str
) -> None:
    for headers in ({}, {"X-API-Key": WRONG_KEY}, {"Authorization": f"Bearer {WRONG_KEY}"}, basic(WRONG_KEY)):
        response = get(url, path, headers)
        assert response.status_code == 401, (path, headers)
        assert response.headers["www-authenticate"] == REALM
        assert WRONG_KEY not in response.text and SECRET_CATEGORY not in response.text
    assert "password" in get(url, path).json()["detail"]  # says how to log in


def test_an_unknown_path_is_401_too_so_nothing_is_learnt_without_a_key(url: str) -> None:
    assert get(url, "/no/such/path").status_code == 401
    assert get(url, "/no/such/path", {"X-API-Key": ADMIN_KEY}).status_code == 404


def test_a_browser_logs_in_with_the_key_as_basic_password_and_any_user_name(url: str) -> None:
    for user in ("anyone", "", "admin"):
        page = get(url, "/", basic(ADMIN_KEY, user))
        assert page.status_code == 200 and "/static/app.js" in page.text
    for asset in ("/static/app.js", "/static/charts.js", "/static/style.css"):
        assert get(url, asset, basic(ADMIN_KEY)).status_code == 200
    assert get(url, "/api/status", {"Authorization": f"Bearer {ADMIN_KEY}"}).status_code == 200
    assert get(url, "/api/status", {"X-API-Key": ADMIN_KEY}).status_code == 200
    spec = get(url, "/openapi.json", {"X-API-Key": ADMIN_KEY}).json()
    assert set(spec["components"]["securitySchemes"]) == {"ApiKey", "Bearer", "Basic"} and spec["security"]


@pytest.mark.parametrize("key", [ADMIN_KEY, CLI_KEY])
def test_a_key_on_every_prefix_sees_everything(url: str, secured: Settings, key: str) -> None:
    status = get(url, "/api/status", {"X-API-Key": key}).json()
    topics = {p["topic"] for p in status["partitions"]}
    assert topics == {stream_name(secured.prefix, "pin"), topic_name(secured.prefix, "geo")}
    assert {r["stream"] for r in status["rates"]} == topics
    assert get(url, "/api/metrics", {"X-API-Key": key}).status_code == 200
    listing = get(url, "/api/batch", {"X-API-Key": key}).json()
    assert any(o["available"] for o in listing["outputs"])
    rows = get(url, "/api/batch/popular_category_by_year", {"X-API-Key": key}).json()["rows"]
    assert rows[0]["category"] == SECRET_CATEGORY


def test_a_tenant_key_sees_its_own_topics_and_is_refused_what_no_prefix_owns(
    url: str, secured: Settings
) -> None:
    """The batch outputs and the stream metrics are tables every prefix's runs write alike: no tenant owns
    them, so a tenant's key is refused them (403, saying why) rather than shown someone else's."""
    headers = basic(OWN_KEY)
    assert get(url, "/", headers).status_code == 200
    assert get(url, "/static/app.js", headers).status_code == 200
    status = get(url, "/api/status", headers).json()
    assert status["available"] is True
    assert {p["topic"] for p in status["partitions"]} == {
        stream_name(secured.prefix, "pin"),
        topic_name(secured.prefix, "geo"),
    }
    for path in ROUTES[2:]:
        response = get(url, path, headers)
        assert response.status_code == 403, path
        detail = response.json()["detail"]
        assert "'own'" in detail and "every prefix" in detail, detail
        assert SECRET_CATEGORY not in response.text


@pytest.mark.parametrize("key", [OTHER_KEY, OTHER_ADMIN_KEY])
def test_another_tenants_key_reaches_nothing_of_this_tenant(url: str, secured: Settings, key: str) -> None:
    """Its prefix starts with this dashboard's; an admin role limited to that prefix sees no more."""
    seen = [get(url, path, {"X-API-Key": key}) for path in ROUTES]
    status = seen[1].json()
    assert seen[1].status_code == 200 and status["partitions"] == [] and status["rates"] == []
    assert status["available"] is False and "prefixes of API key" in status["hint"]
    assert [r.status_code for r in seen[2:]] == [403, 403, 403]
    for response in seen:
        assert secured.prefix + "." not in response.text and f"-{secured.prefix}-" not in response.text
        assert SECRET_CATEGORY not in response.text


def test_failed_logins_never_log_the_key(url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    encoded = basic(WRONG_KEY)["Authorization"].split()[1]
    for headers in ({"X-API-Key": WRONG_KEY}, basic(WRONG_KEY), {"Authorization": f"Bearer {WRONG_KEY}"}):
        assert get(url, "/api/status", headers).status_code == 401
    assert "invalid API key" in caplog.text  # an operator sees the attempts
    assert WRONG_KEY not in caplog.text and encoded not in caplog.text


def test_with_no_key_configured_the_dashboard_stays_open(open_url: str) -> None:
    for path in (*ROUTES, "/static/app.js", "/openapi.json"):
        response = get(open_url, path)
        assert response.status_code == 200, path
        assert "www-authenticate" not in response.headers
    assert get(open_url, "/api/status").json()["partitions"]


def dashboard_output(settings: Settings, monkeypatch: pytest.MonkeyPatch, *flags: str) -> str:
    import uvicorn
    from click.testing import CliRunner

    from pinpipe.cli import cli

    def fake_run(server: uvicorn.Server, sockets: list[socket.socket]) -> None:
        pass

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    settings.workdir.mkdir(parents=True, exist_ok=True)
    command = ["dashboard", "--workdir", str(settings.workdir), "--port", "0", *flags]
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 0, result.output
    return result.output


def test_listening_beyond_loopback_with_no_key_warns_in_one_line(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    warned = [
        line
        for line in dashboard_output(settings, monkeypatch, "--host", "0.0.0.0").splitlines()
        if "warning" in line
    ]
    assert len(warned) == 1 and "no API key" in warned[0] and "0.0.0.0" in warned[0], warned
    assert "warning" not in dashboard_output(settings, monkeypatch, "--host", "127.0.0.1")
    path = write_keys_file(tmp_path / "keys.toml", {"own": (OWN_KEY, settings.prefix, None)})
    keyed = dashboard_output(settings, monkeypatch, "--host", "0.0.0.0", "--keys-file", str(path))
    assert "warning" not in keyed
    monkeypatch.setenv("PINPIPE_API__ADMIN_KEYS", f'["{ADMIN_KEY}"]')
    assert "warning" not in dashboard_output(settings, monkeypatch, "--host", "0.0.0.0")
