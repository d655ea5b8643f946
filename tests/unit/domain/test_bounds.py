"""The bounds, one table per kind of value: what passes, and the reason code of what does not."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cancelguard.domain import bounds
from cancelguard.domain import model as m
from cancelguard.domain.bounds import Reason

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("114-1234567-1234567", None),
        ("A3TH9S8BH6GOGM", None),
        ("x" * 64, None),
        ("", Reason.MISSING_FIELD),
        ("x" * 65, Reason.BAD_IDENTIFIER),
        ("ATVPDKIKX0DER ", Reason.BAD_IDENTIFIER),
        (" ATVPDKIKX0DER", Reason.BAD_IDENTIFIER),
        ("a\x00b", Reason.BAD_IDENTIFIER),
        ("a\ud800", Reason.BAD_IDENTIFIER),
        ("café", Reason.BAD_IDENTIFIER),
        (123, Reason.BAD_IDENTIFIER),
        (None, Reason.BAD_IDENTIFIER),
    ],
)
def test_identifiers(value: object, reason: Reason | None) -> None:
    if reason is None:
        assert bounds.identifier(value, "id") == value
    else:
        with pytest.raises(m.InvalidInput) as err:
            bounds.identifier(value, "id")
        assert err.value.reason == reason.value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", None),
        ("Changed my mind — trop cher, 高い", None),
        ("tab\tinside", Reason.BAD_TEXT),
        ("bell\x07", Reason.BAD_TEXT),
        ("c1\x85", Reason.BAD_TEXT),
        ("lone \udc00", Reason.BAD_TEXT),
        ("x" * 1001, Reason.BAD_TEXT),
        (b"bytes", Reason.BAD_TEXT),
    ],
)
def test_text(value: object, reason: Reason | None) -> None:
    if reason is None:
        assert bounds.text(value, "t") == value
    else:
        with pytest.raises(m.InvalidInput) as err:
            bounds.text(value, "t")
        assert err.value.reason == reason.value


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (0, True),
        (1, True),
        (1_000_000, True),
        (-1, False),
        (1_000_001, False),
        (2**31, False),
        (True, False),
        (1.0, False),
        ("3", False),
    ],
)
def test_quantities(value: object, ok: bool) -> None:
    if ok:
        assert bounds.quantity(value, "q") == value
    else:
        with pytest.raises(m.InvalidInput) as err:
            bounds.quantity(value, "q")
        assert err.value.reason == Reason.OUT_OF_RANGE.value


@pytest.mark.parametrize(
    ("value", "check", "ok"),
    [
        (datetime(2000, 1, 1, tzinfo=UTC), bounds.event_time, True),
        (datetime(1999, 12, 31, 23, 59, tzinfo=UTC), bounds.event_time, False),
        (datetime(1970, 1, 19, tzinfo=UTC), bounds.event_time, False),
        (NOW + timedelta(hours=23), bounds.event_time, True),
        (NOW + timedelta(days=2), bounds.event_time, False),
        (NOW + timedelta(days=300), bounds.planned_time, True),
        (NOW + timedelta(days=400), bounds.planned_time, False),
        (datetime(2999, 1, 1, tzinfo=UTC), bounds.planned_time, False),
    ],
)
def test_times(value: datetime, check: object, ok: bool) -> None:
    assert callable(check)
    if ok:
        assert check(value, "at", now=NOW) == value
    else:
        with pytest.raises(m.InvalidInput) as err:
            check(value, "at", now=NOW)
        assert err.value.reason == Reason.TIME_OUT_OF_RANGE.value


def _event(**body: object) -> m.OrderEvent:
    snapshot = {"status": m.OrderStatus.UNSHIPPED, "channel": m.Channel.MFN, "purchased_at": NOW, **body}
    return m.OrderEvent(
        "e1",
        m.OrderKey("S", "ATVPDKIKX0DER", "O"),
        m.Source.ORDER_CHANGE,
        NOW,
        NOW,
        m.OrderSnapshot(**snapshot),
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (_event(), None),
        (_event(purchased_at=None), Reason.MISSING_FIELD),
        (_event(items=(m.ItemObservation("I\x00"),)), Reason.BAD_IDENTIFIER),
        (_event(items=(m.ItemObservation("I", quantity_ordered=2**31),)), Reason.OUT_OF_RANGE),
        (_event(items=(m.ItemObservation("I", seller_sku="\ud800"),)), Reason.BAD_TEXT),
        (_event(latest_ship_at=datetime(2999, 1, 1, tzinfo=UTC)), Reason.TIME_OUT_OF_RANGE),
    ],
)
def test_whole_events(event: m.OrderEvent, reason: Reason | None) -> None:
    if reason is None:
        assert bounds.check_event(event, now=NOW) is event
    else:
        with pytest.raises(m.InvalidInput) as err:
            bounds.check_event(event, now=NOW)
        assert err.value.reason == reason.value


@given(st.text(max_size=100))
def test_any_text_is_accepted_or_refused_with_a_reason(value: str) -> None:
    for check in (bounds.identifier, bounds.text):
        try:
            check(value, "f")
        except m.InvalidInput as err:
            assert err.reason in {r.value for r in Reason}
        else:  # what passes survives UTF-8 (Kafka, protobuf) and Postgres text
            assert "\x00" not in value
            value.encode("utf-8")


_EDGES = st.sampled_from(
    ["", " ", "!", "~", "\x7f", "\x1f", "\x80", "\x9f", "\xa0", "é", "\ud800", "\t", "A" * 64]
)


@given(value=st.text(max_size=70) | st.lists(_EDGES, max_size=70).map("".join))
def test_the_quick_predicates_say_what_the_bounds_say(value: str) -> None:
    """`is_identifier` and `is_text` (str methods) agree with the regexes that define the bounds."""
    as_identifier = (
        0 < len(value) <= bounds.MAX_IDENTIFIER and bounds._IDENTIFIER.fullmatch(value) is not None
    )
    assert bounds.is_identifier(value) == as_identifier
    assert bounds.is_text(value, 64) == (len(value) <= 64 and bounds._BAD_CHAR.search(value) is None)
