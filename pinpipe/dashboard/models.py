"""Response models of the dashboard's JSON API (published in ``/openapi.json``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field


class BatchOutputSummary(BaseModel):
    name: str = Field(description="Output name (docs/data-rules.md), also its table under tables/batch/.")
    title: str = Field(description="The question the output answers.")
    available: bool = Field(description="False until the batch job has committed this output.")
    row_count: int = 0
    version: int | None = Field(default=None, description="Delta table version last read.")
    committed_at: dt.datetime | None = Field(
        default=None, description="When that version was committed (UTC)."
    )
    groups: list[str] = Field(description="Group columns: the label of a row in charts.")
    value: str = Field(description="The numeric column charted.")
    chart: str = Field(description="How the page draws it: bar (ranked), column (ordered), table.")


class BatchList(BaseModel):
    outputs: list[BatchOutputSummary]
    hint: str | None = Field(default=None, description="What to run when no output exists yet.")


class BatchOutput(BatchOutputSummary):
    columns: list[str] = Field(default_factory=list)
    rows: list[dict[str, Any]] = Field(
        default_factory=list, description="Rows sorted by the group columns, as the CSV export."
    )
    hint: str | None = None


class StreamRate(BaseModel):
    stream: str
    events_per_second: float
    events: int = Field(description="Events appended during the span the rate is measured over.")


class StreamEvents(BaseModel):
    stream: str
    events_per_second: float = Field(
        description="Mean arrivals per second over the last 10 s ending at as_of (stream processor)."
    )
    as_of: dt.datetime = Field(description="Latest arrival second the processor recorded (naive).")
    series: list[int] = Field(description="Arrivals in each of the 60 seconds ending at as_of, oldest first.")


class ProfileRank(BaseModel):
    window: str = Field(description="Sliding event-time window: 1h or 24h.")
    rank: int
    poster_name: str | None
    posts: int
    follower_count: int | None
    window_start: dt.datetime | None = None
    window_end: dt.datetime | None = None


class CategoryTrend(BaseModel):
    rank: int
    category: str
    score: float = Field(description="Exponentially decayed post count (event time).")
    posts: int = Field(description="Posts in the latest 1-minute tumbling window.")


class CountryActivity(BaseModel):
    country: str | None
    events_1h: int
    events_24h: int
    events_total: int


class LateEvents(BaseModel):
    input: str
    events: int
    late_events: int
    unpaired_events: int
    stream_time: dt.datetime | None = None
    watermark_s: float


class Metrics(BaseModel):
    available: bool = Field(description="False until the stream processor has written metrics.")
    hint: str | None = None
    events_per_second: list[StreamEvents] = Field(default_factory=list)
    top_profiles: list[ProfileRank] = Field(default_factory=list)
    trending_categories: list[CategoryTrend] = Field(default_factory=list)
    country_activity: list[CountryActivity] = Field(default_factory=list)
    late_events: list[LateEvents] = Field(default_factory=list)


class PartitionLag(BaseModel):
    topic: str
    partition: int
    end_offset: int
    group: str | None = None
    committed: int | None = None
    lag: int | None = Field(default=None, description="end_offset - committed for that group.")


class Status(BaseModel):
    available: bool
    hint: str | None = None
    log_url: str
    partitions: list[PartitionLag] = Field(default_factory=list)
    rates: list[StreamRate] = Field(
        default_factory=list,
        description="Events per second arriving in each topic/stream, from end offsets sampled by the "
        "dashboard over its last seconds (0 until two samples exist).",
    )
