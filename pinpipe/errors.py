"""The pinpipe error tree.

Every error a user can cause or meet is a :class:`PinpipeError`; the CLI prints its message as one line
and exits non-zero, so only genuine bugs ever show a traceback::

    PinpipeError
    ├── ConfigError               bad settings, flags, URLs or files
    ├── AuthenticationError       a request carried no API key, or an unknown one
    ├── MissingDependencyError    an optional extra is not installed (names the install command)
    ├── SourceError               the source database or input files
    ├── ValidationError           a record does not match its topic's schema
    ├── LogError                  the log (embedded, Kafka, Kinesis)
    │   ├── TopicNotFoundError
    │   ├── IdempotencyConflictError  an idempotency key stored with another fingerprint
    │   └── LogUnavailableError   retriable: the broker or the file is not reachable now
    ├── LakeError                 the object store
    │   └── ObjectNotFoundError
    ├── EngineError               the batch engines (DuckDB, Spark)
    ├── StreamError               the stream processor
    └── ServiceError              an infra service that could not start or answer
"""

from __future__ import annotations

from enum import IntEnum


class PinpipeError(Exception):
    """Base of every error pinpipe raises on purpose."""


class ConfigError(PinpipeError):
    """Settings, flags, URLs or input files are wrong."""


class AuthenticationError(PinpipeError):
    """A request to a server with keys configured carried no key (``missing``) or an unknown one; each
    server answers it in its own dialect (the API's error body, the dashboard's login prompt)."""

    def __init__(self, message: str, missing: bool) -> None:
        super().__init__(message)
        self.missing = missing


class MissingDependencyError(PinpipeError):
    """An optional extra is needed; the message says which one to install."""

    def __init__(self, extra: str, module: str, install: str) -> None:
        super().__init__(f"{module} is not installed (the {extra} extra): install it with {install}")
        self.extra = extra
        self.module = module


class SourceError(PinpipeError):
    """The source database or the files loaded into it."""


class ValidationError(PinpipeError):
    """A record does not match the schema of its topic."""


class LogError(PinpipeError):
    """The log refused or failed an operation."""


class TopicNotFoundError(LogError):
    """The topic or stream does not exist."""


class TopicCollisionError(LogError):
    """The log takes a new topic's name for one it holds already (Kafka: ``.`` and ``_`` are one
    character in topic names)."""


class IdempotencyConflictError(LogError):
    """A record's idempotency key is stored already with another fingerprint (a different request
    reused the key); nothing of the append was stored."""


class GroupMovedOnError(LogError):
    """A consumer group rebalanced before a commit went through: the partitions' new owners resume from
    the last commit that did."""


class LogUnavailableError(LogError):
    """The log cannot be reached right now; the caller may retry."""


class LakeError(PinpipeError):
    """The object store (the lake) failed."""


class ObjectNotFoundError(LakeError):
    """No object at that key."""


class EngineError(PinpipeError):
    """A batch engine failed."""


class StreamError(PinpipeError):
    """The stream processor failed."""


class TableError(PinpipeError):
    """A commit to a Delta table failed; the table is as it was before it."""


class ServiceError(PinpipeError):
    """A local service (Kafka, S3, MariaDB, ...) could not be started or reached."""


class ErrorCode(IntEnum):
    """Every error code the ingestion API answers, by name: the HTTP status × 100 plus a subcode (the
    Confluent REST Proxy scheme). Here, below the API and its clients, so both name the same codes;
    :mod:`pinpipe.ingest.errors` tells when each is answered."""

    MALFORMED_BODY = 40001
    INVALID_PARAMETER = 40002
    UNKNOWN_OPERATION = 40003
    UNAUTHENTICATED = 40101
    NAME_NOT_OWNED = 40301
    ADMIN_REQUIRED = 40302
    NOT_FOUND = 40401
    PARTITION_NOT_FOUND = 40402
    METHOD_NOT_ALLOWED = 40501
    BODY_TIMEOUT = 40801
    HEAD_TIMEOUT = 40802
    STREAM_EXISTS = 40901
    TOO_MANY_STREAMS = 40902
    BODY_TOO_LARGE = 41301
    UNSUPPORTED_MEDIA_TYPE = 41501
    TOO_MANY_RECORDS = 42201
    RECORD_PARTITION_NOT_FOUND = 42202
    INVALID = 42206
    IDEMPOTENCY_KEY_REUSED = 42207
    RATE_LIMITED = 42901
    HEAD_TOO_LARGE = 43101
    INTERNAL = 50001
    LOG_FAILED = 50002
    LOG_UNAVAILABLE = 50003
    BODIES_PENDING = 50004
