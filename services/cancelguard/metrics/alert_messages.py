"""Alerts as the protobuf records of the alerts topic (`cancelguard.events.v1.Alert`), and back."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from google.protobuf.timestamp_pb2 import Timestamp

from cancelguard.domain.alerts import Direction, Level, Watched
from cancelguard.domain.policy import CancellationPolicy
from cancelguard.events.v1 import alert_pb2 as pb

if TYPE_CHECKING:
    from cancelguard.metrics.store import AmazonFigure

_LEVEL = {Level.WARNING: pb.LEVEL_WARNING, Level.THRESHOLD: pb.LEVEL_THRESHOLD}
_DIRECTION = {Direction.UP: pb.DIRECTION_UP, Direction.DOWN: pb.DIRECTION_DOWN}


def _ts(dt: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(dt)
    return ts


def _alert(alert_id: str, seller: str, marketplace_id: str, at: datetime) -> pb.Alert:
    return pb.Alert(
        alert_id=alert_id, seller_account=seller, marketplace_id=marketplace_id, raised_at=_ts(at)
    )


def rate_crossing(
    alert_id: str,
    seller: str,
    marketplace_id: str,
    at: datetime,
    watched: Watched,
    level: Level,
    direction: Direction,
    cancellations: int,
    orders: int,
    policy: CancellationPolicy,
) -> bytes:
    msg = _alert(alert_id, seller, marketplace_id, at)
    msg.rate_crossing.CopyFrom(
        pb.RateCrossing(
            window=pb.ALERT_WINDOW_LIVE if watched.days == 0 else pb.ALERT_WINDOW_AMAZON_ALIGNED,
            window_days=watched.days,
            window_start=_ts(watched.window.start),
            window_end=_ts(watched.window.end),
            level=_LEVEL[level],
            direction=_DIRECTION[direction],
            cancelled_orders=cancellations,
            total_orders=orders,
            rate=cancellations / orders if orders else 0.0,
            level_rate=float(policy.warning if level is Level.WARNING else policy.threshold),
        )
    )
    return msg.SerializeToString()


def suppression_risk(
    alert_id: str, seller: str, marketplace_id: str, at: datetime, sku: str, first: str, second: str
) -> bytes:
    msg = _alert(alert_id, seller, marketplace_id, at)
    msg.suppression_risk.CopyFrom(pb.SuppressionRisk(seller_sku=sku, amazon_order_ids=[first, second]))
    return msg.SerializeToString()


def amazon_difference(
    alert_id: str,
    seller: str,
    marketplace_id: str,
    at: datetime,
    figure: AmazonFigure,
    tolerance: Decimal,
    direction: Direction,
) -> bytes:
    msg = _alert(alert_id, seller, marketplace_id, at)
    msg.amazon_difference.CopyFrom(
        pb.AmazonDifference(
            window_start=_ts(figure.window_start),
            window_end=_ts(figure.window_end),
            amazon_rate=float(figure.amazon_rate),
            our_rate=float(figure.our_rate),
            amazon_cancelled_orders=figure.amazon_cancellations,
            amazon_total_orders=figure.amazon_orders,
            our_cancelled_orders=figure.our_cancellations,
            our_total_orders=figure.our_orders,
            tolerance=float(tolerance),
            direction=_DIRECTION[direction],
        )
    )
    return msg.SerializeToString()


def decode(data: bytes) -> pb.Alert:
    msg = pb.Alert()
    msg.ParseFromString(data)
    return msg


def describe(msg: pb.Alert) -> str:
    """One line for people (the demo, logs)."""
    which = msg.WhichOneof("body")
    if which == "rate_crossing":
        c = msg.rate_crossing
        window = "live 168 h" if c.window == pb.ALERT_WINDOW_LIVE else f"Amazon {c.window_days} days"
        level = pb.Level.Name(c.level).removeprefix("LEVEL_").lower()
        way = "reached" if c.direction == pb.DIRECTION_UP else "back under"
        return (
            f"{window}: {c.cancelled_orders}/{c.total_orders} = {c.rate:.2%} {way} the {level} level "
            f"({c.level_rate:.1%})"
        )
    if which == "suppression_risk":
        s = msg.suppression_risk
        return f"SKU {s.seller_sku} at offer suppression risk ({', '.join(s.amazon_order_ids)})"
    if which == "amazon_difference":
        d = msg.amazon_difference
        way = "differs from" if d.direction == pb.DIRECTION_UP else "agrees again with"
        return (
            f"our {d.our_rate:.2%} {way} Amazon's {d.amazon_rate:.2%} for "
            f"{d.window_start.ToDatetime():%m-%d}..{d.window_end.ToDatetime():%m-%d} (tolerance"
            f" {d.tolerance:.1%})"
        )
    return f"alert {msg.alert_id}"
