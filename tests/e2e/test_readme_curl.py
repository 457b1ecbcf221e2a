"""README's curl examples work as shown: each curl block runs against `pinpipe api serve` on a fresh
embedded log and prints exactly the response written under it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.processes import free_port

README = Path(__file__).resolve().parents[2] / "README.md"


def curl_examples() -> list[tuple[str, str]]:
    """(command, expected response) for each ```bash block that starts with curl and ends with '# {...}'."""
    blocks = re.findall(r"```bash\n(curl .*?)```", README.read_text(), flags=re.S)
    examples = []
    for block in blocks:
        command, _, expected = block.rpartition("\n# ")
        examples.append((command.strip(), expected.strip()))
    return examples


@pytest.fixture
def api_port(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pinpipe", "api", "serve", "--workdir", str(tmp_path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
            assert time.monotonic() < deadline, "API did not become ready"
            time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_readme_has_a_curl_example_per_format() -> None:
    commands = [command for command, _ in curl_examples()]
    for shown in (
        "application/vnd.kafka.json.v2+json",
        "application/vnd.kafka.binary.v2+json",
        "/partitions/2",
        '/records"',
        "/records:batch",
        "/streams/",
        "X-Amz-Target: Kinesis_20131202.PutRecord",
    ):
        assert any(shown in command for command in commands), shown


def same_log(doc: object) -> object:
    """``doc`` with every ``cluster_id`` blanked: the id is derived from the log's URL, which differs."""
    if isinstance(doc, dict):
        return {k: "CLUSTER" if k == "cluster_id" else same_log(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [same_log(v) for v in doc]
    return doc


def test_readme_curl_examples_answer_as_shown(api_port: int) -> None:
    assert shutil.which("curl"), "curl is needed to run README's examples"
    for command, expected in curl_examples():
        command = command.replace("127.0.0.1:8000", f"127.0.0.1:{api_port}")
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert same_log(json.loads(done.stdout)) == same_log(json.loads(expected)), command
