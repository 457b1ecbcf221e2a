"""Run inside the Airflow environment (.venv-airflow): load the DAG folder, check it, run dag.test().

Prints one JSON line: import errors, the DAG's schedule settings, and the state of the test run.
Used by tests/integration/test_airflow.py; AIRFLOW_HOME and the PINPIPE_* variables come from the caller.
"""

from __future__ import annotations

import json
import sys


def main(dag_folder: str, dag_id: str) -> int:
    try:  # Airflow >= 3.1
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=dag_folder)
    report: dict[str, object] = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}}
    dag = bag.dags.get(dag_id)
    if dag is None:
        report["dag_ids"] = sorted(bag.dag_ids)
        print(json.dumps(report))
        return 1
    task = dag.get_task("pinpipe_batch_run")
    report.update(
        dag_id=dag.dag_id,
        schedule=str(getattr(dag, "schedule", None) or dag.timetable.summary),
        catchup=dag.catchup,
        retries=task.retries,
        retry_delay_s=task.retry_delay.total_seconds(),
        owner=task.owner,
        bash_command=task.bash_command,
    )
    dag_run = dag.test()
    report["state"] = str(getattr(dag_run.state, "value", dag_run.state))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
