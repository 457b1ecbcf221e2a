"""The daily DAG in a real Airflow (.venv-airflow): it imports cleanly, has the documented schedule settings,
and `dag.test()` runs `pinpipe batch run` on a workdir an embedded demo filled; a failing job fails the task.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pinpipe.config import load_settings
from pinpipe.demo import DemoOptions, run_demo
from pinpipe.transform.queries import OUTPUTS

pytestmark = pytest.mark.airflow

REPO = Path(__file__).resolve().parents[2]
CHECK = Path(__file__).with_name("airflow_dag_check.py")
DAG_ID = "0a1b2c3d4e5f_dag"


@pytest.fixture(scope="module")
def demo_workdir(tmp_path_factory: pytest.TempPathFactory, aicore: Path) -> Path:
    """A workdir with a lake from an embedded demo on the real data (200 iterations, no stream)."""
    workdir = tmp_path_factory.mktemp("airflow") / "work"
    settings = load_settings(workdir=workdir)
    run_demo(settings, DemoOptions(iterations=200, load_dir=aicore, stream=False))
    return workdir


@pytest.fixture(scope="module")
def airflow_home(airflow_python: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A fresh AIRFLOW_HOME with `airflow db migrate` done; the environment for the check script."""
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "PINPIPE_BIN": str(Path(sys.executable).with_name("pinpipe")),
    }
    airflow = Path(airflow_python).with_name("airflow")
    done = subprocess.run(
        [str(airflow), "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return env


def run_dag(env: dict[str, str], airflow_python: str, **variables: str) -> dict[str, object]:
    done = subprocess.run(
        [airflow_python, str(CHECK), str(REPO / "dags"), DAG_ID],
        env={**env, **variables},
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no report from the DAG check (exit {done.returncode}):\n{done.stderr[-3000:]}"
    report: dict[str, object] = json.loads(lines[-1])
    return report


def test_dag_runs_the_batch_job(
    airflow_home: dict[str, str], airflow_python: str, demo_workdir: Path, tmp_path: Path
) -> None:
    export = tmp_path / "export"
    report = run_dag(
        airflow_home, airflow_python, PINPIPE_DAG_WORKDIR=str(demo_workdir), PINPIPE_DAG_EXPORT=str(export)
    )
    assert report["import_errors"] == {}
    assert report["dag_id"] == DAG_ID
    assert report["schedule"] == "@daily"
    assert report["catchup"] is False
    assert report["retries"] == 1
    assert report["retry_delay_s"] == 120.0
    assert report["state"] == "success"
    written = sorted(p.stem for p in export.glob("*.csv"))
    assert written == sorted(OUTPUTS)
    header = (export / "popular_category_by_country.csv").read_text().splitlines()[0]
    assert header == "country,category,category_count"


def test_failing_batch_job_fails_the_task(
    airflow_home: dict[str, str], airflow_python: str, demo_workdir: Path
) -> None:
    report = run_dag(
        airflow_home,
        airflow_python,
        PINPIPE_DAG_WORKDIR=str(demo_workdir),
        PINPIPE_DAG_LAKE="bogus://unreadable-lake",
        PINPIPE_DAG_RETRY_DELAY_S="1",
    )
    assert report["import_errors"] == {}
    assert report["state"] == "failed"
