"""Hypothesis strategies for hostile records, as JSON text: every JSON type and its edge values in every
field of every kind (huge and tiny integers, -0 and -0.0, 1e400, strings that look like numbers or
dates, timestamps from year 1 to 9999 with and without offsets, nulls, nested objects and arrays),
plus unknown fields. Most fields get a value of their own type, so many records pass the API and reach
every consumer."""

from __future__ import annotations

import json

from hypothesis import strategies as st

from pinpipe.schema import FIELDS, Kind

EDGE_NUMBERS = [
    "0", "-0", "0.0", "-0.0", "1", "-1", "1.10", "1E2", "1e-400", "-1e-400", "5e-324", "1e400", "-1e400",
    "1.7976931348623157e308", "2.5", "-89.9787", "9007199254740993", "9223372036854775807",
    "9223372036854775808", "-9223372036854775808", "-9223372036854775809", "18446744073709551615",
    "18446744073709551616", "1180591620717411303424", "1" + "0" * 400,
]  # fmt: skip
EDGE_STRINGS = [
    "", " ", "0", "-0", "1e400", "NaN", "Infinity", "null", "true", "10k", "2M", "1.5k", "User Info Error",
    "2020-01-01 00:00:00", "1600-01-01 00:00:00", "0001-01-01 00:00:00", "9999-12-31 23:59:59", "\u0000",
    "é", "\n", "Local save in /data/x", "No Title Data Available", "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e",
]  # fmt: skip

numbers = st.one_of(
    st.sampled_from(EDGE_NUMBERS),
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
)
text = st.text(st.characters(codec="utf-8"), max_size=8)  # no lone surrogates: not Unicode
strings = st.one_of(st.sampled_from(EDGE_STRINGS), text).map(lambda s: json.dumps(s, ensure_ascii=False))


@st.composite
def datetimes(draw: st.DrawFn) -> str:
    year = draw(st.one_of(st.sampled_from([1, 1600, 1677, 1970, 2020, 2262, 9999]), st.integers(1, 9999)))
    month, day = draw(st.integers(1, 12)), draw(st.integers(1, 28 if year == 9999 else 31))
    day = min(day, 28) if month == 2 else min(day, 30) if month in (4, 6, 9, 11) else day
    hour, minute, second = draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
    sep = draw(st.sampled_from([" ", "T"]))
    fraction = draw(st.sampled_from(["", ".5", ".123456", ".123456789"]))
    zone = draw(st.sampled_from(["", "", "Z", "+14:00", "-12:00"]))
    value = f"{year:04d}-{month:02d}-{day:02d}{sep}{hour:02d}:{minute:02d}:{second:02d}{fraction}{zone}"
    extremes = ["9999-12-31 23:59:59", "0001-01-01 00:00:00"]
    return json.dumps(draw(st.sampled_from([value, value[:10], *extremes])))


leaves = st.one_of(numbers, strings, st.sampled_from(["null", "true", "false"]))
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda items: "[" + ",".join(items) + "]"),
        st.dictionaries(text, inner, max_size=3).map(
            lambda d: "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in d.items()) + "}"
        ),
    ),
    max_leaves=6,
)
integers = st.one_of(
    st.sampled_from([n for n in EDGE_NUMBERS if n.lstrip("-").isdigit()]), st.integers().map(str)
)
OF_TYPE = {"int": integers, "float": numbers, "str": strings, "datetime": datetimes()}


@st.composite
def records(draw: st.DrawFn, kind: Kind) -> str:
    """One record of ``kind`` as JSON text: each known field mostly of its type (edge values included),
    sometimes missing, null or anything."""
    parts = []
    for name, expected in FIELDS[kind].items():
        choice = draw(st.sampled_from(["typed"] * 16 + ["missing", "null", "any"]))
        if choice == "missing":
            continue
        value = {"typed": OF_TYPE[expected], "any": values}.get(choice, st.just("null"))
        parts.append(f"{json.dumps(name)}:{draw(value)}")
    extra = draw(st.dictionaries(text.filter(lambda k: k not in FIELDS[kind]), values, max_size=2))
    parts += [f"{json.dumps(k)}:{v}" for k, v in extra.items()]
    order = draw(st.permutations(parts))
    return "{" + ",".join(order) + "}"
