"""Inside ``exact_json.fast_only()`` a body only Python's parser reads exactly is not parsed (the API then
parses it off its event loop); a body orjson reads back byte for byte still is."""

from __future__ import annotations

import pytest

from pinpipe import exact_json


def test_fast_only_parses_what_orjson_gives_back_and_refuses_the_rest() -> None:
    with exact_json.fast_only():
        assert exact_json.loads(b'{"ind":1,"latitude":1.5}') == {"ind": 1, "latitude": 1.5}
        with pytest.raises(exact_json.NeedsPythonParse):
            exact_json.loads(b'{"latitude":1.10}')
        with pytest.raises(exact_json.NeedsPythonParse):  # Python's parser says why it is not JSON
            exact_json.loads(b'{"latitude":}')
    with pytest.raises(ValueError):
        exact_json.loads(b'{"latitude":}')
    value = exact_json.loads(b'{"latitude":1.10}')["latitude"]
    assert isinstance(value, exact_json.ExactFloat) and exact_json.dumps(value) == b"1.10"
