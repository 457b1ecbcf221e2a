"""Synthetic rows: deterministic per seed whatever the chunking, and shaped like the real tables."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from pinpipe.cli import cli
from pinpipe.errors import SourceError
from pinpipe.locations import sqlite_url
from pinpipe.source import vocab
from pinpipe.source.database import TABLES, count_rows, open_source
from pinpipe.source.synthetic import SyntheticRows, seed_database
from tests.aicore import read_jsonl

N = 20_000


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return list(SyntheticRows(7).rows(0, N))


def _dump(engine: sa.Engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {
            kind: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key))]
            for kind, t in TABLES.items()
        }


def test_same_seed_same_rows_whatever_the_chunking(tmp_path: Path, rows: list[dict]) -> None:
    assert list(SyntheticRows(7).rows(0, 50)) == rows[:50]
    assert list(SyntheticRows(7).rows(1000, 1100)) == rows[1000:1100]  # any range, no prefix needed
    assert list(SyntheticRows(8).rows(0, 50)) != rows[:50]
    dumps = []
    for chunk in (1, 333, 5000):
        engine = open_source(sqlite_url(tmp_path / f"c{chunk}.db"))
        assert seed_database(engine, 1500 if chunk != 1 else 300, seed=7, chunk_rows=chunk, progress=False)
        dumps.append(_dump(engine))
        engine.dispose()
    assert {k: v[:300] for k, v in dumps[1].items()} == dumps[0]
    assert dumps[1] == dumps[2]
    assert dumps[1]["geo"][0][1] == rows[0]["geo"]["timestamp"]


def test_seed_twice_needs_replace(tmp_path: Path) -> None:
    engine = open_source(sqlite_url(tmp_path / "s.db"))
    seed_database(engine, 100, seed=1, progress=False)
    with pytest.raises(SourceError, match=r"rows ind 0\.\.99 already exist.*--replace"):
        seed_database(engine, 100, seed=1, progress=False)
    seed_database(engine, 100, seed=1, start=100, progress=False)
    seed_database(engine, 50, seed=2, replace=True, progress=False)
    assert count_rows(engine) == {"pin": 50, "geo": 50, "user": 50}
    engine.dispose()


def _real_pins(aicore: Path) -> list[dict]:
    return read_jsonl(aicore / "pinterest_data.jsonl")


PLACEHOLDERS = {
    "title": "No Title Data Available",
    "description": "No description available Story format",
    "poster_name": "User Info Error",
    "follower_count": "User Info Error",
    "tag_list": "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e",
    "image_src": "Image src error.",
}


def test_placeholder_rates_close_to_the_real_ones(aicore: Path, rows: list[dict]) -> None:
    real = _real_pins(aicore)
    pins = [r["pin"] for r in rows]
    for field, placeholder in {**PLACEHOLDERS, "description ": "No description available"}.items():
        field = field.strip()
        real_rate = sum(p[field] == placeholder for p in real) / len(real)
        rate = sum(p[field] == placeholder for p in pins) / len(pins)
        assert abs(rate - real_rate) <= max(0.35 * real_rate, 0.002), (field, placeholder, rate, real_rate)
    assert all(
        (p["poster_name"] == "User Info Error") == (p["follower_count"] == "User Info Error") for p in pins
    )
    assert any(p["title"] == "" for p in pins) and sum(p["title"] == "" for p in pins) < 30
    real_media = Counter(p["is_image_or_video"] for p in real if p["is_image_or_video"])
    media = Counter(p["is_image_or_video"] for p in pins)
    assert set(media) == set(real_media)
    for value, n in real_media.items():
        assert abs(media[value] / N - n / sum(real_media.values())) < 0.01


def test_values_are_shaped_like_the_real_ones(aicore: Path, rows: list[dict]) -> None:
    pins, geos, users = ([r[k] for r in rows] for k in ("pin", "geo", "user"))
    real_categories = {p["category"] for p in _real_pins(aicore)}
    assert {p["category"] for p in pins} == real_categories == set(vocab.CATEGORIES)
    assert all(p["save_location"] == f"Local save in /data/{p['category']}" for p in pins)
    shapes = Counter(re.sub(r"^\d+", "N", p["follower_count"]) for p in pins)
    assert set(shapes) == {"N", "Nk", "NM", "User Info Error"} and shapes["Nk"] > shapes["N"] > shapes["NM"]
    assert max(int(p["follower_count"][:-1]) for p in pins if p["follower_count"].endswith("M")) <= 15
    assert all(int(p["follower_count"]) <= 997 for p in pins if p["follower_count"].isdigit())
    descriptions = [p["description"] for p in pins]
    assert 0.25 < sum(d.endswith("…\xa0") for d in descriptions) / N < 0.45
    assert sum(any(ord(c) > 127 for c in p["title"]) for p in pins) / N > 0.03
    assert any(p["poster_name"].endswith(" ") for p in pins) and any(p["title"].endswith(" ") for p in pins)
    assert len({p["unique_id"] for p in pins}) == N
    assert {u["age"] for u in users} == set(range(20, 61))
    assert min(u["date_joined"] for u in users) >= datetime(2015, 10, 1)
    assert max(u["date_joined"] for u in users) < datetime(2017, 11, 1)
    assert datetime(2017, 10, 1) <= min(g["timestamp"] for g in geos)
    assert max(g["timestamp"] for g in geos) < datetime(2022, 11, 1)
    assert {g["timestamp"].year for g in geos} == set(range(2017, 2023))
    countries = {g["country"] for g in geos}
    assert len(countries) > 230 and "Cocos (Keeling) Islands" in countries
    assert all(-90 <= g["latitude"] <= 90 and -180 <= g["longitude"] <= 180 for g in geos)
    people = Counter((u["first_name"], u["last_name"], u["date_joined"]) for u in users)
    assert people.most_common(1)[0][1] > 20 and len(people) > N / 3  # repeats, yet many people
    assert [r["pin"]["index"] for r in rows] == list(range(N)) == [r["geo"]["ind"] for r in rows]


def test_seed_command_prints_rate_and_fills_tables(tmp_path: Path, settings: object) -> None:
    url = sqlite_url(tmp_path / "cli.db")
    result = CliRunner().invoke(
        cli, ["source", "seed", "--db", url, "--rows", "2000", "--seed", "3", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert re.match(r"seeded 2000 rows per table \(seed 3\) in [\d.]+s \([\d,]+ rows/s\)", result.stdout)
    engine = open_source(url, create=False)
    assert count_rows(engine) == {"pin": 2000, "geo": 2000, "user": 2000}
    engine.dispose()
