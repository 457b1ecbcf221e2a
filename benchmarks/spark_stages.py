"""Where a Spark application's time went, from Spark's own event log (:data:`EVENT_LOG`).

Jobs are grouped by their description (``SparkContext.setJobDescription``: pinpipe's Spark engine labels
its steps, ``spark_plain.py`` its outputs) or, without one, by the name Spark gave their first stage. Per
group: jobs, stages, tasks, the wall time during which at least one of its jobs ran, and the task time
(executor run time summed over tasks: the CPU the work took). ``driver only`` is the application's wall
time with no job running at all: planning, Python, Delta's commit logic, results on the driver.

    .venv/bin/python benchmarks/spark_stages.py /tmp/events/local-1700000000000
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

EVENT_LOG = {
    "spark.eventLog.enabled": "true",
    "spark.eventLog.compress": "false",
    "spark.eventLog.rolling.enabled": "false",
}
"""Settings for an event log this module reads (Spark 4 compresses and rolls it by default); add
``spark.eventLog.dir``."""


@dataclass
class Group:
    jobs: int = 0
    stages: int = 0
    tasks: int = 0
    task_ms: int = 0
    spans: list[tuple[int, int]] = field(default_factory=list)


def covered(spans: list[tuple[int, int]]) -> int:
    """Milliseconds covered by the union of the ``(start, end)`` spans."""
    total, end = 0, None
    for start, stop in sorted(spans):
        if end is None or start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def breakdown(log: Path) -> tuple[dict[str, Group], int, int]:
    """Groups by label, the application's wall time and the time no job ran (milliseconds)."""
    label_of_job: dict[int, str] = {}
    job_of_stage: dict[int, int] = {}
    started: dict[int, int] = {}
    groups: dict[str, Group] = defaultdict(Group)
    app = [0, 0]
    for line in log.read_text().splitlines():
        event = json.loads(line)
        kind = event["Event"]
        if kind == "SparkListenerApplicationStart":
            app[0] = event["Timestamp"]
        elif kind == "SparkListenerApplicationEnd":
            app[1] = event["Timestamp"]
        elif kind == "SparkListenerJobStart":
            job = event["Job ID"]
            props = event.get("Properties") or {}
            first = min(event["Stage Infos"], key=lambda s: s["Stage ID"], default={"Stage Name": "?"})
            name = props.get("spark.job.description") or first["Stage Name"].split(" at ")[0]
            label_of_job[job] = name
            started[job] = event["Submission Time"]
            for stage in event["Stage IDs"]:
                job_of_stage[stage] = job
            groups[name].jobs += 1
        elif kind == "SparkListenerJobEnd":
            job = event["Job ID"]
            groups[label_of_job[job]].spans.append((started[job], event["Completion Time"]))
            app[1] = max(app[1], event["Completion Time"])
        elif kind == "SparkListenerStageCompleted":
            stage = event["Stage Info"]["Stage ID"]
            groups[label_of_job.get(job_of_stage.get(stage, -1), "?")].stages += 1
        elif kind == "SparkListenerTaskEnd":
            label = label_of_job.get(job_of_stage.get(event["Stage ID"], -1), "?")
            groups[label].tasks += 1
            groups[label].task_ms += (event.get("Task Metrics") or {}).get("Executor Run Time", 0)
    wall = app[1] - app[0]
    busy = covered([s for g in groups.values() for s in g.spans])
    return dict(groups), wall, wall - busy


def report(log: Path) -> str:
    groups, wall, idle = breakdown(log)
    rows = [f"{'step':<44} {'jobs':>5} {'stages':>6} {'tasks':>6} {'wall s':>7} {'task s':>7}"]
    for name, g in sorted(groups.items(), key=lambda kv: -covered(kv[1].spans)):
        rows.append(
            f"{name[:44]:<44} {g.jobs:>5} {g.stages:>6} {g.tasks:>6}"
            f" {covered(g.spans) / 1000:>7.1f} {g.task_ms / 1000:>7.1f}"
        )
    rows.append(f"application {wall / 1000:.1f} s, of which driver only (no job running) {idle / 1000:.1f} s")
    return "\n".join(rows)


def only_log(directory: Path) -> Path:
    """The one event log in ``directory`` (written uncompressed, not rolled: see ``EVENT_LOG``)."""
    (log,) = list(directory.iterdir())
    return log


if __name__ == "__main__":
    print(report(Path(sys.argv[1])))
