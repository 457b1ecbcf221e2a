"""The named error codes, the table that documents them and the Kinesis types they map to agree: a code
added in one place and forgotten in another fails here."""

from __future__ import annotations

import re

from pinpipe.errors import ErrorCode
from pinpipe.ingest import errors


def test_every_documented_code_is_named_and_every_named_code_documented():
    documented = {int(code) for code in re.findall(r"^(\d{5}) ", errors.__doc__ or "", re.MULTILINE)}
    assert documented == {int(code) for code in ErrorCode}


def test_every_code_has_its_kinesis_type_and_its_status():
    assert set(errors.KINESIS_TYPES) == set(ErrorCode)
    for code in ErrorCode:
        status = errors.ApiError(code, "").status
        assert status == (503 if code in errors.SERVICE_UNAVAILABLE else code // 100)


def test_codes_answer_as_plain_numbers():
    response = errors.error_response("/topics/t", errors.ApiError(ErrorCode.IDEMPOTENCY_KEY_REUSED, "m"))
    assert response.body == b'{"error_code":42207,"message":"m"}'
    assert str(ErrorCode.IDEMPOTENCY_KEY_REUSED) == "42207"  # the label /metrics counts it under
