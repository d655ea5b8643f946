"""The domain `Order` <-> the bytes stored in `orders.fact`, and the JSON of the previous version.

Version 2 (written now): one version byte, then a JSON array of positional fields with times as integer
microseconds since the Unix epoch. Positional arrays and integer times are what make it fast: no keys,
no ISO parsing, about 60% of the bytes of version 1 (the event ids are most of what is left). Every
field round-trips exactly (tested), so folding more events into a stored order gives the same state as
folding everything from the start.

Version 1 (read only): the JSON document with short keys that the previous release kept in
`orders.state`. A rolling deploy meets rows of both kinds: `decode_stored` reads either, and the next
write of an order rewrites it as version 2.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from cancelguard.domain import model as m

Json = dict[str, Any]

VERSION = 2
_VERSION_BYTE = bytes([VERSION])
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode  # json.dumps makes one per call

_CHANNELS = {c.value: c for c in m.Channel}
_STATUSES = {s.value: s for s in m.OrderStatus}
_SOURCES = {s.value: s for s in m.Source}
_BY = {b.value: b for b in m.CancelledBy}
_ATTRIBUTION = {a.value: a for a in m.AttributionSource}


class UnknownStateVersion(ValueError):
    """A row written by a newer release than this one: roll forward, not back."""


# --- version 2 -----------------------------------------------------------------------------------


def _us(dt: datetime) -> int:
    return (dt - _EPOCH) // _US


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(0, 0, us)  # positional: twice as fast as keywords


def _opt_us(dt: datetime | None) -> int | None:
    return None if dt is None else (dt - _EPOCH) // _US


def _opt_at(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(0, 0, us)


def _req(r: m.FormalRequest | None) -> list[Any] | None:
    if r is None:
        return None
    reason = r.reason
    return [
        r.flag.value,
        _us(r.flag.stamp.at),
        r.flag.stamp.event_id,
        _opt_us(r.first_requested_at),
        None if reason is None else [reason.value, _us(reason.stamp.at), reason.stamp.event_id],
        sorted(s.value for s in r.sources),
    ]


def _unreq(v: list[Any] | None) -> m.FormalRequest | None:
    if v is None:
        return None
    reason = v[4]
    return m.FormalRequest(
        m.build_stamped(v[0], m.build_stamp(_at(v[1]), v[2])),
        _opt_at(v[3]),
        None if reason is None else m.build_stamped(reason[0], m.build_stamp(_at(reason[1]), reason[2])),
        frozenset(_SOURCES[s] for s in v[5]),
    )


def _reg(r: m.Stamped[Any] | None, value: Any) -> list[Any] | None:
    return None if r is None else [value, _us(r.stamp.at), r.stamp.event_id]


def encode(o: m.Order) -> bytes:
    items = []
    for i in o.items.values():
        cx = i.cancellation
        items.append(
            [
                i.order_item_id,
                _reg(i.seller_sku, i.sku),
                i.quantity_ordered,
                i.quantity_shipped,
                _req(i.formal_request),
                None
                if cx is None
                else [cx.cancelled_by.value, cx.reason, _us(cx.stamp.at), cx.stamp.event_id, cx.source.value],
            ]
        )
    ch, st, sb = o.channel_obs, o.status_obs, o.ship_by_obs
    doc = [
        _reg(ch, ch.value.value if ch else None),
        _reg(st, st.value.value if st else None),
        _reg(sb, _us(sb.value) if sb else None),
        _opt_us(o.purchased_at),
        _opt_us(o.seen_pending_at),
        _opt_us(o.left_pending_at),
        _opt_us(o.canceled_at),
        _opt_us(o.label_purchased_at),
        _req(o.order_formal_request),
        items,
        [[_us(r.requested_at), r.message_id, r.language, r.order_item_ids] for r in o.informal_requests],
        [[_us(c.submitted_at), c.reason, c.order_item_ids, c.feed_id] for c in o.seller_cancels],
    ]
    return _VERSION_BYTE + _dumps(doc).encode()


def decode(key: m.OrderKey, data: bytes) -> m.Order:
    if data[0] != VERSION:
        raise UnknownStateVersion(f"order state version {data[0]}; this release reads 1 and {VERSION}")
    ch, st, sb, pa, sp, lp, ca, lb, ofr, raw_items, ir, sc = json.loads(data[1:])
    items = {}
    for oid, sku, qo, qs, fr, cx in raw_items:
        items[oid] = m.build_item(
            oid,
            None if sku is None else m.build_stamped(sku[0], m.build_stamp(_at(sku[1]), sku[2])),
            qo,
            qs,
            _unreq(fr),
            None
            if cx is None
            else m.ItemCancellation(_BY[cx[0]], cx[1], m.build_stamp(_at(cx[2]), cx[3]), _ATTRIBUTION[cx[4]]),
        )
    return m.build_order(
        key,
        None if ch is None else m.build_stamped(_CHANNELS[ch[0]], m.build_stamp(_at(ch[1]), ch[2])),
        None if st is None else m.build_stamped(_STATUSES[st[0]], m.build_stamp(_at(st[1]), st[2])),
        None if sb is None else m.build_stamped(_at(sb[0]), m.build_stamp(_at(sb[1]), sb[2])),
        _opt_at(pa),
        _opt_at(sp),
        _opt_at(lp),
        _opt_at(ca),
        _opt_at(lb),
        _unreq(ofr),
        items,
        tuple(m.InformalRequest(_at(r[0]), r[1], r[2], tuple(r[3])) for r in ir),
        tuple(m.SellerCancel(_at(c[0]), c[1], tuple(c[2]), c[3]) for c in sc),
    )


def decode_stored(key: m.OrderKey, fact: bytes | None, legacy: Json | None) -> m.Order:
    """An order row as stored by this release (`fact`) or by the previous one (`state`, JSON)."""
    if fact is not None:
        return decode(key, fact)
    if legacy is None:
        raise ValueError(f"order {key} has neither a fact nor a legacy state")
    return order_from_json(key, legacy)


# --- version 1: read only ------------------------------------------------------------------------


def _t(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def _unreg(v: list[Any] | None, convert: Any = lambda x: x) -> m.Stamped[Any] | None:
    if v is None:
        return None
    return m.Stamped(convert(v[0]), m.Stamp(datetime.fromisoformat(v[1]), v[2]))


def _request_v1(r: m.FormalRequest | None) -> Json | None:
    if r is None:
        return None
    return {
        "flag": _reg_v1(r.flag),
        "first": _t(r.first_requested_at),
        "reason": _reg_v1(r.reason),
        "src": sorted(s.value for s in r.sources),
    }


def _reg_v1(r: m.Stamped[Any] | None, value: Any = None) -> list[Any] | None:
    if r is None:
        return None
    return [r.value if value is None else value, r.stamp.at.isoformat(), r.stamp.event_id]


def _unrequest(v: Json | None) -> m.FormalRequest | None:
    if v is None:
        return None
    flag = _unreg(v["flag"])
    assert flag is not None
    return m.FormalRequest(
        flag, _dt(v["first"]), _unreg(v["reason"]), frozenset(m.Source(s) for s in v["src"])
    )


def order_to_json(o: m.Order) -> Json:
    """Version 1, as the previous release wrote it: kept to test that its rows still read."""
    return {
        "ch": _reg_v1(o.channel_obs, o.channel.value if o.channel else None),
        "st": _reg_v1(o.status_obs, o.status.value if o.status else None),
        "sb": _reg_v1(o.ship_by_obs, _t(o.latest_ship_at)),
        "pa": _t(o.purchased_at),
        "sp": _t(o.seen_pending_at),
        "lp": _t(o.left_pending_at),
        "ca": _t(o.canceled_at),
        "lb": _t(o.label_purchased_at),
        "ofr": _request_v1(o.order_formal_request),
        "it": [
            {
                "id": i.order_item_id,
                "sku": _reg_v1(i.seller_sku),
                "qo": i.quantity_ordered,
                "qs": i.quantity_shipped,
                "fr": _request_v1(i.formal_request),
                "cx": None
                if i.cancellation is None
                else [
                    i.cancellation.cancelled_by.value,
                    i.cancellation.reason,
                    i.cancellation.stamp.at.isoformat(),
                    i.cancellation.stamp.event_id,
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
