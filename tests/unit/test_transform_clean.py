"""Cleaning rules per column (docs/data-rules.md), through the public clean_table used by batch and stream."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pytest

from pinpipe.errors import ValidationError
from pinpipe.transform.clean import CLEAN_COLUMNS, clean_table, cleaned_sql
from tests.unit.samples import PIN_RECORD

PIN = {**PIN_RECORD, "unique_id": "fbe53c66"}


def _pin(**changes: object) -> dict[str, object]:
    return {**PIN, **changes}


def test_pin_placeholders_become_null_and_columns_are_in_spec_order() -> None:
    out = clean_table("pin", pa.Table.from_pylist([PIN]))
    assert out.column_names == list(CLEAN_COLUMNS["pin"])
    assert out.to_pylist() == [
        {
            "ind": 7528,
            "unique_id": "fbe53c66",
            "title": None,
            "description": None,
            "follower_count": None,
            "poster_name": None,
            "tag_list": None,
            "is_image_or_video": "multi-video(story page format)",
            "image_src": None,
            "save_location": "/data/mens-fashion",
            "category": "mens-fashion",
        }
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0", 0),
        ("997", 997),
        ("124k", 124_000),
        ("1M", 1_000_000),
        ("15M", 15_000_000),
        ("1.5k", 1_500),
        (" 12k ", 12_000),
        ("User Info Error", None),
        ("", None),
        (None, None),
        ("12K", None),
        ("abc", None),
    ],
)
def test_follower_count_becomes_an_integer(raw: str | None, expected: int | None) -> None:
    out = clean_table("pin", pa.Table.from_pylist([_pin(follower_count=raw)]))
    assert out.column("follower_count").to_pylist() == [expected]
    assert out.schema.field("follower_count").type == pa.int64()


def test_pin_text_kept_as_is_except_rules() -> None:
    row = _pin(
        title="Trailing space ",
        description="Creative and…\u00a0",
        poster_name="Of Life & Lisa ",
        tag_list="",
        image_src="https://x/y.jpg",
        category="",
        unique_id="",
        save_location="Local save in /data/diy-and-crafts",
    )
    out = clean_table("pin", pa.Table.from_pylist([row])).to_pylist()[0]
    assert out["title"] == "Trailing space "
    assert out["description"] == "Creative and…\u00a0"
    assert out["poster_name"] == "Of Life & Lisa "
    assert out["tag_list"] is None
    assert out["category"] is None
    assert out["unique_id"] is None
    assert out["image_src"] == "https://x/y.jpg"
    assert out["save_location"] == "/data/diy-and-crafts"


def test_description_prefix_rule_only_at_start() -> None:
    rows = [
        _pin(description="No description available"),
        _pin(description="Something. No description available"),
    ]
    out = clean_table("pin", pa.Table.from_pylist(rows))
    assert out.column("description").to_pylist() == [None, "Something. No description available"]


def test_geo_coordinates_timestamp_and_order() -> None:
    raw = [
        {"ind": 1, "timestamp": "2018-12-31 20:43:42", "latitude": -5.5, "longitude": 10, "country": "Chad"},
        {"ind": 2, "timestamp": "not a time", "latitude": None, "longitude": 1.25, "country": ""},
        {"ind": 3},
    ]
    out = clean_table("geo", pa.Table.from_pylist(raw))
    assert out.column_names == ["ind", "country", "coordinates", "timestamp"]
    assert out.schema.field("timestamp").type == pa.timestamp("us")
    assert out.schema.field("coordinates").type == pa.list_(pa.float64())
    assert out.to_pylist() == [
        {
            "ind": 1,
            "country": "Chad",
            "coordinates": [-5.5, 10.0],
            "timestamp": datetime(2018, 12, 31, 20, 43, 42),
        },
        {"ind": 2, "country": None, "coordinates": [None, 1.25], "timestamp": None},
        {"ind": 3, "country": None, "coordinates": [None, None], "timestamp": None},
    ]


def test_user_name_and_date_joined() -> None:
    raw = [
        {
            "ind": 5,
            "first_name": "Abigail",
            "last_name": "Ali",
            "age": 20,
            "date_joined": "2015-10-24 11:23:51",
        },
        {"ind": 6, "first_name": "Zoë", "last_name": None, "age": None, "date_joined": None},
        {"ind": 7, "first_name": "", "last_name": "X ", "age": 51, "date_joined": "2017-01-01 00:00:00"},
    ]
    out = clean_table("user", pa.Table.from_pylist(raw))
    assert out.to_pylist() == [
        {"ind": 5, "user_name": "Abigail Ali", "age": 20, "date_joined": datetime(2015, 10, 24, 11, 23, 51)},
        {"ind": 6, "user_name": None, "age": None, "date_joined": None},
        {"ind": 7, "user_name": " X ", "age": 51, "date_joined": datetime(2017, 1, 1)},
    ]


def test_empty_and_missing_columns() -> None:
    out = clean_table("pin", pa.Table.from_pylist([{"index": 3}]))
    assert out.num_rows == 1
    assert out.to_pylist()[0]["ind"] == 3
    assert clean_table("user", pa.table({"ind": pa.array([], pa.int64())})).num_rows == 0


def test_wrong_column_type_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="age"):
        clean_table("user", pa.Table.from_pylist([{"ind": 1, "age": "twenty"}]))


def test_cleaned_sql_is_rendered_with_placeholders() -> None:
    assert "{array}" in cleaned_sql("geo")
    assert "DISTINCT" in cleaned_sql("geo")
    assert "DISTINCT" not in cleaned_sql("geo", keep_duplicates=True)
