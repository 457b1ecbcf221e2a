"""Each of the ten outputs on small fixtures with expected rows written out by hand (docs/data-rules.md)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pytest

from pinpipe.config import Settings
from pinpipe.engines.duckdb import DuckDBEngine
from pinpipe.schema import Kind
from pinpipe.transform.queries import BatchOptions
from tests.unit.test_batch_run import lines, write_lake


def _pin(ind: int, category: str, poster: str, followers: str, uid: str | None = None) -> dict[str, Any]:
    return {
        "index": ind,
        "unique_id": uid or f"u{ind}",
        "poster_name": poster,
        "follower_count": followers,
        "category": category,
        "save_location": f"Local save in /data/{category}",
    }


def _geo(ind: int, country: str, ts: str) -> dict[str, Any]:
    return {"ind": ind, "timestamp": ts, "latitude": 1.0, "longitude": 2.0, "country": country}


def _user(ind: int, age: int | None, joined: str) -> dict[str, Any]:
    return {"ind": ind, "first_name": "A", "last_name": "B", "age": age, "date_joined": joined}


def batch_outputs(
    settings: Settings, raw: dict[Kind, list[dict]], options: BatchOptions
) -> Mapping[str, pa.Table]:
    """The ten outputs of a batch run (the engine's whole job) over a lake of one object per kind."""
    for kind, records in raw.items():
        if records:
            write_lake(settings, kind, [lines(*records)])
    return DuckDBEngine(settings, threads=1).run_batch(options, full_refresh=True).outputs


def run(
    settings: Settings, pins: list[dict], geos: list[dict], users: list[dict], **options: Any
) -> dict[str, list[tuple]]:
    outputs = batch_outputs(settings, {"pin": pins, "geo": geos, "user": users}, BatchOptions(**options))
    return {name: [tuple(r.values()) for r in t.to_pylist()] for name, t in outputs.items()}


# ind, category, poster, followers / ind, country, timestamp: see the expected rows below.
PINS_A = [
    _pin(1, "art", "alice", "10k"),
    _pin(2, "art", "bob", "5"),
    _pin(3, "beauty", "alice", "20k"),
    _pin(4, "beauty", "carol", "1M"),
    _pin(5, "", "User Info Error", "User Info Error"),
    _pin(6, "beauty", "Bob", "1M"),
    _pin(7, "art", "zed", "2"),
    _pin(8, "travel", "amy", "7"),  # no geo row: not joined
    _pin(10, "beauty", "Alice", "20k"),
]
GEOS_A = [
    _geo(1, "Chad", "2018-01-01 00:00:00"),
    _geo(2, "Chad", "2017-12-31 23:59:59"),
    _geo(3, "Chad", "2022-12-31 23:59:59"),
    _geo(4, "Åland", "2023-01-01 00:00:00"),
    _geo(5, "Chad", "2019-06-01 12:00:00"),
    _geo(6, "Zimbabwe", "2018-12-31 20:43:42"),
    _geo(7, "Zimbabwe", "2020-01-01 00:00:00"),
    _geo(9, "Chad", "2020-01-01 00:00:00"),  # no pin row
    _geo(10, "Chad", "2021-03-03 03:03:03"),
    _geo(11, "", "2021-03-03 03:03:03"),
]


@pytest.fixture
def country_outputs(settings: Settings) -> dict[str, list[tuple]]:
    return run(settings, PINS_A, GEOS_A, [])


def test_popular_category_by_country(country_outputs: dict, settings: Settings) -> None:
    # Chad: art 2, beauty 2 (tie: art); Zimbabwe: art 1, beauty 1 (tie: art); code-point order: Z < Å.
    assert country_outputs["popular_category_by_country"] == [
        ("Chad", "art", 2),
        ("Zimbabwe", "art", 1),
        ("Åland", "beauty", 1),
    ]
    ties = run(settings, PINS_A, GEOS_A, [], keep_ties=True)["popular_category_by_country"]
    assert ties == [
        ("Chad", "art", 2),
        ("Chad", "beauty", 2),
        ("Zimbabwe", "art", 1),
        ("Zimbabwe", "beauty", 1),
        ("Åland", "beauty", 1),
    ]


def test_posts_per_category_by_year_boundaries(country_outputs: dict) -> None:
    # 2017-12-31 23:59:59 and 2023-01-01 00:00:00 are out; 2018-01-01 and 2022-12-31 23:59:59 are in;
    # the null category (2019) is not counted.
    assert country_outputs["posts_per_category_by_year"] == [
        (2018, "art", 1),
        (2018, "beauty", 1),
        (2020, "art", 1),
        (2021, "beauty", 1),
        (2022, "beauty", 1),
    ]


def test_popular_category_by_year(country_outputs: dict, settings: Settings) -> None:
    assert country_outputs["popular_category_by_year"] == [
        (2018, "art", 1),
        (2020, "art", 1),
        (2021, "beauty", 1),
        (2022, "beauty", 1),
    ]
    ties = run(settings, PINS_A, GEOS_A, [], keep_ties=True)["popular_category_by_year"]
    assert ties[:2] == [(2018, "art", 1), (2018, "beauty", 1)]
    assert len(ties) == 5


def test_top_user_by_country(country_outputs: dict, settings: Settings) -> None:
    # Chad: alice counts once with her largest 20k; Alice 20k ties and wins (A < a).
    assert country_outputs["top_user_by_country"] == [
        ("Chad", "Alice", 20000),
        ("Zimbabwe", "Bob", 1000000),
        ("Åland", "carol", 1000000),
    ]
    ties = run(settings, PINS_A, GEOS_A, [], keep_ties=True)["top_user_by_country"]
    assert ties[:2] == [("Chad", "Alice", 20000), ("Chad", "alice", 20000)]


def test_top_country_by_followers(country_outputs: dict, settings: Settings) -> None:
    assert country_outputs["top_country_by_followers"] == [("Zimbabwe", 1000000)]
    ties = run(settings, PINS_A, GEOS_A, [], keep_ties=True)["top_country_by_followers"]
    assert ties == [("Zimbabwe", 1000000), ("Åland", 1000000)]


PINS_B = [
    _pin(1, "art", "p", "100"),
    _pin(2, "art", "p", "1k"),
    _pin(3, "beauty", "p", "3k"),
    _pin(4, "beauty", "p", "10"),
    _pin(5, "beauty", "p", "21"),
    _pin(6, "art", "p", "5"),
    _pin(7, "travel", "User Info Error", "User Info Error"),
    _pin(8, "travel", "p", "2M"),
    _pin(9, "art", "p", "7"),
    _pin(11, "art", "p", "9"),
    _pin(12, "art", "p", "1k"),
]
USERS_B = [
    _user(1, 17, "2015-06-01 00:00:00"),
    _user(2, 18, "2014-12-31 23:59:59"),
    _user(3, 24, "2015-01-01 00:00:00"),
    _user(4, 25, "2016-02-02 00:00:00"),
    _user(5, 35, "2020-12-31 23:59:59"),
    _user(6, 36, "2021-01-01 00:00:00"),
    _user(7, 50, "2016-03-03 00:00:00"),
    _user(8, 51, "2017-04-04 00:00:00"),
    _user(9, None, "2017-05-05 00:00:00"),
    _user(10, 40, "2018-01-01 00:00:00"),  # no pin row: only users_joined_by_year sees it
    _user(11, 45, "2016-05-05 00:00:00"),
    _user(12, 40, "2016-06-06 00:00:00"),
]
# pin ⋈ user: ind age group join category followers
#   1 17 -     2015 art 100 | 2 18 18-24 2014 art 1000 | 3 24 18-24 2015 beauty 3000
#   4 25 25-35 2016 beauty 10 | 5 35 25-35 2020 beauty 21 | 6 36 36-50 2021 art 5
#   7 50 36-50 2016 travel null | 8 51 50+ 2017 travel 2000000 | 9 null - 2017 art 7
#  11 45 36-50 2016 art 9 | 12 40 36-50 2016 art 1000


@pytest.fixture
def age_outputs(settings: Settings) -> dict[str, list[tuple]]:
    return run(settings, PINS_B, [], USERS_B)


def test_popular_category_by_age_group(age_outputs: dict) -> None:
    assert age_outputs["popular_category_by_age_group"] == [
        ("18-24", "art", 1),
        ("25-35", "beauty", 2),
        ("36-50", "art", 3),
        ("50+", "travel", 1),
    ]


def test_median_followers_by_age_group(age_outputs: dict, settings: Settings) -> None:
    # 18-24 [1000, 3000]; 25-35 [10, 21]; 36-50 [5, 9, 1000] (null left out); 50+ [2000000]
    assert age_outputs["median_followers_by_age_group"] == [
        ("18-24", 1000),
        ("25-35", 10),
        ("36-50", 9),
        ("50+", 2000000),
    ]
    exact = run(settings, PINS_B, [], USERS_B, median="exact")["median_followers_by_age_group"]
    assert exact == [("18-24", 2000.0), ("25-35", 15.5), ("36-50", 9.0), ("50+", 2000000.0)]


def test_users_joined_by_year(age_outputs: dict) -> None:
    # the user table alone: 2014 and 2021 are out of range; ind 10 has no pin but counts.
    assert age_outputs["users_joined_by_year"] == [(2015, 2), (2016, 4), (2017, 2), (2018, 1), (2020, 1)]


def test_median_followers_by_join_year(age_outputs: dict, settings: Settings) -> None:
    # 2015 [100, 3000]; 2016 [9, 10, 1000]; 2017 [7, 2000000]; 2020 [21]
    assert age_outputs["median_followers_by_join_year"] == [(2015, 100), (2016, 10), (2017, 7), (2020, 21)]
    exact = run(settings, PINS_B, [], USERS_B, median="exact")["median_followers_by_join_year"]
    assert exact == [(2015, 1550.0), (2016, 10.0), (2017, 1000003.5), (2020, 21.0)]


def test_median_followers_by_join_year_and_age_group(age_outputs: dict, settings: Settings) -> None:
    # 36-50 2016: [9, 1000] (ind 7 is null); groups with no non-null value have no row.
    assert age_outputs["median_followers_by_join_year_and_age_group"] == [
        ("18-24", 2015, 3000),
        ("25-35", 2016, 10),
        ("25-35", 2020, 21),
        ("36-50", 2016, 9),
        ("50+", 2017, 2000000),
    ]
    exact = run(settings, PINS_B, [], USERS_B, median="exact")["median_followers_by_join_year_and_age_group"]
    assert ("36-50", 2016, 504.5) in exact


def test_duplicates_default_and_keep_duplicates(settings: Settings) -> None:
    pins = [
        _pin(1, "art", "p", "1", uid="same"),
        _pin(1, "beauty", "p", "1", uid="same"),  # same unique_id: the first (art) is kept
        _pin(2, "art", "p", "1", uid="two"),
    ]
    geos = [_geo(1, "Chad", "2019-01-01 00:00:00")] * 3 + [_geo(2, "Chad", "2019-01-01 00:00:00")]
    users = [_user(5, 30, "2016-01-01 00:00:00")] * 2
    default = run(settings, pins, geos, users)
    assert default["posts_per_category_by_year"] == [(2019, "art", 2)]
    assert default["users_joined_by_year"] == [(2016, 1)]
    raw = run(settings, pins, geos, users, keep_duplicates=True)
    # ind 1: k=2 pins x m=3 geos = 6 joined rows (3 art, 3 beauty); ind 2: 1 row.
    assert raw["posts_per_category_by_year"] == [(2019, "art", 4), (2019, "beauty", 3)]
    assert raw["users_joined_by_year"] == [(2016, 2)]


def test_years_are_naive_whatever_the_process_time_zone(settings: Settings) -> None:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Pacific/Kiritimati"  # UTC+14
    time.tzset()
    try:
        out = run(settings, PINS_A, GEOS_A, [])
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()
    assert (2018, "beauty", 1) in out["posts_per_category_by_year"]  # 2018-12-31 20:43:42 stays in 2018


def test_empty_inputs_give_empty_outputs(settings: Settings) -> None:
    out = run(settings, [], [], [])
    assert all(rows == [] for rows in out.values())
    assert len(out) == 10
