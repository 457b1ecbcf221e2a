"""Hooks for the schemathesis CLI run of tests/security/test_openapi_checks.py (``SCHEMATHESIS_HOOKS``).

Generated requests reuse header values across operations and bodies; the API answers a reused
``Idempotency-Key`` with another body 422/42207, which is right but not something a stateless generator
can know. Each valid key therefore gets a unique tail at every call (still at most 256 characters);
over-long keys stay as generated, so the 400 for them is still checked. Idempotent retries are tested in
test_idempotency.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis

MAX_KEY = 256
# the Kinesis wire protocol's body is JSON under AWS's media type
schemathesis.serializer.alias("application/x-amz-json-1.1", "application/json")


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Every call, in every phase (the coverage and stateful phases reuse generated headers across
    bodies and operations), gets a fresh tail on a valid Idempotency-Key."""
    headers = case.headers
    if not headers:
        return
    for name in list(headers):
        value = headers[name]
        if name.lower() == "idempotency-key" and isinstance(value, str) and len(value) <= MAX_KEY:
            tail = uuid.uuid4().hex
            headers[name] = value[: MAX_KEY - len(tail)] + tail
