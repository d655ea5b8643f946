"""Domain events (order and account events) <-> the protobuf records on the order-events topic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from cancelguard.domain import model as m
from cancelguard.domain.bounds import Reason
from cancelguard.events.v1 import order_event_pb2 as pb

_SOURCE_TO_PB = {s: pb.Source.Value(f"SOURCE_{s.value}") for s in m.Source}
_SOURCE_FROM_PB = {v: k for k, v in _SOURCE_TO_PB.items()}
_STATUS_TO_PB = {s: pb.OrderStatus.Value(f"ORDER_STATUS_{s.name}") for s in m.OrderStatus}
_STATUS_FROM_PB = {v: k for k, v in _STATUS_TO_PB.items()}
_CHANNEL_TO_PB = {c: pb.FulfillmentChannel.Value(f"FULFILLMENT_CHANNEL_{c.name}") for c in m.Channel}
_CHANNEL_FROM_PB = {v: k for k, v in _CHANNEL_TO_PB.items()}
_BY_TO_PB: dict[m.CancelledBy, int] = {
    b: pb.CancelledBy.Value(f"CANCELLED_BY_{b.name}") for b in m.CancelledBy if b is not m.CancelledBy.UNKNOWN
}
_BY_FROM_PB = {v: k for k, v in _BY_TO_PB.items()}
_KIND_TO_PB = {k: pb.RequestKind.Value(f"REQUEST_KIND_{k.name}") for k in m.RequestKind}
_KIND_FROM_PB = {v: k for k, v in _KIND_TO_PB.items()}
_RATE_STATUS_TO_PB = {
    s: pb.AmazonRateStatus.Value(f"AMAZON_RATE_STATUS_{s.name}") for s in m.AmazonRateStatus
}
_RATE_STATUS_FROM_PB = {v: k for k, v in _RATE_STATUS_TO_PB.items()}
_CONDITION_TO_PB = {c: pb.TargetCondition.Value(f"TARGET_CONDITION_{c.name}") for c in m.TargetCondition}
_CONDITION_FROM_PB = {v: k for k, v in _CONDITION_TO_PB.items()}
# bodies about a seller account x marketplace: their records carry no amazon_order_id
_ACCOUNT_BODIES = frozenset({"amazon_reported_rate"})


_NOT_AN_EVENT = Reason.NOT_AN_EVENT.value
_MISSING = Reason.MISSING_FIELD.value


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _dt(ts: Timestamp) -> datetime:
    # epoch arithmetic: several times faster than Timestamp.ToDatetime, and this runs for every time of
    # every event; microseconds, as ToDatetime gives
    seconds, nanos = ts.seconds, ts.nanos
    try:
        if not 0 <= nanos < 1_000_000_000:
            raise ValueError(f"nanos {nanos} out of range")
        return _EPOCH + timedelta(0, seconds, nanos // 1000)  # positional: twice as fast as keywords
    except (ValueError, OverflowError) as exc:  # seconds beyond year 1..9999, or nanos out of range
        raise m.InvalidInput(
            f"order event has a timestamp out of range: {exc}", Reason.TIME_OUT_OF_RANGE.value
        ) from None


def _set_ts(target: Timestamp, dt: datetime) -> None:
    """What `Timestamp.FromDatetime` sets for an aware time, without its time tuple round trip (the
    encode runs once per event on the ingestion path)."""
    delta = dt - _EPOCH
    target.seconds = delta.days * 86400 + delta.seconds
    target.nanos = delta.microseconds * 1000


def encode(event: m.Event) -> bytes:
    out = pb.OrderEvent(
        event_id=event.event_id,
        seller_account=event.key.seller_account,
        marketplace_id=event.key.marketplace_id,
        source=_SOURCE_TO_PB[event.source],
    )
    _set_ts(out.occurred_at, event.occurred_at)
    _set_ts(out.observed_at, event.observed_at)
    if isinstance(event, m.AccountEvent):
        _encode_reported_rate(out.amazon_reported_rate, event.body)
        return out.SerializeToString()
    out.amazon_order_id = event.key.amazon_order_id
    body = event.body
    if isinstance(body, m.OrderSnapshot):
        snap = out.snapshot
        snap.SetInParent()  # an empty snapshot is still a snapshot
        if body.status is not None:
            snap.status = _STATUS_TO_PB[body.status]
        if body.channel is not None:
            snap.fulfillment_channel = _CHANNEL_TO_PB[body.channel]
        if body.purchased_at is not None:
            _set_ts(snap.purchased_at, body.purchased_at)
        if body.latest_ship_at is not None:
            _set_ts(snap.latest_ship_at, body.latest_ship_at)
        for item in body.items:
            i = snap.items.add(
                order_item_id=item.order_item_id,
                seller_sku=item.seller_sku,
                buyer_cancel_reason=item.buyer_cancel_reason,
                cancel_reason=item.cancel_reason,
            )
            if item.quantity_ordered is not None:
                i.quantity_ordered = item.quantity_ordered
            if item.quantity_shipped is not None:
                i.quantity_shipped = item.quantity_shipped
            if item.buyer_requested_cancel is not None:
                i.buyer_requested_cancel = item.buyer_requested_cancel
            if item.cancelled_by is not None:
                i.cancelled_by = _BY_TO_PB[item.cancelled_by]
    elif isinstance(body, m.CancellationRequested):
        out.cancellation_requested.CopyFrom(
            pb.CancellationRequested(
                kind=_KIND_TO_PB[body.kind],
                order_item_ids=body.order_item_ids,
                reason=body.reason,
                language=body.language,
                message_id=body.message_id,
            )
        )
    elif isinstance(body, m.SellerCancellationSubmitted):
        out.seller_cancellation_submitted.CopyFrom(
            pb.SellerCancellationSubmitted(
                cancel_reason=body.cancel_reason, order_item_ids=body.order_item_ids, feed_id=body.feed_id
            )
        )
    elif isinstance(body, m.ShippingLabelPurchased):
        out.shipping_label_purchased.SetInParent()
    else:  # pragma: no cover - the body union is closed
        raise TypeError(f"unknown event body {type(body).__name__}")
    return out.SerializeToString()


def _encode_reported_rate(out: pb.AmazonReportedRate, body: m.AmazonReportedRate) -> None:
    _set_ts(out.window_from, body.window_from)
    _set_ts(out.window_to, body.window_to)
    out.order_count = body.order_count
    out.cancellation_count = body.cancellation_count
    out.rate = str(body.rate)
    out.status = _RATE_STATUS_TO_PB[body.status]
    out.target_value = str(body.target_value)
    out.target_condition = _CONDITION_TO_PB[body.target_condition]


def _decimal(text: str, event_id: str, name: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise m.InvalidInput(
            f"order event {event_id!r}: {name} {text!r} is not a number", _NOT_AN_EVENT
        ) from None
    if not value.is_finite():
        raise m.InvalidInput(
            f"order event {event_id!r}: {name} {text!r} is not a finite number", _NOT_AN_EVENT
        )
    return value


def _decode_reported_rate(r: pb.AmazonReportedRate, event_id: str) -> m.AmazonReportedRate:
    if not (r.HasField("window_from") and r.HasField("window_to")):
        raise m.InvalidInput(f"order event {event_id!r}: Amazon's reported rate has no window", _MISSING)
    if r.status not in _RATE_STATUS_FROM_PB or r.target_condition not in _CONDITION_FROM_PB:
        raise m.InvalidInput(
            f"order event {event_id!r}: Amazon's reported rate has no status or target", _MISSING
        )
    return m.AmazonReportedRate(
        window_from=_dt(r.window_from),
        window_to=_dt(r.window_to),
        order_count=r.order_count,
        cancellation_count=r.cancellation_count,
        rate=_decimal(r.rate, event_id, "rate"),
        status=_RATE_STATUS_FROM_PB[r.status],
        target_value=_decimal(r.target_value, event_id, "target_value"),
        target_condition=_CONDITION_FROM_PB[r.target_condition],
    )


# the decoder builds every event without __init__ (see model.assembler): its times are UTC by construction
_ORDER_EVENT = m.assembler(m.OrderEvent)
_ORDER_KEY = m.assembler(m.OrderKey)
_SNAPSHOT = m.assembler(m.OrderSnapshot)
_ITEM = m.assembler(m.ItemObservation)


def _item(i: pb.ItemSnapshot) -> m.ItemObservation:
    has = i.HasField
    return _ITEM(
        i.order_item_id,
        i.seller_sku,
        i.quantity_ordered if has("quantity_ordered") else None,
        i.quantity_shipped if has("quantity_shipped") else None,
        i.buyer_requested_cancel if has("buyer_requested_cancel") else None,
        i.buyer_cancel_reason,
        _BY_FROM_PB.get(i.cancelled_by),
        i.cancel_reason,
    )


def decode(data: bytes) -> m.Event:
    """Bytes from the topic -> a domain event. Raises InvalidInput with the reason when it cannot."""
    msg = pb.OrderEvent()
    try:
        msg.ParseFromString(data)
    except DecodeError as exc:
        raise m.InvalidInput(f"not a cancelguard.events.v1.OrderEvent: {exc}", _NOT_AN_EVENT) from exc
    # each field is read once: every read of a protobuf field builds a new Python object
    event_id, seller, marketplace_id, order_id = (
        msg.event_id,
        msg.seller_account,
        msg.marketplace_id,
        msg.amazon_order_id,
    )
    which = msg.WhichOneof("body")
    account_level = which in _ACCOUNT_BODIES
    if not (event_id and seller and marketplace_id and (order_id or account_level)):  # names what is missing
        missing = [
            name
            for name, value in (
                ("event_id", event_id),
                ("seller_account", seller),
                ("marketplace_id", marketplace_id),
            )
            if not value
        ]
        if not account_level and not order_id:
            missing.append("amazon_order_id")
        raise m.InvalidInput(f"order event is missing {', '.join(missing)}", _MISSING)
    if account_level and order_id:
        raise m.InvalidInput(
            f"order event {event_id[:200]!r}: an account-level {which} names an order", _NOT_AN_EVENT
        )
    source = _SOURCE_FROM_PB.get(msg.source)
    if source is None:
        raise m.InvalidInput(f"order event {event_id[:200]!r} has no source", _MISSING)
    if not msg.HasField("occurred_at"):
        raise m.InvalidInput(f"order event {event_id[:200]!r} has no occurred_at (Amazon's time)", _MISSING)
    occurred_at = _dt(msg.occurred_at)
    observed_at = _dt(msg.observed_at) if msg.HasField("observed_at") else occurred_at
    if account_level:
        return m.AccountEvent(
            event_id,
            m.AccountKey(seller, marketplace_id),
            source,
            occurred_at,
            observed_at,
            _decode_reported_rate(msg.amazon_reported_rate, event_id),
        )
    body: m.EventBody
    if which == "snapshot":
        body = _snapshot(msg.snapshot)
    elif which == "cancellation_requested":
        r = msg.cancellation_requested
        if r.kind not in _KIND_FROM_PB:
            raise m.InvalidInput(
                f"order event {event_id[:200]!r}: cancellation request has no kind", _MISSING
            )
        body = m.CancellationRequested(
            _KIND_FROM_PB[r.kind], tuple(r.order_item_ids), r.reason, r.language, r.message_id
        )
    elif which == "seller_cancellation_submitted":
        c = msg.seller_cancellation_submitted
        body = m.SellerCancellationSubmitted(c.cancel_reason, tuple(c.order_item_ids), c.feed_id)
    elif which == "shipping_label_purchased":
        body = m.ShippingLabelPurchased()
    else:
        raise m.InvalidInput(f"order event {event_id[:200]!r} has no body", _MISSING)
    return _ORDER_EVENT(
        event_id, _ORDER_KEY(seller, marketplace_id, order_id), source, occurred_at, observed_at, body
    )


def _snapshot(s: pb.OrderSnapshot) -> m.OrderSnapshot:
    has = s.HasField
    return _SNAPSHOT(
        _STATUS_FROM_PB.get(s.status),
        _CHANNEL_FROM_PB.get(s.fulfillment_channel),
        _dt(s.purchased_at) if has("purchased_at") else None,
        _dt(s.latest_ship_at) if has("latest_ship_at") else None,
        tuple(map(_item, s.items)),
    )
