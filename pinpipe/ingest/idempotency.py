"""Idempotency keys as the API stores them: scoped to the caller and bound to the request.

A client's ``Idempotency-Key: K`` from the principal ``P`` (the API key's name) becomes, for a request of
``n`` records, event ids in the log that no other principal and no other client key can produce:

- the request's first stored record: ``["P","K"]`` (compact JSON, so no choice of ``P`` or ``K`` can
  make two different pairs encode alike);
- every other stored record ``i``: ``["P","K",i]``.

Every stored record also carries the request's fingerprint: a hash of the record count, the body bytes
and what else decides the records the body stands for (its ``meaning``: the v2 format and path partition,
v3 and its batch form, PutRecords rather than PutRecord), so the same bytes sent as another request are
another request. The log compares fingerprints when an event id repeats (see ``OutgoingRecord``), so:

- a retry of the same request (same bytes) finds its ids and fingerprint: the original partitions and
  offsets, nothing stored again;
- another request under the same key (other body, other record count, or the same body to another
  partition, in another format or dialect) meets ``["P","K"]`` with another fingerprint: the log refuses
  the whole append (API error 42207) and stores nothing.

Validation is deterministic, so a retry's first valid record is the original's. A key is claimed by the
first request that stores a record; a request whose every record was refused claims nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson


@dataclass(frozen=True, slots=True)
class RequestKey:
    """One request's ``Idempotency-Key`` with who sent it and the bytes it was sent with."""

    principal: str
    key: str
    body: bytes
    meaning: str = ""
    """What besides the body decides its records (``request_meaning``); empty for v2 JSON to a whole topic
    and PutRecord, whose fingerprints are those of logs written before it was added."""

    def event_id(self, index: int, first: bool) -> str:
        """The log's idempotency key of record ``index``: ``first`` for the request's first stored one."""
        parts: list[str | int] = [self.principal, self.key] if first else [self.principal, self.key, index]
        return orjson.dumps(parts).decode()

    def fingerprint(self, count: int) -> str:
        """What a retry must repeat: the record count, the exact body and its meaning (a JSON body never
        starts with ``@``, so no body spells a meaning)."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(b"%d\n" % count)
        if self.meaning:
            digest.update(b"@%s\n" % self.meaning.encode())
        digest.update(self.body)
        return digest.hexdigest()


def request_meaning(dialect: str, partition: int | None = None) -> str:
    """A request's ``meaning``: ``dialect`` names the route and format (``""`` for v2 JSON and PutRecord,
    ``"binary"``, ``"v3"``, ``"v3 batch"``, ``"PutRecords"``), then the path's partition if any."""
    return dialect if partition is None else f"{dialect} partition {partition}".lstrip()
