"""The API's hand-made wire pieces (cached messages are sent by concatenation) against protobuf's own."""

from datetime import UTC, datetime

from google.protobuf.wrappers_pb2 import BytesValue
from hypothesis import example, given
from hypothesis import strategies as st

from cancelguard.api import convert
from cancelguard.v1 import metrics_pb2, orders_pb2

TIMES = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC))


@given(st.binary(min_size=1, max_size=40_000))  # lengths of one, two and three bytes
def test_an_embedded_field_is_what_protobuf_writes(payload: bytes) -> None:
    assert convert.embedded(1, payload) == BytesValue(value=payload).SerializeToString()


@given(st.integers(min_value=0, max_value=253_402_300_799_999_999_999))  # 1970 to the end of 9999
@example(0)  # no seconds and no nanos: proto3 writes neither
@example(7)  # no seconds
@example(1_700_000_000_000_000_000)  # no nanos
@example(1_700_000_000_999_999_999)  # after one with the same second: the second's bytes are reused
@example(1_700_000_000_268_435_455)  # nanos in four bytes: 2**28 - 1
@example(1_700_000_000_268_435_456)  # and in five, from 2**28
@example(268_435_456)  # five bytes of nanos, no seconds
def test_computed_at_appended_to_a_rate_is_the_rate_with_it(at_ns: int) -> None:
    rest = metrics_pb2.CancellationRate(seller_account="A1", total_orders=7, rate=0.5)
    expected = metrics_pb2.CancellationRate()
    expected.CopyFrom(rest)
    expected.computed_at.seconds, expected.computed_at.nanos = divmod(at_ns, 1_000_000_000)
    assert rest.SerializeToString() + convert.rate_computed_at(at_ns) == expected.SerializeToString()
    # the tail holds nothing of an earlier call
    assert metrics_pb2.CancellationRate.FromString(convert.rate_computed_at(at_ns)) == (
        metrics_pb2.CancellationRate(computed_at=expected.computed_at)
    )


@given(TIMES)
def test_epoch_nanoseconds_go_both_ways(dt: datetime) -> None:
    since = dt - datetime(1970, 1, 1, tzinfo=UTC)
    micros = (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds
    assert convert.epoch_ns(dt) == micros * 1000
    assert convert.from_epoch_ns(convert.epoch_ns(dt)) == dt


def test_a_page_made_of_cached_orders_parses_as_the_response() -> None:
    orders = [orders_pb2.Order(amazon_order_id=f"111-{n:07d}", seller_account="A" * n) for n in range(300)]
    page = b"".join(convert.embedded(1, o.SerializeToString()) for o in orders)
    page += convert.embedded(2, b"next")
    parsed = orders_pb2.ListCancellationRequestsResponse.FromString(page)
    assert list(parsed.orders) == orders and parsed.next_page_token == "next"
