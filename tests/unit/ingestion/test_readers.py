"""The adapters' readers: their quick paths decide exactly as the careful ones they stand in front of."""

import codecs
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cancelguard.domain import bounds
from cancelguard.domain.model import InvalidInput, parse_time
from cancelguard.ingestion.adapters import load_json_object, time_at

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
WHAT = "test document"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()  # NaN and the infinities too: json writes them, orjson refuses them
    | st.text(max_size=12),  # lone surrogates too: json escapes them, orjson refuses them
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=16,
)


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # NaN == NaN, as text


@given(doc=st.dictionaries(st.text(max_size=8), json_values, max_size=5), as_bytes=st.booleans())
@settings(max_examples=300, deadline=None)
def test_a_json_object_reads_as_the_standard_library_reads_it(doc: dict[str, Any], as_bytes: bool) -> None:
    text = json.dumps(doc)
    assert _same(load_json_object(text.encode() if as_bytes else text, WHAT), json.loads(text))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"q": NaN, "r": -Infinity}',
        b'{"id": "\\ud800"}',  # a lone surrogate escape
        codecs.BOM_UTF8 + b'{"a": 1}',
        '{"a": "é"}'.encode("utf-16"),
        b'{"a": 1e400}',
    ],
)
def test_what_orjson_refuses_the_standard_library_decides(raw: bytes) -> None:
    assert _same(load_json_object(raw, WHAT), json.loads(raw))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "NOT_JSON"),
        (b"\xff\xfe\xfd", "NOT_JSON"),
        (b"[]", "NOT_AN_OBJECT"),
        (b"[" * 5000, "TOO_DEEP"),
    ],
)
def test_what_neither_reads_is_refused_with_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidInput) as err:
        load_json_object(raw, WHAT)
    assert err.value.reason == reason


def _careful(value: object, *, planned: bool) -> datetime:
    """The careful reading on its own: a string within the text bounds, parsed, within the time bounds."""
    if not isinstance(value, str):
        raise bounds.invalid(bounds.Reason.BAD_TIME, "not a string")
    bounds.text(value, "t", max_len=64)
    check = bounds.planned_time if planned else bounds.event_time
    return check(parse_time(value, "t"), "t", now=NOW)


def _outcome(read: Any) -> Any:
    try:
        found = read()
    except InvalidInput as exc:
        return exc.reason
    return (found, found.utcoffset())


times = st.one_of(
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.sampled_from([UTC, None])
    ).map(lambda d: d.isoformat()),
    st.datetimes(min_value=datetime(1999, 1, 1), max_value=datetime(2030, 1, 1)).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    ),
    st.sampled_from(
        [
            "2026-11-25T21:15:37.000Z",
            "2026-11-25T21:15:37Z",
            "2026-11-25T21:15:37+00:00",
            "2026-11-25T21:15:37+01:00",
            "2026-11-25T21:15:37-00:30",
            " 2026-11-25T21:15:37Z",
            "2026-11-25T21:15:37Z ",
            "2026-11-25\x0721:15:37Z",  # any single character may separate date and time
            "2026-11-25 21:15:37Z",
            "2026-11-25\u00a021:15:37Z",
            "2026-11-27T12:00:00Z",  # a day ahead and a bit: an event time out of range, a planned one not
            "1999-12-31T23:59:59Z",
            "2000-01-01T00:00:00Z",
            "2026-11-25",
            "yesterday",
            "",
        ]
    ),
    st.text(max_size=30),
)


@given(value=times, planned=st.booleans())
@settings(max_examples=500, deadline=None)
def test_time_at_decides_as_the_careful_reading(value: str, planned: bool) -> None:
    doc = {"a": {"when": value}}
    quick = _outcome(lambda: time_at(doc, "a.when", WHAT, now=NOW, planned=planned))
    assert quick == _outcome(lambda: _careful(value, planned=planned))


def test_time_at_reads_a_planned_date_a_year_ahead_and_no_event_time_past_a_day() -> None:
    ahead = (NOW + timedelta(days=300)).isoformat()
    assert time_at({"t": ahead}, "t", WHAT, now=NOW, planned=True) == NOW + timedelta(days=300)
    with pytest.raises(InvalidInput) as err:
        time_at({"t": ahead}, "t", WHAT, now=NOW)
    assert err.value.reason == "TIME_OUT_OF_RANGE" and f"{WHAT}: t" in str(err.value)
