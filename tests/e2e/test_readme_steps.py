"""README's step-by-step block works as written, right after the demo, as a user runs it: in one bash
session from a copy of the repository root whose ``.venv`` holds this pinpipe, each command exits 0 and
does what its comment says. Only the API's port is substituted (8000 -> a free port)."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import clean_env, free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
TOPICS = ("0a1b2c3d4e5f.pin", "0a1b2c3d4e5f.geo", "0a1b2c3d4e5f.user")
STREAMS = tuple(f"streaming-0a1b2c3d4e5f-{kind}" for kind in ("pin", "geo", "user"))


def step_by_step_block() -> str:
    """The first bash block under README's "The pipeline step by step" heading."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### The pipeline step by step") :]
    found = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert found, "README has no bash block in its step-by-step section"
    return found.group(1)


def commands(block: str) -> list[str]:
    """The block's commands, backslash continuations joined, in order."""
    joined = re.sub(r"\\\n\s*", "", block)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def split_comment(command: str) -> tuple[str, str]:
    """``(code, comment)``: README comments start with `` #`` after the code."""
    code, _, comment = command.partition(" #")
    return code.strip(), comment.strip()


def wrapped(steps: list[str], logs: Path) -> str:
    """A bash script running ``steps`` in one shell, each one's stdout/stderr/status into ``logs``.

    Braces (not a subshell) keep ``source`` and ``export`` in effect for later steps; a background step
    keeps its ``&``, so ``kill %1`` means what it means in the README. A failed step ends the script."""
    lines = ["trap 'kill $(jobs -p) 2>/dev/null' EXIT"]
    for i, step in enumerate(steps):
        code, _ = split_comment(step)
        out, err, rc = (logs / f"{i}.{suffix}" for suffix in ("out", "err", "rc"))
        if code.endswith("&"):
            lines.append(f"{code[:-1].strip()} > {out} 2> {err} &")
            lines.append(f"echo 0 > {rc}")
            continue
        lines.append(f"{{\n{code}\n}} > {out} 2> {err}")
        lines.append(f"rc=$?; echo $rc > {rc}; [ $rc = 0 ] || exit $rc")
    return "\n".join(lines) + "\n"


def status(root: Path, env: dict[str, str]) -> dict[str, int]:
    done = subprocess.run(
        [str(root / ".venv/bin/pinpipe"), "status", "--json"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    listed = json.loads(done.stdout)["topics"]
    return {name: int(listed[name]["records"]) for name in TOPICS + STREAMS}


def lake_records(root: Path, topic: str) -> int:
    objects = (root / ".pinpipe/lake/topics" / topic).rglob("*.json")
    return sum(len(path.read_bytes().splitlines()) for path in objects)


def fake_checkout(root: Path) -> None:
    """What a user's repository root holds after ``make demo``, for these commands: the real data and a
    ``.venv`` whose ``pinpipe`` and ``activate`` are this interpreter's pinpipe."""
    shutil.copytree(ROOT / "data", root / "data")
    bin_dir = root / ".venv/bin"
    bin_dir.mkdir(parents=True)
    pinpipe = bin_dir / "pinpipe"
    pinpipe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pinpipe "$@"\n')
    pinpipe.chmod(pinpipe.stat().st_mode | stat.S_IEXEC)
    (bin_dir / "activate").write_text(f'export PATH="{bin_dir}:$PATH"\n')


def test_readme_step_by_step_block_parses() -> None:
    steps = commands(step_by_step_block())
    assert steps[0] == "source .venv/bin/activate"
    assert any(split_comment(s)[0].endswith("&") for s in steps), "the API runs in the background"
    assert split_comment(steps[-1])[0] == "kill %1"


@pytest.mark.timeout(900)
def test_readme_step_by_step_runs_after_the_demo(tmp_path: Path) -> None:
    assert shutil.which("curl"), "curl is needed to run README's step-by-step block"
    root, logs = tmp_path / "pinpipe", tmp_path / "logs"
    logs.mkdir()
    fake_checkout(root)
    env = clean_env(tmp_path)
    env["PYTHONPATH"] = str(ROOT)
    demo = subprocess.run(
        [str(root / ".venv/bin/pinpipe"), "demo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    before = status(root, env)
    lake_before = {topic: lake_records(root, topic) for topic in TOPICS}

    port = free_port()
    steps = [s.replace("8000", str(port)) for s in commands(step_by_step_block())]
    script = tmp_path / "steps.sh"
    script.write_text(wrapped(steps, logs))
    run = subprocess.run(
        ["bash", str(script)], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )

    def out(i: int) -> str:
        return (logs / f"{i}.out").read_text()

    failed = [
        i
        for i in range(len(steps))
        if (logs / f"{i}.rc").exists() and (logs / f"{i}.rc").read_text() != "0\n"
    ]
    detail = [f"{steps[i]}\n{(logs / f'{i}.err').read_text()[-2000:]}" for i in failed]
    assert run.returncode == 0 and not failed, "\n".join(detail) or run.stderr[-2000:]
    assert all((logs / f"{i}.rc").exists() for i in range(len(steps))), "not every step ran"

    def step(prefix: str) -> int:
        return next(i for i, s in enumerate(steps) if s.startswith(prefix))

    loaded = out(step("pinpipe source load"))
    for line in ("pinterest_data: 3607 rows", "geolocation_data: 11154 rows", "user_data: 11154 rows"):
        assert line in loaded
    # "every topic and stream holds 500 records more than before"
    after = json.loads(out(step("pinpipe status --json")))["topics"]
    assert {name: after[name]["records"] - before[name] for name in before} == dict.fromkeys(before, 500)
    # "the 500 new records of each topic to the lake"
    assert {t: lake_records(root, t) - lake_before[t] for t in TOPICS} == dict.fromkeys(TOPICS, 500)
    # "the 500 new records of each topic; outputs over the whole lake: out/, ten CSVs"
    batch = out(step("pinpipe batch run"))
    for kind in ("pin", "geo", "user"):
        assert f"{kind}: 500 records read from " in batch, batch
    assert len(list((root / "out").glob("*.csv"))) == 10
    # "500 new rows in each stream table"
    assert "rows appended: pin 500, geo 500, user 500" in out(step("pinpipe stream run"))
    assert "profile_popularity" in out(step("pinpipe metrics"))
