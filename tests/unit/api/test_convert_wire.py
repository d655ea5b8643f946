"""The API's hand-made wire pieces (cached messages are sent by concatenation) against protobuf's own."""

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from google.protobuf.wrappers_pb2 import BytesValue
from hypothesis import given
from hypothesis import strategies as st

from cancelguard.api import convert
from cancelguard.v1 import metrics_pb2, orders_pb2

TIMES = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC))


@given(st.binary(min_size=1, max_size=40_000))  # lengths of one, two and three bytes
def test_an_embedded_field_is_what_protobuf_writes(payload: bytes) -> None:
    assert convert.embedded(1, payload) == BytesValue(value=payload).SerializeToString()


@given(TIMES)
def test_timestamp_bytes_are_a_serialized_timestamp(dt: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(dt)
    assert convert.timestamp_bytes(dt) == expected.SerializeToString()
    # the rate's computed_at (field 12), appended to a cached rate message
    rate = metrics_pb2.CancellationRate(computed_at=expected)
    assert convert.embedded(12, convert.timestamp_bytes(dt)) == rate.SerializeToString()


def test_a_page_made_of_cached_orders_parses_as_the_response() -> None:
    orders = [orders_pb2.Order(amazon_order_id=f"111-{n:07d}", seller_account="A" * n) for n in range(300)]
    page = b"".join(convert.embedded(1, o.SerializeToString()) for o in orders)
    page += convert.embedded(2, b"next")
    parsed = orders_pb2.ListCancellationRequestsResponse.FromString(page)
    assert list(parsed.orders) == orders and parsed.next_page_token == "next"
