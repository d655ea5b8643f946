"""The bad-input table, extended to the Orders API pages the pollers read.

The simulator's answers are rewritten on the way out (`Simulator.tamper`): one order of the page per
table row is broken. Each broken order must end as a dead letter with its reason code, a message naming
the field, the operation and the order's JSON path in the answer, and no personal data; every other
order of the same page must be published; and per source, published + ignored + dead-lettered = read.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pollers_harness import accounts_for, on_sim_time, read_topic, stack, visible_versions

from cancelguard import dead_letters
from cancelguard.accounts import OrdersApi
from cancelguard.config import Settings
from cancelguard.events import codec
from cancelguard.ingestion.pollers.orders import ITEMS_NEEDED, SOURCE
from cancelguard.simulator.spapi.generator import ScenarioSpec
from cancelguard.simulator.spapi.server import Simulator, build_simulator
from cancelguard.simulator.spapi.testing import serving

pytestmark = pytest.mark.integration

WALL = datetime.now(UTC).replace(microsecond=0)
SELLER = "A2SIMSELLER02"
EU = ("A1F83G8C2ARO7P", "A1PA6795UKMFR9", "A13V1IB3VIYZZH")

Change = Callable[[dict[str, Any]], Any]


def _set(path: str, value: Any) -> Change:
    def change(doc: dict[str, Any]) -> dict[str, Any]:
        node: Any = doc
        *parents, last = path.split(".")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is DELETE:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value
        return doc

    return change


DELETE = object()

# name -> (change to one order, reason code, what the message names)
V2026_CASES: dict[str, tuple[Change, str, str]] = {
    "no createdTime": (_set("createdTime", DELETE), "MISSING_FIELD", "createdTime"),
    "createdTime in 1970": (_set("createdTime", "1970-01-19T03:58:30Z"), "TIME_OUT_OF_RANGE", "createdTime"),
    "lastUpdatedTime in 2999": (_set("lastUpdatedTime", "2999-01-01T00:00:00Z"), "TIME_OUT_OF_RANGE", ""),
    "lastUpdatedTime not a time": (_set("lastUpdatedTime", "yesterday"), "BAD_TIME", "lastUpdatedTime"),
    "unknown fulfillment status": (_set("fulfillment.fulfillmentStatus", "LOST"), "UNKNOWN_VALUE", "LOST"),
    "no fulfillment": (_set("fulfillment", DELETE), "MISSING_FIELD", "fulfillment"),
    "unknown marketplace": (_set("salesChannel.marketplaceId", "ZZZZ"), "UNKNOWN_MARKETPLACE", "ZZZZ"),
    "orderItems not a list": (_set("orderItems", {"0": 1}), "WRONG_TYPE", "orderItems"),
    "quantity of 2^31": (_set("orderItems.0.quantityOrdered", 2**31), "OUT_OF_RANGE", "quantityOrdered"),
    "lone surrogate in the SKU": (
        _set("orderItems.0.product.sellerSku", "SKU-\ud800"),
        "BAD_TEXT",
        "sellerSku",
    ),
    "NUL byte in an item id": (_set("orderItems.0.orderItemId", "1\x002"), "BAD_IDENTIFIER", "orderItemId"),
    "unknown canceller": (
        _set("orderItems.0.cancellation", {"cancellationExecution": {"cancelledBy": "ROBOT"}}),
        "UNKNOWN_VALUE",
        "ROBOT",
    ),
    "a request by someone else": (
        _set("orderItems.0.cancellation", {"cancellationRequest": {"requester": "SELLER"}}),
        "UNKNOWN_VALUE",
        "requester",
    ),
}

V0_CASES: dict[str, tuple[Change, str, str]] = {
    "no PurchaseDate": (_set("PurchaseDate", DELETE), "MISSING_FIELD", "PurchaseDate"),
    "unknown status": (_set("OrderStatus", "Lost"), "UNKNOWN_VALUE", "Lost"),
    "order id with a space": (
        lambda o: {**o, "AmazonOrderId": o["AmazonOrderId"] + " "},
        "BAD_IDENTIFIER",
        "AmazonOrderId",
    ),
    "unknown channel": (_set("FulfillmentChannel", "FBM"), "UNKNOWN_VALUE", "FBM"),
    "ship-by in 2999": (
        _set("LatestShipDate", "2999-01-01T00:00:00Z"),
        "TIME_OUT_OF_RANGE",
        "LatestShipDate",
    ),
    "an order that is no object": (lambda o: f"not an order {o['AmazonOrderId']}", "NOT_AN_OBJECT", "object"),
}
# getOrderItems answers, broken for one order each (orders whose items v0 reads: Canceled ones here)
V0_ITEM_CASES: dict[str, tuple[Change, str, str]] = {
    "negative quantity shipped": (
        _set("payload.OrderItems.0.QuantityShipped", -1),
        "OUT_OF_RANGE",
        "QuantityShipped",
    ),
    "a flag that is no boolean": (
        _set("payload.OrderItems.0.BuyerRequestedCancel.IsBuyerRequestedCancel", "perhaps"),
        "UNKNOWN_VALUE",
        "IsBuyerRequestedCancel",
    ),
    "items that are no list": (_set("payload.OrderItems", "none"), "WRONG_TYPE", "OrderItems"),
}


def _world() -> Simulator:
    sim = build_simulator(
        ScenarioSpec(WALL - timedelta(days=7), seed=9, sellers=(SELLER,), marketplaces=EU, orders_per_day=3),
        frozen=True,
    )
    sim.clock.set(WALL - timedelta(hours=1))
    on_sim_time(sim)
    return sim


def _letters(records: list[Any]) -> list[dead_letters.Described]:
    return [
        dead_letters.describe(r.partition, r.offset, r.timestamp, r.key, r.value, r.headers) for r in records
    ]


@pytest.mark.parametrize("api", [OrdersApi.V2026, OrdersApi.V0])
async def test_malformed_orders_in_a_page_are_dead_lettered_and_the_rest_published(
    settings: Settings, api: OrdersApi
) -> None:
    sim = _world()
    visible = visible_versions(sim, SELLER, datetime(2000, 1, 1, tzinfo=UTC))
    now = sim.clock.now()
    status = {o: sim.world.orders[(SELLER, o)].visible(now).status for o in visible}  # type: ignore[union-attr]
    with_items = sorted(o for o in visible if status[o] in ITEMS_NEEDED)  # v0 reads these orders' items
    others = sorted(o for o in visible if o not in with_items)
    cases = V2026_CASES if api is OrdersApi.V2026 else V0_CASES
    broken = dict(zip(others, cases, strict=False))  # order id -> case name
    item_cases = dict(zip(with_items, V0_ITEM_CASES, strict=False)) if api is OrdersApi.V0 else {}
    assert len(broken) == len(cases) and len(item_cases) == (len(V0_ITEM_CASES) if api is OrdersApi.V0 else 0)
    id_field = "orderId" if api is OrdersApi.V2026 else "AmazonOrderId"

    def tamper(op: str, body: dict[str, Any]) -> dict[str, Any]:
        if op == "orders2026.searchOrders":
            body["orders"] = [
                cases[broken[o[id_field]]][0](o) if o[id_field] in broken else o for o in body["orders"]
            ]
        elif op == "ordersV0.getOrders":
            orders = body["payload"]["Orders"]
            body["payload"]["Orders"] = [
                cases[broken[o[id_field]]][0](o) if o[id_field] in broken else o for o in orders
            ]
        elif op == "ordersV0.getOrderItems" and body["payload"]["AmazonOrderId"] in item_cases:
            body = V0_ITEM_CASES[item_cases[body["payload"]["AmazonOrderId"]]][0](body)
        return body

    sim.tamper = tamper
    async with serving(sim) as base, stack(settings) as s:
        accounts, _ = accounts_for(sim, base, {SELLER: api})
        poller = await s.poller(sim, accounts.accounts[0])
        result = await poller.poll_once(asyncio.Event())
        assert result.pages == 1 and result.read_until is not None  # a page with bad orders is no failure
        letters = _letters(await read_topic(settings, settings.dead_letter_topic))
        events = [codec.decode(r.value) for r in await read_topic(settings, settings.order_events_topic)]

    all_cases = {
        **{o: cases[c] for o, c in broken.items()},
        **{o: V0_ITEM_CASES[c] for o, c in item_cases.items()},
    }
    names = {**broken, **item_cases}
    failures = []
    by_order: dict[str, dead_letters.Described] = {}
    for d in letters:
        text = (d.value or b"").decode("utf-8", "replace")
        order_id = next((o for o in all_cases if o in text), None)
        if order_id is None:
            failures.append(f"a dead letter for no broken order: {d.reason_code} {d.reason[:120]}")
        else:
            by_order[order_id] = d
    for order_id, (_, code, says) in all_cases.items():
        d = by_order.get(order_id)
        name = names[order_id]
        if d is None:
            failures.append(f"{name}: no dead letter")
            continue
        origin = d.origin
        if (d.reason_code, d.stage) != (code, "pollers") or says not in d.reason:
            failures.append(f"{name}: got {d.reason_code} at {d.stage}: {d.reason[:200]}")
        elif not isinstance(origin, dead_letters.ApiOrigin) or not origin.path.startswith("$."):
            failures.append(f"{name}: the dead letter does not say where in the answer: {origin}")
        elif order_id not in item_cases and not origin.request_id:
            failures.append(f"{name}: no request id: {origin}")
        for personal in (b"PostalCode", b"BuyerEmail", b"marketplace.amazon.com", b"Example Street"):
            if personal in (d.value or b""):
                failures.append(f"{name}: personal data ({personal.decode()}) in the dead letter")
    assert not failures, "\n".join(failures)
    published = {e.key.amazon_order_id for e in events}
    assert published == set(visible) - set(all_cases), "the good orders of the page were not all published"
    counts = s.route.counts[SOURCE[api]]
    assert counts.balanced and counts.read == len(visible) and counts.dead_lettered == len(all_cases)
    assert dict(counts.reasons) == {
        c: sum(1 for _, r, _ in all_cases.values() if r == c) for c in counts.reasons
    }
    json.dumps([d.as_json() for d in letters])  # what `cancelguard dead-letters list --json` prints
