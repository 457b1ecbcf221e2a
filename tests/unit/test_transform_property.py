"""Property: on random raw records the engine's ten outputs equal a plain-Python reading of the data rules.

The reference below is written from docs/data-rules.md, independently of the SQL in pinpipe.transform.
"""

from __future__ import annotations

import math
import tempfile
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pinpipe.config import load_settings
from pinpipe.transform.queries import BatchOptions
from tests.unit.test_transform_queries import batch_outputs

TS = ["2017-12-31 23:59:59", "2018-01-01 00:00:00", "2018-12-31 20:43:42", "2020-06-01 12:00:00",
      "2022-12-31 23:59:59", "2023-01-01 00:00:00", "garbage", None]  # fmt: skip
JOINED = ["2014-12-31 23:59:59", "2015-01-01 00:00:00", "2017-06-06 06:06:06", "2020-12-31 23:59:59",
          "2021-01-01 00:00:00", None]  # fmt: skip
pins = st.fixed_dictionaries({
    "index": st.integers(0, 5),
    "unique_id": st.sampled_from(["a", "b", "c", "d", "", None]),
    "poster_name": st.sampled_from(["al", "Al", "bo", "Ål", "User Info Error", "", None]),
    "follower_count": st.sampled_from(["0", "5", "7", "12k", "1M", "2M", "User Info Error", "", None]),
    "category": st.sampled_from(["art", "Art", "ärt", "b", "", None]),
})  # fmt: skip
geos = st.fixed_dictionaries({
    "ind": st.integers(0, 5), "country": st.sampled_from(["X", "x", "Å", "Z", "", None]),
    "timestamp": st.sampled_from(TS), "latitude": st.just(1.5), "longitude": st.just(-2.0),
})  # fmt: skip
users = st.fixed_dictionaries({
    "ind": st.integers(0, 5), "first_name": st.sampled_from(["A", "B"]), "last_name": st.just("C"),
    "age": st.sampled_from([None, 17, 18, 24, 25, 35, 36, 50, 51]), "date_joined": st.sampled_from(JOINED),
})  # fmt: skip
options = st.builds(BatchOptions, st.booleans(), st.sampled_from(["lower", "exact"]), st.booleans())


def _nz(value: Any) -> Any:
    return None if value == "" else value


def _followers(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip(" ")
    mult = 1
    if text.endswith("k"):
        text, mult = text[:-1], 1000
    elif text.endswith("M"):
        text, mult = text[:-1], 1_000_000
    try:
        return round(float(text) * mult)
    except ValueError:
        return None


def _time(text: str | None) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S") if text else None
    except ValueError:
        return None


def _year(text: str | None) -> int | None:
    parsed = _time(text)
    return parsed.year if parsed else None


def _age_group(age: int | None) -> str | None:
    if age is None or age < 18:
        return None
    return "18-24" if age <= 24 else "25-35" if age <= 35 else "36-50" if age <= 50 else "50+"


def reference(p: list[dict], g: list[dict], u: list[dict], o: BatchOptions) -> dict[str, list[tuple]]:
    pin = [
        (r["index"], _nz(r["unique_id"]), _followers(r["follower_count"]),
         None if r["poster_name"] == "User Info Error" else _nz(r["poster_name"]), _nz(r["category"]))
        for r in p
    ]  # fmt: skip
    # the lake reader quarantines a record whose datetime field holds no date and time ("garbage")
    g = [r for r in g if r["timestamp"] is None or _time(r["timestamp"])]
    geo = [(r["ind"], _nz(r["country"]), _year(r["timestamp"]), _time(r["timestamp"])) for r in g]
    usr = [(r["ind"], r["age"], _year(r["date_joined"]), _time(r["date_joined"]), r["first_name"]) for r in u]
    if not o.keep_duplicates:
        seen: set = set()
        kept = []
        for row in pin:
            key = ("uid", row[1]) if row[1] is not None else ("row", row)
            if key not in seen:
                seen.add(key)
                kept.append(row)
        pin = kept
        geo = list(dict.fromkeys(geo))
        usr = list(dict.fromkeys(usr))
    pg = [(pr, gr) for pr in pin for gr in geo if pr[0] == gr[0]]
    pu = [(pr, ur) for pr in pin for ur in usr if pr[0] == ur[0]]

    def top(groups: dict, value_name: bool = True) -> list[tuple]:
        rows = []
        for key, items in groups.items():  # items: {name: value}
            best = max(items.values())
            names = sorted(n for n, v in items.items() if v == best)
            rows += [(*key, n, best) for n in (names if o.keep_ties else names[:1])]
        return rows

    def counts(pairs: list, key_of) -> dict:
        out: dict = defaultdict(lambda: defaultdict(int))
        for pr, other in pairs:
            key = key_of(pr, other)
            if key is not None and pr[4] is not None:
                out[key][pr[4]] += 1
        return out

    def med(values: list[int]) -> float | int:
        values = sorted(values)
        n = len(values)
        lower = values[math.ceil(n / 2) - 1]
        if o.median == "exact" and n % 2 == 0:
            return (values[n // 2 - 1] + values[n // 2]) / 2
        return lower

    def medians(pairs: list, key_of) -> list[tuple]:
        groups: dict = defaultdict(list)
        for pr, other in pairs:
            key = key_of(pr, other)
            if key is not None and pr[2] is not None:
                groups[key].append(pr[2])
        return [(*k, med(v)) for k, v in groups.items()]

    by_country = counts(pg, lambda pr, gr: (gr[1],) if gr[1] is not None else None)
    by_year = counts(pg, lambda pr, gr: (gr[2],) if gr[2] is not None and 2018 <= gr[2] <= 2022 else None)
    posters: dict = defaultdict(dict)
    for pr, gr in pg:
        if gr[1] is not None and pr[3] is not None and pr[2] is not None:
            posters[(gr[1],)][pr[3]] = max(pr[2], posters[(gr[1],)].get(pr[3], pr[2]))
    top_users = top(posters)
    countries = {c: f for c, _, f in top_users}
    best = max(countries.values(), default=None)
    top_countries = sorted(c for c, f in countries.items() if f == best)

    def age_key(pr: tuple, ur: tuple) -> tuple | None:
        return (_age_group(ur[1]),) if _age_group(ur[1]) else None

    def in_years(y: int | None) -> bool:
        return y is not None and 2015 <= y <= 2020

    by_age = counts(pu, age_key)
    joined: dict = defaultdict(int)
    for ur in usr:
        if in_years(ur[2]):
            joined[ur[2]] += 1
    return {
        "popular_category_by_country": top(by_country),
        "posts_per_category_by_year": [(k[0], c, n) for k, cats in by_year.items() for c, n in cats.items()],
        "popular_category_by_year": top(by_year),
        "top_user_by_country": top_users,
        "top_country_by_followers": [(c, best) for c in top_countries[: None if o.keep_ties else 1]],
        "popular_category_by_age_group": top(by_age),
        "median_followers_by_age_group": medians(pu, age_key),
        "users_joined_by_year": list(joined.items()),
        "median_followers_by_join_year": medians(pu, lambda pr, ur: (ur[2],) if in_years(ur[2]) else None),
        "median_followers_by_join_year_and_age_group": medians(
            pu, lambda pr, ur: (_age_group(ur[1]), ur[2]) if in_years(ur[2]) and _age_group(ur[1]) else None
        ),
    }  # fmt: skip


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(pins, max_size=12), st.lists(geos, max_size=12), st.lists(users, max_size=12), options)
def test_engine_matches_plain_python(p: list, g: list, u: list, o: BatchOptions) -> None:
    with tempfile.TemporaryDirectory(prefix="pinpipe-property-") as workdir:
        got = batch_outputs(load_settings(workdir=Path(workdir)), {"pin": p, "geo": g, "user": u}, o)
    expected = reference(p, g, u, o)
    for name, table in got.items():
        rows = sorted(tuple(r.values()) for r in table.to_pylist())
        assert rows == sorted(expected[name]), name
