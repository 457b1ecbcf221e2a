"""``pinpipe config show``: every effective setting with the layer it came from, secrets masked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.processes import clean_env


def test_config_show_names_each_settings_layer_and_masks_secrets(tmp_path: Path) -> None:
    (tmp_path / "pinpipe.toml").write_text("[lake]\nflush_size = 42\n[api]\nport = 8100\n")
    (tmp_path / ".env").write_text("PINPIPE_PREFIX=abcdefabcdef\nPINPIPE_API__PORT=9000\n")
    env = {
        **clean_env(tmp_path),
        "PINPIPE_CONFIG": str(tmp_path / "pinpipe.toml"),
        "PINPIPE_STREAM__WATERMARK_S": "5",
        "PINPIPE_API__API_KEYS": '["key-one-secret-0123"]',
        "PINPIPE_LOG__KAFKA": '{"sasl.username": "me", "sasl.password": "pw-secret"}',
    }
    done = subprocess.run(
        [
            sys.executable, "-m", "pinpipe", "config", "show", "--json",
            "--db", "postgresql+psycopg://me:db-secret@db.example/pins",
            "--log", "kafka://broker:9092?sasl.password=url-secret",
        ],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "secret" not in done.stdout
    rows = {row["setting"]: (row["value"], row["source"]) for row in json.loads(done.stdout)}
    toml = str(tmp_path / "pinpipe.toml")
    assert rows["lake.flush_size"] == ("42", toml)
    assert rows["api.port"] == ("9000", ".env (PINPIPE_API__PORT)")  # .env over pinpipe.toml
    assert rows["prefix"] == ("abcdefabcdef", ".env (PINPIPE_PREFIX)")
    assert rows["stream.watermark_s"] == ("5.0", "environment (PINPIPE_STREAM__WATERMARK_S)")
    assert rows["api.api_keys"] == ("[********]", "environment (PINPIPE_API__API_KEYS)")
    assert rows["log.kafka"] == (
        "{sasl.username = me, sasl.password = ********}",
        "environment (PINPIPE_LOG__KAFKA)",
    )
    assert rows["source.url"] == ("postgresql+psycopg://me:********@db.example/pins", "flag")
    assert rows["log.url"] == ("kafka://broker:9092?sasl.password=********", "flag")
    assert rows["stream.max_records"] == ("20000", "default")
    assert rows["lake_url"] == ((tmp_path / ".pinpipe" / "lake").as_uri(), "derived from workdir")
    assert rows["stream_log_url"][1] == "same as log_url"
    assert not (tmp_path / ".pinpipe").exists()


def test_config_show_prints_a_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pinpipe", "config", "show"],
        cwd=tmp_path, env=clean_env(tmp_path), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "engine.retain_hours" in done.stdout and "default" in done.stdout
