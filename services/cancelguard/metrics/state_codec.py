"""The domain `Order` <-> the JSON document stored in `orders.state`.

Short keys keep rows small; every field round-trips exactly (tested), so folding more events into a
stored order gives the same state as folding everything from the start.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cancelguard.domain import model as m

Json = dict[str, Any]


def _t(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def _stamp(s: m.Stamp) -> list[str]:
    return [s.at.isoformat(), s.event_id]


def _unstamp(v: list[str]) -> m.Stamp:
    return m.Stamp(datetime.fromisoformat(v[0]), v[1])


def _reg(r: m.Stamped[Any] | None, value: Any = None) -> list[Any] | None:
    if r is None:
        return None
    return [r.value if value is None else value, *_stamp(r.stamp)]


def _unreg(v: list[Any] | None, convert: Any = lambda x: x) -> m.Stamped[Any] | None:
    if v is None:
        return None
    return m.Stamped(convert(v[0]), m.Stamp(datetime.fromisoformat(v[1]), v[2]))


def _request(r: m.FormalRequest | None) -> Json | None:
    if r is None:
        return None
    return {
        "flag": _reg(r.flag),
        "first": _t(r.first_requested_at),
        "reason": _reg(r.reason),
        "src": sorted(s.value for s in r.sources),
    }


def _unrequest(v: Json | None) -> m.FormalRequest | None:
    if v is None:
        return None
    flag = _unreg(v["flag"])
    assert flag is not None
    return m.FormalRequest(
        flag, _dt(v["first"]), _unreg(v["reason"]), frozenset(m.Source(s) for s in v["src"])
    )


def order_to_json(o: m.Order) -> Json:
    return {
        "ch": _reg(o.channel_obs, o.channel.value if o.channel else None),
        "st": _reg(o.status_obs, o.status.value if o.status else None),
        "sb": _reg(o.ship_by_obs, _t(o.latest_ship_at)),
        "pa": _t(o.purchased_at),
        "sp": _t(o.seen_pending_at),
        "lp": _t(o.left_pending_at),
        "ca": _t(o.canceled_at),
        "lb": _t(o.label_purchased_at),
        "ofr": _request(o.order_formal_request),
        "it": [
            {
                "id": i.order_item_id,
                "sku": _reg(i.seller_sku),
                "qo": i.quantity_ordered,
                "qs": i.quantity_shipped,
                "fr": _request(i.formal_request),
                "cx": None
                if i.cancellation is None
                else [
                    i.cancellation.cancelled_by.value,
                    i.cancellation.reason,
                    *_stamp(i.cancellation.stamp),
                    i.cancellation.source.value,
                ],
            }
            for i in o.items.values()
        ],
        "ir": [
            [_t(r.requested_at), r.message_id, r.language, list(r.order_item_ids)]
            for r in o.informal_requests
        ],
        "sc": [[_t(c.submitted_at), c.reason, list(c.order_item_ids), c.feed_id] for c in o.seller_cancels],
    }


def order_from_json(key: m.OrderKey, d: Json) -> m.Order:
    items = {}
    for i in d["it"]:
        cx = i["cx"]
        items[i["id"]] = m.Item(
            order_item_id=i["id"],
            seller_sku=_unreg(i["sku"]),
            quantity_ordered=i["qo"],
            quantity_shipped=i["qs"],
            formal_request=_unrequest(i["fr"]),
            cancellation=None
            if cx is None
            else m.ItemCancellation(
                m.CancelledBy(cx[0]),
                cx[1],
                m.Stamp(datetime.fromisoformat(cx[2]), cx[3]),
                m.AttributionSource(cx[4]),
            ),
        )
    return m.Order(
        key=key,
        channel_obs=_unreg(d["ch"], m.Channel),
        status_obs=_unreg(d["st"], m.OrderStatus),
        ship_by_obs=_unreg(d["sb"], datetime.fromisoformat),
        purchased_at=_dt(d["pa"]),
        seen_pending_at=_dt(d["sp"]),
        left_pending_at=_dt(d["lp"]),
        canceled_at=_dt(d["ca"]),
        label_purchased_at=_dt(d["lb"]),
        order_formal_request=_unrequest(d["ofr"]),
        items=items,
        informal_requests=tuple(
            m.InformalRequest(datetime.fromisoformat(r[0]), r[1], r[2], tuple(r[3])) for r in d["ir"]
        ),
        seller_cancels=tuple(
            m.SellerCancel(datetime.fromisoformat(c[0]), c[1], tuple(c[2]), c[3]) for c in d["sc"]
        ),
    )
