"""Configured API keys: long enough, plain printable ASCII, out of `ps`, compared exactly in constant time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pinpipe import keys
from pinpipe.config import Settings, load_settings
from pinpipe.errors import ConfigError
from pinpipe.ingest.auth import KeyRing
from pinpipe.ingest.errors import ApiError
from pinpipe.log.memory import MemoryLog
from tests.unit.api_support import client_for, with_api

GOOD = "good-key-0123456789"
BAD_KEYS = {
    "short": "short-key-12345",  # 15 characters
    "leading space": " padded-key-0123456789",
    "trailing space": "padded-key-0123456789 ",
    "non-ASCII": "clé-secrète-0123456789",
    "inner space": "inner space-0123456789",
    "control": "tab\tkey-0123456789",
}


def keys_file(tmp_path: Path, *entries: tuple[str, str]) -> Path:
    path = tmp_path / "keys.toml"
    text = "".join(
        f'[keys.{name}]\nkey = {json.dumps(key)}\nprefixes = ["0a1b2c3d4e5f"]\n' for name, key in entries
    )
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("problem", BAD_KEYS)
def test_a_bad_key_is_refused_at_load(settings: Settings, tmp_path: Path, problem: str) -> None:
    """Wherever a key is configured (flag, environment, keys file), a bad one is a ConfigError that names
    the rule and never repeats the key."""
    key = BAD_KEYS[problem]
    errors = []
    for field in ("api.api_keys", "api.admin_keys"):
        with pytest.raises(ConfigError) as caught:
            load_settings(workdir=tmp_path, **{field: [key]})
        errors.append(str(caught.value))
    with pytest.raises(ConfigError) as caught:
        KeyRing(with_api(settings, keys_file=keys_file(tmp_path, ("t", key))).api)
    errors.append(str(caught.value))
    for message in errors:
        assert "API key must" in message and key not in message and key.strip() not in message


def test_keys_come_from_the_environment(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINPIPE_API__API_KEYS", f'["{GOOD}"]')
    monkeypatch.setenv("PINPIPE_API__ADMIN_KEYS", '["admin-key-0123456789"]')
    loaded = load_settings(workdir=settings.workdir)
    ring = KeyRing(loaded.api)
    assert not ring.authenticate(GOOD, None).admin
    assert ring.authenticate(None, "Bearer admin-key-0123456789").admin


def test_one_secret_for_two_keys_is_refused(settings: Settings, tmp_path: Path) -> None:
    """Which principal a shared secret stands for would depend on the order of the keys."""
    path = keys_file(tmp_path, ("a", GOOD), ("b", GOOD))
    with pytest.raises(ConfigError, match="configured twice"):
        KeyRing(with_api(settings, keys_file=path).api)


@pytest.mark.parametrize(
    ("name", "configured"),
    [
        ("cli", {"api_keys": (GOOD,)}),
        ("admin1", {"admin_keys": ("admin-key-0123456789", "admin-key-abcdefghij")}),
    ],
)
def test_a_keys_file_name_taken_by_a_configured_key_is_refused(
    settings: Settings, tmp_path: Path, name: str, configured: dict[str, tuple[str, ...]]
) -> None:
    """A key's name scopes its idempotency keys and its rate limit: a tenant's key named like a configured
    key (``cli``, ``admin1``, ...) was refused the other key's Idempotency-Key values (42207), answered its
    offsets for the same body, and shared its token bucket."""
    path = keys_file(tmp_path, (name, "tenant-key-0123456789"))
    with pytest.raises(ConfigError, match=f"two API keys are named '{name}'"):
        KeyRing(with_api(settings, keys_file=path, **configured).api)


def test_keys_are_compared_exactly_in_constant_time(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every comparison is between two SHA-256 digests, so its time depends neither on the key's length nor
    on how much of it a guess got right; only the exact bytes match."""
    ring = KeyRing(with_api(settings, api_keys=(GOOD, "other-key-0123456789abcdef")).api)
    compared: list[tuple[int, int]] = []
    real = keys.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", spy)
    for guess in ("g", GOOD[:-1], GOOD + "x", GOOD.upper(), GOOD + "é"):
        with pytest.raises(ApiError):
            ring.authenticate(guess, None)
    assert ring.authenticate(GOOD, None).name == "cli"
    assert compared and set(compared) == {(32, 32)}


def test_a_key_on_the_command_line_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from pinpipe.cli import main

    monkeypatch.setattr(uvicorn.Server, "run", lambda *args, **kwargs: None)  # start nothing
    main(["api", "serve", "--workdir", str(tmp_path), "--log", "memory://", "--port", "0", "--api-key", GOOD])
    err = capsys.readouterr().err
    assert "--api-key is visible" in err and "PINPIPE_API__API_KEYS" in err and GOOD not in err


def test_an_exact_key_over_http(settings: Settings) -> None:
    """Through the HTTP stack: the configured bytes match, anything else does not."""
    log = MemoryLog(auto_create=False)
    with client_for(with_api(settings, api_keys=(GOOD,)), log) as client:
        assert client.get("/topics", headers={"X-API-Key": GOOD}).status_code == 200
        for other in (GOOD.upper(), GOOD[:-1], GOOD + "x"):
            assert client.get("/topics", headers={"X-API-Key": other}).status_code == 401
        assert client.get("/topics", headers={"X-API-Key": GOOD.encode() + b"\xe9"}).status_code == 401
