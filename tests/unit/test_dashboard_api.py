"""The dashboard's JSON API on a tmp workdir: Delta tables written here, empty states, OpenAPI routes."""

from __future__ import annotations

import socket

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from fastapi.testclient import TestClient

from pinpipe.config import Settings
from pinpipe.dashboard import create_dashboard_app
from pinpipe.dashboard.batch import OUTPUTS
from pinpipe.locations import delta_uri
from pinpipe.tables import batch_table


def write_output(settings: Settings, name: str, table: pa.Table, mode: str = "overwrite") -> None:
    write_deltalake(delta_uri(batch_table(settings, name)), table, mode=mode)  # type: ignore[call-overload]


@pytest.fixture
def client(settings: Settings) -> TestClient:
    return TestClient(create_dashboard_app(settings))


def test_empty_workdir_says_what_to_run(client: TestClient) -> None:
    batch = client.get("/api/batch").json()
    assert batch["hint"] and "pinpipe batch run" in batch["hint"]
    assert [o["name"] for o in batch["outputs"]] == list(OUTPUTS)
    assert not any(o["available"] for o in batch["outputs"])
    one = client.get("/api/batch/popular_category_by_country").json()
    assert one["available"] is False and one["rows"] == [] and "pinpipe batch run" in one["hint"]
    metrics = client.get("/api/metrics").json()
    assert metrics["available"] is False and "pinpipe stream" in metrics["hint"]
    status = client.get("/api/status").json()
    assert status["available"] is False and "pinpipe demo" in status["hint"]
    page = client.get("/")
    assert page.status_code == 200 and 'data-refresh-ms="2000"' in page.text


def test_batch_output_rows_sorted_by_group_columns(client: TestClient, settings: Settings) -> None:
    write_output(
        settings,
        "popular_category_by_year",
        pa.table(
            {
                "post_year": pa.array([2020, 2018, 2019], pa.int32()),
                "category": ["art", "beauty", "mens-fashion"],
                "category_count": pa.array([7, 3, 41500], pa.int64()),
            }
        ),
    )
    listing = client.get("/api/batch").json()
    assert listing["hint"] is None
    summary = {o["name"]: o for o in listing["outputs"]}["popular_category_by_year"]
    assert summary["available"] and summary["row_count"] == 3 and summary["version"] == 0
    body = client.get("/api/batch/popular_category_by_year").json()
    assert body["columns"] == ["post_year", "category", "category_count"]
    assert body["rows"] == [
        {"post_year": 2018, "category": "beauty", "category_count": 3},
        {"post_year": 2019, "category": "mens-fashion", "category_count": 41500},
        {"post_year": 2020, "category": "art", "category_count": 7},
    ]
    assert body["groups"] == ["post_year"] and body["value"] == "category_count" and body["chart"] == "column"


def test_a_new_batch_version_is_read(client: TestClient, settings: Settings) -> None:
    table = pa.table({"age_group": ["18-24", "50+"], "median_follower_count": [100, 5000]})
    write_output(settings, "median_followers_by_age_group", table)
    assert client.get("/api/batch/median_followers_by_age_group").json()["version"] == 0
    write_output(settings, "median_followers_by_age_group", table.slice(0, 1))
    body = client.get("/api/batch/median_followers_by_age_group").json()
    assert body["version"] == 1 and body["rows"] == [{"age_group": "18-24", "median_follower_count": 100}]


def test_unknown_output_is_404_naming_the_known_ones(client: TestClient) -> None:
    response = client.get("/api/batch/no_such_output")
    assert response.status_code == 404
    assert "popular_category_by_country" in response.json()["detail"]


def test_openapi_documents_every_route_with_response_models(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for route in ("/api/metrics", "/api/status", "/api/batch", "/api/batch/{output}"):
        schema = paths[route]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert "$ref" in schema, route
    names = set(spec["components"]["schemas"])
    assert {"Metrics", "Status", "BatchList", "BatchOutput", "PartitionLag", "StreamRate"} <= names


def test_static_assets_ship_in_the_package_and_nothing_is_fetched_from_elsewhere(client: TestClient) -> None:
    page = client.get("/").text
    for asset in ("/static/style.css", "/static/charts.js", "/static/app.js"):
        assert asset in page
        response = client.get(asset)
        assert response.status_code == 200 and len(response.text) > 100
        assert "http://" not in response.text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in response.text
    assert "https://" not in page and "http://" not in page


def test_cli_serves_the_app_with_the_flags(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn
    from click.testing import CliRunner

    from pinpipe.cli import cli

    served: dict[str, object] = {}

    def fake_run(server: uvicorn.Server, sockets: list[socket.socket]) -> None:
        host, port = sockets[0].getsockname()[:2]
        served.update(app=server.config.app, host=host, port=port)

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    settings.workdir.mkdir(parents=True)
    workdir = str(settings.workdir)
    result = CliRunner().invoke(cli, ["dashboard", "--workdir", workdir, "--port", "0", "--refresh", "5"])
    assert result.exit_code == 0, result.output
    assert served["host"] == "127.0.0.1" and f"http://127.0.0.1:{served['port']}/" in result.output
    page = TestClient(served["app"]).get("/").text  # type: ignore[arg-type]
    assert 'data-refresh-ms="5000"' in page and "every 5 s" in page
    assert "--refresh" in CliRunner().invoke(cli, ["dashboard", "--help"]).output
