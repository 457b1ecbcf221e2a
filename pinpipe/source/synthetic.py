"""Synthetic source rows that look like the real ones, deterministic per seed, at millions of rows.

Rows come in fixed blocks of :data:`BLOCK_ROWS` indices, each block drawn from its own generator seeded
by ``(seed, block)``; so row ``ind`` is the same whatever range or chunk size asked for it, and any range
can be generated (or regenerated) without the rows before it. Posters and users come from per-seed pools
(one poster keeps one follower count; the same person appears under many ``ind``, as in the real data).
Rates below were measured on ``data/aicore`` (3,607 pin rows, 11,154 geo and user rows).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from pinpipe.errors import SourceError
from pinpipe.schema import KINDS, Kind
from pinpipe.source import vocab
from pinpipe.source.database import TABLES, insert_rows
from pinpipe.source.progress import row_progress

BLOCK_ROWS = 1024

TITLE_PLACEHOLDER = "No Title Data Available"
STORY_DESCRIPTION = "No description available Story format"
NO_DESCRIPTION = "No description available"
USER_INFO_ERROR = "User Info Error"
NO_TAGS = "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e"
IMAGE_ERROR = "Image src error."
STORY = "multi-video(story page format)"

# Real rates (pin): 7.4% stories, 2.7% videos; among stories 9% are fully broken (placeholder title,
# User Info Error, image and tag placeholders: 0.67% of all rows), 21% only lack the image.
P_STORY, P_VIDEO = 0.0737, 0.0274
P_STORY_BROKEN, P_STORY_NO_IMAGE, P_STORY_NO_TAGS = 0.09, 0.215, 0.008
P_EMPTY_TITLE = 0.0003
P_NO_DESCRIPTION = 0.017
P_NO_TAGS = 0.0054
P_TRUNCATED = 0.39  # description cut at ~180 chars, ending "…" + NBSP
P_TITLE_TRAILING, P_POSTER_TRAILING = 0.002, 0.016
P_UNICODE_TITLE, P_APOSTROPHE, P_UNICODE_TEXT, P_CYRILLIC = 0.08, 0.08, 0.06, 0.02

POST_START = datetime(2017, 10, 19, 15, 13, 42)
POST_SPAN_S = int((datetime(2022, 10, 19, 17, 54, 26) - POST_START).total_seconds())
JOIN_START = datetime(2015, 10, 21, 3, 17, 47)
JOIN_SPAN_S = int((datetime(2017, 10, 20, 10, 44, 26) - JOIN_START).total_seconds())
ENDINGS = (".", ".", "!", "")
POSTER_POOL = 4000
PEOPLE_POOL = 6000


def _six_digits(value: float) -> float:
    """Round to 6 significant digits, as the original FLOAT columns displayed coordinates."""
    return float(f"{value:.6g}")


def _pick(items: tuple[str, ...], bits: int) -> str:
    return items[bits % len(items)]


def _follower_count(rng: random.Random) -> str:
    draw = rng.random()
    if draw < 0.174:
        return str(rng.randint(0, 997))
    if draw < 0.918:
        return f"{int(math.exp(rng.uniform(0.0, math.log(999.0))))}k"
    return f"{min(15, int(rng.paretovariate(1.4)))}M"


@dataclass(frozen=True)
class _Poster:
    name: str
    followers: str


PHRASES = 256
"""Phrases per category and kind (a power of two: a row picks them with slices of one random word)."""
TAGS = 128


@dataclass(frozen=True)
class _PhraseBook:
    """Per-category pieces that rows combine: 256 x 256 titles, 256^2 descriptions, 128^9 tag lists.

    Unicode, curly apostrophes and Cyrillic are put into the pieces at build time, at rates that give
    the real tables' rates once combined.
    """

    heads: tuple[str, ...]
    tails: tuple[str, ...]
    openings: tuple[str, ...]
    continuations: tuple[str, ...]
    tags: tuple[str, ...]

    @classmethod
    def build(cls, rng: random.Random, category: str) -> _PhraseBook:
        words = vocab.CATEGORY_WORDS[category] + vocab.COMMON_WORDS

        def phrase(low: int, high: int, unicode_rate: float) -> list[str]:
            picked = rng.choices(words, k=rng.randint(low, high))
            if rng.random() < unicode_rate:
                picked.insert(rng.randrange(len(picked) + 1), rng.choice(vocab.UNICODE_WORDS))
            if rng.random() < P_APOSTROPHE / 2:
                picked.insert(rng.randrange(len(picked) + 1), rng.choice(("it’s", "you’re", "don’t", "’em")))
            return picked

        def titled(low: int, high: int) -> str:
            return " ".join(
                w if w in vocab.UNICODE_WORDS else w.title() for w in phrase(low, high, P_UNICODE_TITLE / 2)
            )

        def opening() -> str:
            if rng.random() < P_CYRILLIC:
                return f"{rng.choice(vocab.CYRILLIC_PHRASES)} {' '.join(phrase(4, 12, 0.0))}"
            text = " ".join(phrase(4, 16, P_UNICODE_TEXT / 2))
            return text[0].upper() + text[1:]

        return cls(
            heads=tuple(titled(1, 5) for _ in range(PHRASES)),
            tails=tuple(titled(1, 5) for _ in range(PHRASES)),
            openings=tuple(opening() for _ in range(PHRASES)),
            continuations=tuple(" ".join(phrase(4, 20, P_UNICODE_TEXT / 2)) for _ in range(PHRASES)),
            tags=tuple(
                " ".join(w.title() for w in rng.choices(words, k=rng.randint(1, 3))) for _ in range(TAGS)
            ),
        )


class SyntheticRows:
    """The rows of one seed: ``rows(start, stop)`` yields ``{"pin": .., "geo": .., "user": ..}`` per ind."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        pool = random.Random(f"pinpipe-synthetic-pool:{seed}")
        self._books = {c: _PhraseBook.build(pool, c) for c in vocab.CATEGORIES}
        self._posters = [self._poster(pool, pool.getrandbits(64)) for _ in range(POSTER_POOL)]
        self._people = [self._person(pool, pool.getrandbits(32)) for _ in range(PEOPLE_POOL)]

    @staticmethod
    def _person(rng: random.Random, bits: int) -> tuple[str, str, int, datetime]:
        """A user: 44% are 20-24 as in the real table, none over 60."""
        return (
            vocab.FIRST_NAMES[bits % len(vocab.FIRST_NAMES)],
            vocab.LAST_NAMES[(bits >> 12) % len(vocab.LAST_NAMES)],
            min(60, 20 + int(rng.expovariate(1 / 9))),
            JOIN_START + timedelta(seconds=int(rng.random() * JOIN_SPAN_S)),
        )

    @staticmethod
    def _poster(rng: random.Random, bits: int) -> _Poster:
        shape, first, last = bits & 0xFF, (bits >> 8) & 0xFFF, (bits >> 20) & 0xFFF
        suffix = vocab.POSTER_SUFFIXES[(bits >> 32) % len(vocab.POSTER_SUFFIXES)]
        if shape < 102:
            name = f"{_pick(vocab.FIRST_NAMES, first)} {_pick(vocab.LAST_NAMES, last)}"
        elif shape < 204:
            words = vocab.CATEGORY_WORDS[_pick(vocab.CATEGORIES, first)]
            name = f"{_pick(vocab.COMMON_WORDS, last).title()} {_pick(words, first).title()}{suffix}"
        else:
            name = f"{_pick(vocab.LAST_NAMES, last)}{suffix}"
        if (bits >> 40) & 0xFF < 8:
            name = f"{name} {vocab.UNICODE_WORDS[(bits >> 48) % len(vocab.UNICODE_WORDS)]}"
        if rng.random() < P_POSTER_TRAILING:
            name += " "
        return _Poster(name, _follower_count(rng))

    def rows(self, start: int, stop: int) -> Iterator[dict[Kind, dict[str, Any]]]:
        """Rows ``start <= ind < stop``, identical whatever range they are asked in."""
        block = start // BLOCK_ROWS
        while block * BLOCK_ROWS < stop:
            first = block * BLOCK_ROWS
            rng = random.Random(f"pinpipe-synthetic:{self.seed}:{block}")
            for ind in range(first, first + BLOCK_ROWS):
                row = self._row(rng, ind)  # drawn even when skipped, so the block's stream is fixed
                if start <= ind < stop:
                    yield row
            block += 1

    def _row(self, rng: random.Random, ind: int) -> dict[Kind, dict[str, Any]]:
        return {"pin": self._pin(rng, ind), "geo": self._geo(rng, ind), "user": self._user(rng, ind)}

    def _pin(self, rng: random.Random, ind: int) -> dict[str, Any]:
        bits = rng.getrandbits(64)
        category = vocab.CATEGORIES[(bits & 0xFFFF) % len(vocab.CATEGORIES)]
        book = self._books[category]
        media = rng.random()
        kind = STORY if media < P_STORY else "video" if media < P_STORY + P_VIDEO else "image"
        digest = f"{rng.getrandbits(128):032x}"
        image = "videos/thumbnails/originals" if kind != "image" else "originals"
        image_src = f"https://i.pinimg.com/{image}/{digest[:2]}/{digest[2:4]}/{digest[4:6]}/{digest}"
        image_src += ".0000001.jpg" if kind != "image" else ".jpg"
        flags = rng.random()
        if kind == STORY and flags < P_STORY_BROKEN:
            title, name, followers = TITLE_PLACEHOLDER, USER_INFO_ERROR, USER_INFO_ERROR
            tags, image_src = NO_TAGS, IMAGE_ERROR
        else:
            # Half the pins come from a pool of regulars (a few very frequent), half from one-off posters.
            if (bits >> 16) & 1:
                poster = self._posters[int(POSTER_POOL * rng.random() ** 2)]
            else:
                poster = self._poster(rng, rng.getrandbits(64))
            name, followers = poster.name, poster.followers
            title = f"{book.heads[(bits >> 17) & 0xFF]} {book.tails[(bits >> 25) & 0xFF]}"
            if flags < P_TITLE_TRAILING:
                title += " "
            tag_bits = rng.getrandbits(63)
            tags = ",".join([book.tags[(tag_bits >> shift) & 0x7F] for shift in range(0, 63, 7)])
            if kind == STORY:
                if flags > 1 - P_STORY_NO_IMAGE:
                    image_src = IMAGE_ERROR
                    if rng.random() < P_EMPTY_TITLE / (P_STORY * P_STORY_NO_IMAGE):
                        title = ""
                elif flags > 1 - P_STORY_NO_IMAGE - P_STORY_NO_TAGS:
                    tags = NO_TAGS
            elif flags > 1 - P_NO_TAGS:
                tags = NO_TAGS
        if kind == STORY:
            description = STORY_DESCRIPTION
        elif (truncate := rng.random()) < P_NO_DESCRIPTION:
            description = NO_DESCRIPTION
        else:
            description = f"{book.openings[(bits >> 33) & 0xFF]} {book.continuations[(bits >> 41) & 0xFF]}"
            if truncate < P_NO_DESCRIPTION + P_TRUNCATED:
                description = description[:177].rstrip() + "…\xa0"
            else:
                description += ENDINGS[(bits >> 49) & 3]
        return {
            "index": ind,
            "unique_id": f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-a{digest[17:20]}-{digest[20:]}",
            "title": title,
            "description": description,
            "poster_name": name,
            "follower_count": followers,
            "tag_list": tags,
            "is_image_or_video": kind,
            "image_src": image_src,
            "downloaded": 0 if image_src == IMAGE_ERROR else 1,
            "save_location": f"Local save in /data/{category}",
            "category": category,
        }

    def _geo(self, rng: random.Random, ind: int) -> dict[str, Any]:
        bits = rng.getrandbits(64)
        return {
            "ind": ind,
            "timestamp": POST_START + timedelta(seconds=(bits & 0xFFFFFFFF) % POST_SPAN_S),
            "latitude": _six_digits(rng.random() * 180.0 - 90.0),
            "longitude": _six_digits(rng.random() * 360.0 - 180.0),
            "country": vocab.COUNTRIES[(bits >> 32) % len(vocab.COUNTRIES)],
        }

    def _user(self, rng: random.Random, ind: int) -> dict[str, Any]:
        # As in the real table: most people appear once, a few under hundreds of ind values.
        if rng.random() < 0.5:
            first, last, age, joined = self._people[int(PEOPLE_POOL * rng.random() ** 3)]
        else:
            first, last, age, joined = self._person(rng, rng.getrandbits(32))
        return {"ind": ind, "first_name": first, "last_name": last, "age": age, "date_joined": joined}


def seed_database(
    engine: Engine,
    rows: int,
    *,
    seed: int = 0,
    start: int = 0,
    chunk_rows: int = 10_000,
    replace: bool = False,
    progress: bool = True,
) -> int:
    """Insert ``rows`` synthetic rows (ind ``start``..) into each table, one transaction per chunk.

    Memory is bounded by one chunk. Returns the rows written per table.
    """
    generator = SyntheticRows(seed)
    if replace:
        with engine.begin() as conn:
            for kind in KINDS:
                conn.execute(TABLES[kind].delete())
    written = 0
    stream = generator.rows(start, start + rows)
    with row_progress(progress) as bar:
        task = bar.add_task("seed", total=rows, info=f"seed {seed}")
        while written < rows:
            chunk: dict[Kind, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
            for row in islice(stream, chunk_rows):
                for kind in KINDS:
                    chunk[kind].append(row[kind])
            try:
                with engine.begin() as conn:
                    for kind in KINDS:
                        insert_rows(conn, kind, chunk[kind])
            except IntegrityError as exc:
                low = start + written
                raise SourceError(
                    f"rows ind {low}..{low + len(chunk['pin']) - 1} already exist in the source database: "
                    "use --replace or another --start"
                ) from exc
            written += len(chunk["pin"])
            bar.update(task, completed=written)
    return written
