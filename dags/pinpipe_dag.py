"""The daily batch job as an Airflow DAG: ``<prefix>_dag``, one task that runs ``pinpipe batch run``.

Thin on purpose: it only wires a pinpipe call. Airflow's own dependencies conflict with pinpipe's (it holds
FastAPI and others back), so the task runs the pinpipe CLI of pinpipe's own environment as a subprocess
(BashOperator) instead of importing pinpipe into Airflow's interpreter. A non-zero exit of the batch job
fails the task; Airflow retries it once after two minutes.

Configured by environment variables of the Airflow workers (read when the DAG file is parsed):

=========================  ===============================================  ============================
variable                   meaning                                          default
=========================  ===============================================  ============================
PINPIPE_BIN                the pinpipe executable (in pinpipe's own venv)   ``pinpipe`` on PATH
PINPIPE_PREFIX             topic prefix; the DAG id is ``<prefix>_dag``     ``0a1b2c3d4e5f``
PINPIPE_DAG_OWNER          the task owner                                   ``pinpipe``
PINPIPE_DAG_START_DATE     first logical date, ``YYYY-MM-DD``               ``2024-01-01``
PINPIPE_DAG_WORKDIR        ``--workdir`` of the batch job                   (pinpipe's default)
PINPIPE_DAG_LAKE           ``--lake`` URL (e.g. ``s3://bucket/lake``)       (pinpipe's default)
PINPIPE_DAG_ENGINE         ``duckdb`` or ``spark``                          ``duckdb``
PINPIPE_DAG_EXPORT         ``--export`` directory for the ten CSVs          (no export)
PINPIPE_DAG_EXTRA_ARGS     further ``pinpipe batch run`` flags              (none)
PINPIPE_DAG_RETRY_DELAY_S  seconds before the one retry                     ``120``
=========================  ===============================================  ============================

Other ``PINPIPE_...`` settings (log, lake credentials, engine options) reach the job through the
environment, since the subprocess inherits it.
"""

from __future__ import annotations

import os
import shlex
from datetime import datetime, timedelta

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG  # type: ignore[no-redef, unused-ignore]
    from airflow.operators.bash import BashOperator  # type: ignore[no-redef, unused-ignore]


def batch_command(env: dict[str, str]) -> str:
    """The shell command of the task, from the PINPIPE_DAG_* variables."""
    argv = [env.get("PINPIPE_BIN", "pinpipe"), "batch", "run"]
    flags = {
        "--prefix": env.get("PINPIPE_PREFIX"),
        "--workdir": env.get("PINPIPE_DAG_WORKDIR"),
        "--lake": env.get("PINPIPE_DAG_LAKE"),
        "--engine": env.get("PINPIPE_DAG_ENGINE", "duckdb"),
        "--export": env.get("PINPIPE_DAG_EXPORT"),
    }
    for flag, value in flags.items():
        if value:
            argv += [flag, value]
    argv += shlex.split(env.get("PINPIPE_DAG_EXTRA_ARGS", ""))
    return " ".join(shlex.quote(arg) for arg in argv)


PREFIX = os.environ.get("PINPIPE_PREFIX", "0a1b2c3d4e5f")

with DAG(
    dag_id=f"{PREFIX}_dag",
    description="Daily pinpipe batch job: clean the lake and write the ten query outputs.",
    schedule="@daily",
    start_date=datetime.strptime(os.environ.get("PINPIPE_DAG_START_DATE", "2024-01-01"), "%Y-%m-%d"),
    catchup=False,
    default_args={
        "owner": os.environ.get("PINPIPE_DAG_OWNER", "pinpipe"),
        "retries": 1,
        "retry_delay": timedelta(seconds=float(os.environ.get("PINPIPE_DAG_RETRY_DELAY_S", "120"))),
    },
    tags=["pinpipe"],
) as dag:
    BashOperator(task_id="pinpipe_batch_run", bash_command=batch_command(dict(os.environ)))
