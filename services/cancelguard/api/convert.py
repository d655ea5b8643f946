"""Domain objects -> API messages (cancelguard.v1). Pure."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from cancelguard.api.records import FeedRow
from cancelguard.domain import model as m
from cancelguard.domain.actions import Recommendation
from cancelguard.domain.attribution import Attribution
from cancelguard.domain.policy import CancellationPolicy
from cancelguard.domain.requests import open_request
from cancelguard.domain.windows import CancellationRate, WindowKind
from cancelguard.metrics.store import AmazonFigure
from cancelguard.v1 import metrics_pb2, orders_pb2

_STATUS: dict[m.OrderStatus, Any] = {
    s: orders_pb2.OrderStatus.Value(f"ORDER_STATUS_{s.name}") for s in m.OrderStatus
}
_CHANNEL: dict[m.Channel, Any] = {
    c: orders_pb2.FulfillmentChannel.Value(f"FULFILLMENT_CHANNEL_{c.name}") for c in m.Channel
}
_BY: dict[m.CancelledBy, Any] = {
    b: orders_pb2.CancelledBy.Value(f"CANCELLED_BY_{b.name}") for b in m.CancelledBy
}
_WINDOW = {k: metrics_pb2.WindowKind.Value(f"WINDOW_KIND_{k.name}") for k in WindowKind}
WINDOW_FROM_PB = {v: k for k, v in _WINDOW.items()}


def timestamp(dt: datetime | None) -> Timestamp | None:
    if dt is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(dt)
    return ts


def order_message(
    order: m.Order,
    attribution: Attribution,
    action: Recommendation,
    *,
    answered_at: datetime | None = None,
    answered_by: str = "",
) -> orders_pb2.Order:
    msg = orders_pb2.Order(
        seller_account=order.key.seller_account,
        marketplace_id=order.key.marketplace_id,
        amazon_order_id=order.key.amazon_order_id,
        status=_STATUS[order.status] if order.status else orders_pb2.ORDER_STATUS_UNSPECIFIED,
        fulfillment_channel=(
            _CHANNEL[order.channel] if order.channel else orders_pb2.FULFILLMENT_CHANNEL_UNSPECIFIED
        ),
        purchased_at=timestamp(order.purchased_at),
        latest_ship_at=timestamp(order.latest_ship_at),
        label_purchased=order.has_label,
        attribution=orders_pb2.Attribution(
            verdict=orders_pb2.Attribution.Verdict.Value(f"VERDICT_{attribution.verdict.value}"),
            rule=attribution.rule.value,
            cancelled_by=(
                _BY[attribution.cancelled_by]
                if attribution.cancelled_by
                else orders_pb2.CANCELLED_BY_UNSPECIFIED
            ),
            cancel_reason=attribution.cancel_reason,
            source=attribution.source.value,
            needs_review=attribution.needs_review,
            explanation=attribution.explanation,
            cancelled_at=timestamp(attribution.cancelled_at),
        ),
        recommended_action=action_message(action),
    )
    for item in sorted(order.items.values(), key=lambda i: i.order_item_id):
        request = item.formal_request
        reason = request.reason.value if request is not None and request.reason is not None else ""
        msg.items.add(
            order_item_id=item.order_item_id,
            seller_sku=item.sku,
            quantity_ordered=item.quantity_ordered or 0,
            quantity_shipped=item.quantity_shipped,
            buyer_requested_cancel=request is not None and request.is_open,
            buyer_cancel_reason=reason,
            cancelled_by=_BY[item.cancellation.cancelled_by] if item.cancellation else 0,
            cancel_reason=item.cancellation.reason if item.cancellation else "",
        )
    request_msg = cancellation_request(order, answered_at=answered_at, answered_by=answered_by)
    if request_msg is not None:
        msg.cancellation_request.CopyFrom(request_msg)
    return msg


def action_message(action: Recommendation) -> orders_pb2.RecommendedAction:
    return orders_pb2.RecommendedAction(
        code=orders_pb2.RecommendedAction.Code.Value(f"CODE_{action.code.value}"),
        cancel_reason=action.cancel_reason,
        order_item_ids=action.order_item_ids,
        counts_against_cr=action.counts_against_cr,
        explanation=action.explanation,
        reply_language=action.reply_language,
        reply_text=action.reply_text,
    )


def day_timestamp(day: date | None) -> Timestamp | None:
    """A calendar day as its midnight UTC."""
    return timestamp(datetime.combine(day, time(), UTC)) if day is not None else None


def cancellation_request(
    order: m.Order, *, answered_at: datetime | None = None, answered_by: str = ""
) -> orders_pb2.CancellationRequest | None:
    """The buyer's request (a formal one if there ever was one); `open` is the one rule of
    `domain.requests`, so the list of open requests and each order's own answer agree."""
    kind = orders_pb2.CancellationRequest.Kind
    still_open = open_request(order)
    if order.has_formal_request:
        sources = sorted({s.value for r in order.formal_requests() for s in r.sources})
        msg = orders_pb2.CancellationRequest(
            kind=kind.KIND_FORMAL,
            open=still_open is not None and still_open.kind is m.RequestKind.FORMAL,
            buyer_reason=order.buyer_cancel_reason,
            requested_at=timestamp(order.first_formal_request_at),
            seen_in=sources,
        )
    elif order.informal_requests:
        first = order.informal_requests[0]
        msg = orders_pb2.CancellationRequest(
            kind=kind.KIND_INFORMAL,
            open=still_open is not None,
            requested_at=timestamp(first.requested_at),
            seen_in=[m.Source.BUYER_MESSAGE.value],
            language=first.language,
        )
    else:
        return None
    if answered_at is not None:
        msg.answered_at.CopyFrom(timestamp(answered_at))
        msg.answered_by = answered_by
    return msg


def rate_message(
    seller_account: str,
    marketplace_id: str,
    rate: CancellationRate,
    policy: CancellationPolicy,
    computed_at: datetime | None,
) -> metrics_pb2.CancellationRate:
    return metrics_pb2.CancellationRate(
        seller_account=seller_account,
        marketplace_id=marketplace_id,
        window_kind=_WINDOW[rate.window.kind],
        window_start=timestamp(rate.window.start),
        window_end=timestamp(rate.window.end),
        cancelled_orders=rate.numerator,
        total_orders=rate.denominator,
        rate=float(rate.rate),
        status=metrics_pb2.RateStatus.Value(f"RATE_STATUS_{rate.status.value}"),
        threshold=float(policy.threshold),
        warning_level=float(policy.warning),
        computed_at=timestamp(computed_at),
    )


def amazon_message(figure: AmazonFigure) -> metrics_pb2.AmazonFigure:
    return metrics_pb2.AmazonFigure(
        cancelled_orders=figure.amazon_cancellations,
        total_orders=figure.amazon_orders,
        rate=str(figure.amazon_rate),
        status=figure.amazon_status,
        reported_at=timestamp(figure.reported_at),
        difference=str(figure.difference.quantize(Decimal("0.000001"))),
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def epoch_ns(dt: datetime) -> int:
    """`dt` in nanoseconds since the epoch (to the microsecond, as datetimes are)."""
    return (dt - _EPOCH) // _MICROSECOND * 1000


def from_epoch_ns(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


_COMPUTED_AT_TAG = bytes(
    (metrics_pb2.CancellationRate.DESCRIPTOR.fields_by_name["computed_at"].number << 3 | 2,)
)
# the second of the last call: its Timestamp field (`seconds`, 1) as bytes, and the whole computed_at up to
# the value of `nanos` (2) when that takes five bytes (from 2**28: three quarters of every second); it
# changes once a second, and the API calls this from its one event loop
_SECONDS: list[Any] = [None, b"", b""]


def rate_computed_at(at_ns: int) -> bytes:
    """A CancellationRate's computed_at alone, serialized: appended to the bytes of a rate without it, the
    message with it (wire format; the other fields come first). Written by hand: a held rate is answered
    with it on every call, and upb's setters and serializer take a third longer."""
    seconds, nanos = divmod(at_ns, 1_000_000_000)
    if seconds != _SECONDS[0]:
        field = b"\x08" + _varint(seconds) if seconds else b""  # proto3: no zero fields
        _SECONDS[:] = [seconds, field, _COMPUTED_AT_TAG + _ONE_BYTE[len(field) + 6] + field + b"\x10"]
    if nanos >= 0x10000000:  # the varint's five bytes at once (`_varint`'s loop takes 1.4 times as long)
        return _SECONDS[2] + bytes(
            (
                nanos & 0x7F | 0x80,
                nanos >> 7 & 0x7F | 0x80,
                nanos >> 14 & 0x7F | 0x80,
                nanos >> 21 & 0x7F | 0x80,
                nanos >> 28,
            )
        )
    body = _SECONDS[1] + b"\x10" + _varint(nanos) if nanos else _SECONDS[1]
    return _COMPUTED_AT_TAG + _ONE_BYTE[len(body)] + body


_ONE_BYTE = [bytes((n,)) for n in range(0x80)]


def embedded(field_number: int, payload: bytes) -> bytes:
    """`payload` as a length-delimited field of a message: concatenating such pieces is the message
    (protobuf's wire format), so cached serialized parts need no parsing to be sent again."""
    return _varint(field_number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    # one and two bytes without the loop: every tag and length here (a page pays them per order); a held
    # rate's five-byte nanos are written in `rate_computed_at` at once (the loop takes 1.4 times as long)
    if value < 0x80:
        return _ONE_BYTE[value]
    if value < 0x4000:
        return bytes((value & 0x7F | 0x80, value >> 7))
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def feed_submission_message(row: FeedRow) -> orders_pb2.FeedSubmission:
    report = row.report or {}
    return orders_pb2.FeedSubmission(
        seller_account=row.seller_account,
        marketplace_id=row.marketplace_id,
        amazon_order_id=row.amazon_order_id,
        event_id=row.event_id,
        state=orders_pb2.FeedSubmission.State.Value(f"STATE_{row.state}"),
        feed_id=row.feed_id or "",
        processing_status=row.processing_status or "",
        messages_processed=report.get("messages_processed", 0),
        messages_successful=report.get("messages_successful", 0),
        messages_with_error=report.get("messages_with_error", 0),
        messages_with_warning=report.get("messages_with_warning", 0),
        results=[
            f"{r['result_code']} {r['message_code']}: {r['description']}" for r in report.get("results", ())
        ],
        error=row.error or "",
        attempts=row.attempts,
        created_at=timestamp(row.created_at),
        updated_at=timestamp(row.updated_at),
    )
