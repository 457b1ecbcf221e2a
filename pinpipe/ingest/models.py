"""Request and response shapes, for the OpenAPI document only.

The hot path never builds these models: bodies are parsed with orjson and checked by hand (one pydantic
model per record would cost more than the log append). The checks in rest_proxy.py and kinesis.py enforce
exactly what these schemas say, which the schemathesis test of the whole API verifies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its ``$defs`` references replaced by the definitions (for ``openapi_extra``)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    inlined: dict[str, Any] = walk(schema)
    return inlined


MAX_PARTITION = 2**31 - 1
"""The largest partition number Kafka has (a 32-bit signed integer)."""


class ErrorBody(BaseModel):
    """REST-proxy-style error: ``error_code`` is the HTTP status × 100 plus a subcode."""

    error_code: int
    message: str


class KinesisErrorBody(BaseModel):
    """Kinesis-style error (the REST proxy's ``error_code`` added)."""

    model_config = ConfigDict(populate_by_name=True)

    type_: str = Field(alias="__type")
    message: str
    error_code: int


BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
"""Standard base64 with padding: what a string ``Data`` must be (the pattern constrains strings only)."""


class RecordHeader(BaseModel):
    name: str = Field(min_length=1, description="Names starting pinpipe- are the log's own: refused")
    value: str | None = Field(None, pattern=BASE64, description="base64 of the header's bytes")


class ProduceRecord(BaseModel):
    key: Any = Field(None, description="Key: a string is stored as UTF-8, anything else as compact JSON.")
    value: Any = Field(description="The record: for the pin/geo/user topics, an object of that schema.")
    partition: int | None = Field(
        None, ge=0, le=MAX_PARTITION, description="Explicit partition (default: by key hash)."
    )
    headers: list[RecordHeader] | None = None


class BinaryProduceRecord(BaseModel):
    key: str | None = Field(None, pattern=BASE64, description="base64 of the key's bytes")
    value: str | None = Field(
        pattern=BASE64, description="base64 of the record (UTF-8 JSON of the schema on pin/geo/user topics)"
    )
    partition: int | None = Field(None, ge=0, le=MAX_PARTITION)
    headers: list[RecordHeader] | None = None


def produce_content(max_records: int, allow_partition: bool) -> dict[str, Any]:
    """The ``requestBody.content`` of a v2 produce: the json and binary embedded formats."""

    def schema(record: type[BaseModel]) -> dict[str, Any]:
        class ProduceRequest(BaseModel):
            records: list[record] = Field(min_length=1, max_length=max_records)  # type: ignore[valid-type]

        inlined = _inline(ProduceRequest.model_json_schema())
        if not allow_partition:
            inlined["properties"]["records"]["items"]["properties"].pop("partition")
        return inlined

    json_schema, binary_schema = schema(ProduceRecord), schema(BinaryProduceRecord)
    return {
        "application/vnd.kafka.json.v2+json": {"schema": json_schema},
        "application/vnd.kafka.binary.v2+json": {"schema": binary_schema},
        "application/json": {"schema": binary_schema},
    }


class BrokerList(BaseModel):
    brokers: list[int]


class ProduceOffset(BaseModel):
    partition: int | None
    offset: int | None
    error_code: int | None
    error: str | None


class ProduceResponse(BaseModel):
    offsets: list[ProduceOffset]
    key_schema_id: int | None = None
    value_schema_id: int | None = None


class PartitionReplica(BaseModel):
    broker: int
    leader: bool
    in_sync: bool


class PartitionMetadata(BaseModel):
    partition: int
    leader: int
    replicas: list[PartitionReplica]


class TopicMetadata(BaseModel):
    name: str
    configs: dict[str, str]
    partitions: list[PartitionMetadata]


class PutRecordRequest(BaseModel):
    StreamName: str | None = Field(None, description="Ignored: the stream is the one in the path.")
    Data: Any = Field(
        description="The record: a JSON object, or base64 of its bytes.",
        json_schema_extra={"pattern": BASE64},
    )
    PartitionKey: str = Field(min_length=1, max_length=256)


class PutRecordResponse(BaseModel):
    ShardId: str
    SequenceNumber: str


class PutRecordsEntry(BaseModel):
    Data: Any = Field(json_schema_extra={"pattern": BASE64})
    PartitionKey: str = Field(min_length=1, max_length=256)


def put_records_request_schema(max_records: int) -> dict[str, Any]:
    class PutRecordsRequest(BaseModel):
        StreamName: str | None = None
        Records: list[PutRecordsEntry] = Field(min_length=1, max_length=max_records)

    return _inline(PutRecordsRequest.model_json_schema())


class PutRecordsResultEntry(BaseModel):
    SequenceNumber: str | None = None
    ShardId: str | None = None
    ErrorCode: str | None = None
    ErrorMessage: str | None = None


class PutRecordsResponse(BaseModel):
    FailedRecordCount: int
    Records: list[PutRecordsResultEntry]


class ListStreamsResponse(BaseModel):
    StreamNames: list[str]
    HasMoreStreams: bool


class SequenceNumberRange(BaseModel):
    StartingSequenceNumber: str


class Shard(BaseModel):
    ShardId: str
    SequenceNumberRange: SequenceNumberRange


class StreamDescription(BaseModel):
    StreamName: str
    StreamARN: str
    StreamStatus: str
    Shards: list[Shard]
    HasMoreShards: bool
    RetentionPeriodHours: int


class DescribeStreamResponse(BaseModel):
    StreamDescription: StreamDescription


def create_stream_request_schema(max_shard_count: int) -> dict[str, Any]:
    class CreateStreamRequest(BaseModel):
        StreamName: str | None = None
        ShardCount: int | None = Field(None, ge=1, le=max_shard_count)

    return _inline(CreateStreamRequest.model_json_schema())


class Status(BaseModel):
    status: str


class V3Json(BaseModel):
    type: Literal["JSON"] = Field("JSON", description="the default: data is any JSON value")
    data: Any = None


class V3Binary(BaseModel):
    type: Literal["BINARY"]
    data: str = Field(pattern=BASE64, description="base64 of the bytes")


class V3String(BaseModel):
    type: Literal["STRING"]
    data: str = Field(description="text, stored as UTF-8")


V3Data = V3Json | V3Binary | V3String


class V3Record(BaseModel):
    partition_id: int | None = Field(None, ge=0, le=MAX_PARTITION)
    headers: list[RecordHeader] | None = None
    key: V3Data | None = None
    value: V3Data
    timestamp: datetime | None = Field(
        None,
        description="RFC 3339 (UTC when it names no offset), from 1970 to 9999",
        json_schema_extra={"pattern": r"^(19[7-9][0-9]|[2-9][0-9]{3})-"},
    )


def v3_record_schema() -> dict[str, Any]:
    return _inline(V3Record.model_json_schema())


def v3_batch_schema(max_records: int) -> dict[str, Any]:
    class V3Entry(V3Record):
        id: str = Field(min_length=1, description="Unique in the request: names the entry's result")

    class V3Batch(BaseModel):
        entries: list[V3Entry] = Field(min_length=1, max_length=max_records)

    return _inline(V3Batch.model_json_schema())
