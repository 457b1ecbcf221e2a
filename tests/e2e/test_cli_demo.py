"""``pinpipe demo`` as a user runs it: its live metrics show many categories and posters (the replayed posts
count as recent), and its closing hints repeat the location flags it was given."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.pipeline_cli import clean_env, pinpipe

ITERATIONS = 300
PREFIX = "c1c2c3c4c5c6"


def test_the_demo_metrics_are_full_and_its_hints_carry_its_flags(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    workdir = tmp_path / "my work"
    flags = ["--workdir", str(workdir), "--prefix", PREFIX]
    out = pinpipe("demo", *flags, "--iterations", str(ITERATIONS), "-q", env=env, timeout=600).stdout
    metrics = json.loads(pinpipe("metrics", *flags, "--json", env=env).stdout)

    late = {row["input"]: row for row in metrics["late_events"]}
    assert late["post"]["events"] > 250 and late["post"]["late_events"] == 0, late
    assert late["geo"]["late_events"] == 0, late
    categories = {row["category"] for row in metrics["trending_categories"]}
    assert len(categories) >= 10, categories
    posters_1h = [row for row in metrics["profile_popularity"] if row["window"] == "1h"]
    assert len(posters_1h) == 10, posters_1h
    assert len(metrics["category_scores"]) >= 10
    assert all(row["score"] > 1e-12 for row in metrics["category_scores"])

    hinted = f"dashboard --workdir '{workdir}' --prefix {PREFIX}"
    assert hinted in out, out[-2000:]
    assert f"metrics --workdir '{workdir}' --prefix {PREFIX}" in out
