"""End to end through the client: who may call what (every method, enumerated), the write side with a
decided cancellation that comes back through the pipeline with the right attribution, the lists,
history, what-if outside the window, and a watch.

The services run once for the module, in their own topics and schema; each test publishes the orders it
needs, as Amazon's ORDER_CHANGE notifications, under seller accounts of its own caller.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import pytest
import pytest_asyncio
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from cancelguard.amazon.feed_xml import check_order_acknowledgement_feed, parse_order_acknowledgement_feed
from cancelguard.api import server as api_server
from cancelguard.client import AsyncClient
from cancelguard.config import Settings
from cancelguard.demo import publish
from cancelguard.demo_credentials import DEMO_TOKEN
from cancelguard.domain import bounds
from cancelguard.processes import ServiceProcesses
from cancelguard.simulator.order_change import NotificationItem, order_change_notification
from cancelguard.simulator.scenario import Scenario
from cancelguard.v1 import metrics_pb2, orders_pb2

pytestmark = pytest.mark.e2e

SELLER = "A1DEMOSELLERUS"  # the demo caller's
UK = "A1F83G8C2ARO7P"  # a marketplace the scenario does not use: these tests' own numbers
OTHER_SELLER = "A7OTHERTENANT"  # another tenant's (conftest)
NOBODY = "A8NOSUCHSELLER"  # nobody's
Code = orders_pb2.RecommendedAction


class Api:
    def __init__(self, settings: Settings, services: ServiceProcesses, other_token: str) -> None:
        self.settings = settings
        self.services = services
        self.address = f"127.0.0.1:{settings.api_port}"
        self.client = AsyncClient(self.address, token=DEMO_TOKEN)
        self.other = AsyncClient(self.address, token=other_token)
        self.now = datetime.now(UTC)

    async def order(self, order_id: str, seller: str = SELLER, mkt: str = UK) -> orders_pb2.Order:
        client = self.other if seller == OTHER_SELLER else self.client
        return await client.orders.GetOrder(
            orders_pb2.GetOrderRequest(seller_account=seller, marketplace_id=mkt, amazon_order_id=order_id)
        )

    async def until(self, check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = await check()
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                found = None
            if found:
                return found
            assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
            await asyncio.sleep(0.1)


def notification(
    order_id: str,
    status: str,
    *,
    bought: datetime,
    at: datetime,
    seller: str = SELLER,
    mkt: str = UK,
    requested: bool = False,
    items: int = 1,
) -> dict[str, Any]:
    shipped = status == "Shipped"
    return order_change_notification(
        seller_id=seller,
        amazon_order_id=order_id,
        marketplace_id=mkt,
        change_type="BuyerRequestedChange" if requested else "OrderStatusChange",
        change_reason="BuyerRequestedCancel" if requested else "status",
        time_of_change=at,
        order_status=status,
        purchase_date=bought,
        fulfillment_type="MFN",
        latest_ship_date=bought + timedelta(days=2),
        items=[
            NotificationItem(f"{order_id}-i{n}", f"SKU-{n}", 1, 1 if shipped else 0, requested)
            for n in range(items)
        ],
    )


async def place(
    api: Api, *orders: tuple[str, str, bool], seller: str = SELLER, age: timedelta = timedelta(hours=3)
) -> list[str]:
    """Publish orders (suffix, Amazon status, formal request?) bought `age` ago; wait until visible."""
    bought = api.now - age
    ids = [f"203-{uuid.uuid4().int % 10**7:07d}-{suffix}" for suffix, _, _ in orders]
    notes = []
    for order_id, (_, status, requested) in zip(ids, orders, strict=True):
        notes.append(
            notification(
                order_id,
                "Unshipped" if status != "Pending" else "Pending",
                bought=bought,
                at=bought + timedelta(minutes=1),
                seller=seller,
            )
        )
        if status not in ("Unshipped", "Pending") or requested:
            notes.append(
                notification(
                    order_id,
                    status,
                    bought=bought,
                    at=bought + timedelta(minutes=40),
                    seller=seller,
                    requested=requested,
                )
            )
    await publish(api.settings, Scenario(notifications=notes))
    for order_id in ids:
        await api.until(lambda o=order_id: api.order(o, seller), f"order {order_id} visible")
    return ids


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api(
    namespace_settings: Callable[..., Settings],
    postgres_dsn: str,
    tmp_path_factory: pytest.TempPathFactory,
    other_tenant_token: str,
) -> AsyncIterator[Api]:
    settings = namespace_settings()
    namespace = settings.postgres_schema
    services = ServiceProcesses(settings, tmp_path_factory.mktemp("logs"))
    services.start()
    try:
        await services.wait_healthy(timeout=120)
        yield Api(settings, services, other_tenant_token)
    finally:
        codes = services.stop()
        conn = await asyncpg.connect(postgres_dsn)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')
        await conn.close()
    assert codes == {"ingestion": 0, "metrics": 0, "api": 0}, {n: services.log_tail(n) for n in codes}


# --- who may call what: every method of every service, enumerated ---------------------------------------

METHODS = [(s.full_name, m) for s in api_server.SERVICES for m in s.methods]


def _request(method: Any, seller: str, order_id: str) -> bytes:
    """A request the method would accept from a caller allowed `seller`."""
    message: Message = GetMessageClass(method.input_type)()
    fields = method.input_type.fields_by_name
    values: dict[str, Any] = {
        "seller_account": seller,
        "marketplace_id": UK,
        "amazon_order_id": order_id,
        "request_id": str(uuid.uuid4()),
        "cancel_reason": "NoInventory",
        "message_id": f"auth-{uuid.uuid4().hex[:8]}",
        "text": "Where is my parcel?",
        "keepalive_seconds": 1,
        "days": 3,
    }
    for name, value in values.items():
        if name in fields:
            setattr(message, name, value)
    if "amazon_order_ids" in fields:
        message.amazon_order_ids.append(order_id)  # type: ignore[attr-defined]
    return message.SerializeToString()


async def _code(
    api: Api, service: str, method: Any, payload: bytes, token: str | None
) -> tuple[grpc.StatusCode, str]:
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else ()
    path = f"/{service}/{method.name}"
    channel = api.client.channel
    try:
        if method.server_streaming:
            call = channel.unary_stream(path, request_serializer=None, response_deserializer=None)
            stream = call(payload, timeout=5, metadata=metadata)
            await stream.read()
            stream.cancel()
        else:
            call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
            await call(payload, timeout=5, metadata=metadata)
    except grpc.aio.AioRpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def tenants(api: Api) -> dict[str, str]:
    """An order of the demo caller's seller, and one of the other tenant's (both existing)."""
    [mine] = await place(api, ("MINE", "Unshipped", False))
    [theirs] = await place(api, ("THEIRS", "Unshipped", False), seller=OTHER_SELLER)
    return {"mine": mine, "theirs": theirs}


@pytest.mark.parametrize(("service", "method"), METHODS, ids=[m.name for _, m in METHODS])
async def test_every_method_asks_who_calls_and_keeps_tenants_apart(
    api: Api, tenants: dict[str, str], other_tenant_token: str, service: str, method: Any
) -> None:
    mine = _request(method, SELLER, tenants["mine"])
    unauth = grpc.StatusCode.UNAUTHENTICATED
    denied = grpc.StatusCode.PERMISSION_DENIED
    assert (await _code(api, service, method, mine, None))[0] == unauth, "no token"
    assert (await _code(api, service, method, mine, "not-a-token"))[0] == unauth, "bad token"
    assert (await _code(api, service, method, mine, DEMO_TOKEN[:-1]))[0] == unauth, "almost the token"
    # another tenant's account, with its order existing and not, and an account nobody has: one answer
    answers = {
        what: await _code(api, service, method, _request(method, seller, order), DEMO_TOKEN)
        for what, seller, order in (
            ("theirs, existing", OTHER_SELLER, tenants["theirs"]),
            ("theirs, not existing", OTHER_SELLER, "203-0000000-NOTHERE"),
            ("nobody's", NOBODY, "203-0000000-NOTHERE"),
        )
    }
    assert {code for code, _ in answers.values()} == {denied}, answers
    # and the other tenant cannot reach the demo caller's order
    code, _ = await _code(api, service, method, mine, other_tenant_token)
    assert code == denied
    # with the right token: past the gate (whatever the method then says of the request)
    code, details = await _code(api, service, method, mine, DEMO_TOKEN)
    assert code not in (unauth, denied), f"{method.name}: {code.name} {details}"


async def test_another_tenants_order_takes_the_same_time_whether_it_exists_or_not(
    api: Api, tenants: dict[str, str]
) -> None:
    method = next(m for _, m in METHODS if m.name == "GetOrder")
    service = api_server.SERVICES[0].full_name
    timings: dict[str, list[float]] = {"existing": [], "missing": []}
    for _ in range(40):
        for what, order in (("existing", tenants["theirs"]), ("missing", "203-0000000-NOTHERE")):
            start = time.perf_counter()
            code, details = await _code(
                api, service, method, _request(method, OTHER_SELLER, order), DEMO_TOKEN
            )
            timings[what].append(time.perf_counter() - start)
            assert code == grpc.StatusCode.PERMISSION_DENIED and OTHER_SELLER in details
    existing, missing = (statistics.median(timings[w]) for w in ("existing", "missing"))
    assert abs(existing - missing) < 0.002, f"median {existing * 1e3:.2f} ms vs {missing * 1e3:.2f} ms"


def _info(err: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(err)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert any(d.Unpack(info) for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR))
    return info


async def _refused(call: Any, request: Message) -> tuple[grpc.StatusCode, error_details_pb2.ErrorInfo]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(request)
    return err.value.code(), _info(err.value)


def _decide(
    order_id: str, reason: str, request_id: str | None = None
) -> orders_pb2.DecideCancellationRequest:
    return orders_pb2.DecideCancellationRequest(
        seller_account=SELLER,
        marketplace_id=UK,
        amazon_order_id=order_id,
        cancel_reason=reason,
        request_id=request_id or str(uuid.uuid4()),
    )


async def _live(api: Api) -> metrics_pb2.CancellationRate:
    return await api.client.metrics.GetCancellationRate(
        metrics_pb2.GetCancellationRateRequest(
            seller_account=SELLER, marketplace_id=UK, window_kind=metrics_pb2.WINDOW_KIND_LIVE
        )
    )


async def _amazon_cancels(api: Api, order_id: str) -> None:
    """Amazon confirms the cancel the feed asked for: its ORDER_CHANGE notification says Canceled."""
    bought = api.now - timedelta(hours=3)
    note = notification(order_id, "Canceled", bought=bought, at=datetime.now(UTC))
    await publish(api.settings, Scenario(notifications=[note]))


# --- the write side ---------------------------------------------------------------------------------


async def test_a_no_inventory_decision_shows_its_cost_gives_the_feed_and_comes_back_counted(api: Api) -> None:
    [order_id] = await place(api, ("NOINV", "Unshipped", False))
    before = await _live(api)
    request = _decide(order_id, "NoInventory")
    reply = await api.client.orders.DecideCancellation(request)
    assert reply.counts_against_cr and "counts" in reply.explanation
    assert reply.projected_rate.cancelled_orders == reply.current_rate.cancelled_orders + 1
    assert reply.current_rate.total_orders == before.total_orders
    # the feed: schema-valid, StatusCode Failure, one Item with its CancelReason per item
    assert check_order_acknowledgement_feed(reply.feed_document.encode()) == []
    merchant, [ack] = parse_order_acknowledgement_feed(reply.feed_document.encode())
    assert (merchant, ack.amazon_order_id, ack.status_code) == (SELLER, order_id, "Failure")
    assert [(i.amazon_order_item_code, i.cancel_reason) for i in ack.items] == [
        (f"{order_id}-i0", "NoInventory")
    ]
    # a retry (same request_id) gets the same answer; the same id for another request is refused
    again = await api.client.orders.DecideCancellation(request)
    assert again == reply
    code, info = await _refused(
        api.client.orders.DecideCancellation, _decide(order_id, "GeneralAdjustment", request.request_id)
    )
    assert (code, info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED")
    # the pipeline: our event, then Amazon's confirmation -> counted, and cancelguard knows it was the seller
    await _amazon_cancels(api, order_id)
    order = await api.until(
        lambda: _if(api.order(order_id), lambda o: o.status == orders_pb2.ORDER_STATUS_CANCELED), "cancelled"
    )
    assert orders_pb2.Attribution.Verdict.Name(order.attribution.verdict) == "VERDICT_COUNTED"
    assert order.attribution.source == "SELLER_FEED" and order.attribution.cancel_reason == "NoInventory"
    after = await api.until(
        lambda: _if(_live(api), lambda r: r.cancelled_orders == before.cancelled_orders + 1), "counted"
    )
    assert after.total_orders == before.total_orders


async def _if(call: Any, check: Callable[[Any], bool]) -> Any:
    found = await call
    return found if check(found) else None


async def test_buyer_canceled_needs_a_formal_request_and_then_does_not_count(api: Api) -> None:
    plain, requested = await place(api, ("PLAIN", "Unshipped", False), ("FORMAL", "Unshipped", True))
    code, info = await _refused(api.client.orders.DecideCancellation, _decide(plain, "BuyerCanceled"))
    assert (code, info.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "BUYER_CANCELED_WITHOUT_FORMAL_REQUEST",
    )
    assert (
        int(info.metadata["projected_cancelled_orders"]) == int(info.metadata["current_cancelled_orders"]) + 1
    )
    before = await _live(api)
    reply = await api.client.orders.DecideCancellation(_decide(requested, "BuyerCanceled"))
    assert (
        not reply.counts_against_cr
        and reply.projected_rate.cancelled_orders == reply.current_rate.cancelled_orders
    )
    await _amazon_cancels(api, requested)
    order = await api.until(
        lambda: _if(api.order(requested), lambda o: o.status == orders_pb2.ORDER_STATUS_CANCELED), "cancelled"
    )
    assert (order.attribution.rule, order.attribution.source) == (
        "FORMAL_REQUEST_BEFORE_CANCEL",
        "SELLER_FEED",
    )
    assert (await _live(api)).cancelled_orders == before.cancelled_orders


async def test_only_unshipped_orders_can_be_cancelled(api: Api) -> None:
    shipped, pending = await place(api, ("SHIPPED", "Shipped", False), ("PENDING", "Pending", False))
    for order_id, reason in ((shipped, "ORDER_SHIPPED"), (pending, "NOT_UNSHIPPED")):
        code, info = await _refused(api.client.orders.DecideCancellation, _decide(order_id, "NoInventory"))
        assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, reason)
    code, info = await _refused(api.client.orders.DecideCancellation, _decide(shipped, "PricingError"))
    assert (code, info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_VALUE")


async def test_feed_submissions_refuse_bad_asks_and_the_next_call_is_served(api: Api) -> None:
    """This API has no accounts file: it submits no feeds, says why, and keeps serving."""
    [order_id] = await place(api, ("FEEDS", "Unshipped", False))
    ask = orders_pb2.GetFeedSubmissionRequest
    too_long = "x" * (bounds.MAX_EVENT_ID + 1)
    cases = [
        (api.client.orders.GetFeedSubmission, ask(seller_account=SELLER),
         "INVALID_ARGUMENT", "MISSING_FIELD"),
        (api.client.orders.GetFeedSubmission, ask(seller_account=SELLER, event_id=too_long),
         "INVALID_ARGUMENT", None),
        (api.client.orders.GetFeedSubmission, ask(seller_account=SELLER, event_id="api-decision:nothing"),
         "NOT_FOUND", "NOT_FOUND"),
        (api.client.orders.DecideCancellation,
         orders_pb2.DecideCancellationRequest(
             seller_account=SELLER, marketplace_id=UK, amazon_order_id=order_id, cancel_reason="NoInventory",
             request_id=str(uuid.uuid4()), submit_feed=True),
         "FAILED_PRECONDITION", "FEEDS_NOT_CONFIGURED"),
    ]  # fmt: skip
    for call, request, code, reason in cases:
        got, info = await _refused(call, request)
        assert got.name == code, (request, got)
        if reason is not None:
            assert info.reason == reason, (request, info)
    decided = await api.client.orders.DecideCancellation(_decide(order_id, "NoInventory"))  # still served
    assert decided.event_id and not decided.HasField("feed_submission")


async def test_the_warehouse_records_a_label_and_a_shipment(api: Api) -> None:
    labelled, shipped = await place(api, ("LABEL", "Unshipped", True), ("SHIP", "Unshipped", False))
    reply = await api.client.orders.RecordLabelPurchased(
        orders_pb2.RecordLabelPurchasedRequest(
            seller_account=SELLER, marketplace_id=UK, amazon_order_id=labelled, request_id=str(uuid.uuid4())
        )
    )
    assert reply.order.label_purchased and reply.order.recommended_action.code == Code.CODE_ADVISE_RETURN
    order = await api.until(lambda: _if(api.order(labelled), lambda o: o.label_purchased), "label applied")
    assert order.recommended_action.code == Code.CODE_ADVISE_RETURN
    code, info = await _refused(api.client.orders.DecideCancellation, _decide(labelled, "BuyerCanceled"))
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ORDER_SHIPPED")
    await api.client.orders.RecordShipment(
        orders_pb2.RecordShipmentRequest(
            seller_account=SELLER, marketplace_id=UK, amazon_order_id=shipped, request_id=str(uuid.uuid4())
        )
    )
    order = await api.until(
        lambda: _if(api.order(shipped), lambda o: o.items and o.items[0].quantity_shipped == 1),
        "shipment applied",
    )
    assert order.recommended_action.code == Code.CODE_FULFIL


async def test_two_callers_may_use_the_same_request_id(api: Api) -> None:
    """A request_id is unique per caller (AIP-155): the same one from two services is two writes, two
    events, each answered to its own caller."""
    [mine] = await place(api, ("SAMEID", "Unshipped", False))
    [theirs] = await place(api, ("SAMEID", "Unshipped", False), seller=OTHER_SELLER)
    request_id = "1"  # a counter, as a service might keep one
    replies = []
    for client, seller, order_id in ((api.client, SELLER, mine), (api.other, OTHER_SELLER, theirs)):
        reply = await client.orders.RecordLabelPurchased(
            orders_pb2.RecordLabelPurchasedRequest(
                seller_account=seller, marketplace_id=UK, amazon_order_id=order_id, request_id=request_id
            )
        )
        assert reply.order.amazon_order_id == order_id and reply.order.label_purchased
        replies.append(reply)
    assert replies[0].event_id != replies[1].event_id
    for seller, order_id in ((SELLER, mine), (OTHER_SELLER, theirs)):
        await api.until(
            lambda s=seller, o=order_id: _if(api.order(o, s), lambda got: got.label_purchased),
            f"the label of {order_id} applied",
        )


async def test_the_helpdesk_submits_a_buyer_message_and_marks_the_request_answered(api: Api) -> None:
    [order_id] = await place(api, ("HELP", "Unshipped", False))
    text = "Hallo, bitte stornieren Sie meine Bestellung. Danke! Zebraflosse"
    reply = await api.client.orders.SubmitBuyerMessage(
        orders_pb2.SubmitBuyerMessageRequest(
            seller_account=SELLER,
            marketplace_id=UK,
            amazon_order_id=order_id,
            message_id=f"msg-{uuid.uuid4().hex[:8]}",
            text=text,
            request_id=str(uuid.uuid4()),
        )
    )
    assert reply.is_cancel_request and reply.language == "de" and reply.event_id
    action = reply.recommended_action
    assert action.code == Code.CODE_ASK_FOR_FORMAL_REQUEST and order_id in action.reply_text
    order = await api.until(
        lambda: _if(api.order(order_id), lambda o: o.cancellation_request.open), "request"
    )
    assert order.cancellation_request.kind == orders_pb2.CancellationRequest.KIND_INFORMAL
    answered = await api.client.orders.MarkRequestAnswered(
        orders_pb2.MarkRequestAnsweredRequest(
            seller_account=SELLER, marketplace_id=UK, amazon_order_id=order_id, request_id=str(uuid.uuid4())
        )
    )
    assert answered.cancellation_request.answered_by == "demo"
    order = await api.until(
        lambda: _if(api.order(order_id), lambda o: o.cancellation_request.HasField("answered_at")), "answered"
    )
    # the text is classified and dropped: not in the API's log, not in its records
    log = (api.services.log_dir / "api.log").read_text()
    assert "Zebraflosse" not in log
    conn = await asyncpg.connect(
        api.settings.postgres_dsn, server_settings={"search_path": api.settings.postgres_schema}
    )
    try:
        stored = await conn.fetch("SELECT response, event FROM api_requests")
    finally:
        await conn.close()
    assert stored and not any(b"Zebra" in (r["response"] or b"") + (r["event"] or b"") for r in stored)


# --- reads --------------------------------------------------------------------------------------------


async def test_list_orders_puts_open_requests_first_and_filters(api: Api) -> None:
    seller = "A9SUPPRESSION"  # a seller account of the demo caller that no other test uses
    ids = await place(
        api,
        ("L1", "Unshipped", False),
        ("L2", "Unshipped", True),
        ("L3", "Shipped", False),
        ("L4", "Unshipped", True),
        seller=seller,
    )
    listed = []
    token = ""
    while True:
        page = await api.client.orders.ListOrders(
            orders_pb2.ListOrdersRequest(seller_account=seller, page_size=1, page_token=token)
        )
        listed += [o.amazon_order_id for o in page.orders]
        token = page.next_page_token
        if not token:
            break
    assert sorted(listed[:2]) == sorted([ids[1], ids[3]])  # the open (formal) requests first
    assert sorted(listed) == sorted(ids)
    cancel = await api.client.orders.ListOrders(
        orders_pb2.ListOrdersRequest(seller_account=seller, actions=[Code.CODE_CANCEL_BUYER_CANCELED])
    )
    assert sorted(o.amazon_order_id for o in cancel.orders) == sorted([ids[1], ids[3]])
    old = await api.client.orders.ListOrders(
        orders_pb2.ListOrdersRequest(seller_account=seller, purchased_before=_ts(api.now - timedelta(days=2)))
    )
    assert not old.orders


def _ts(at: datetime) -> Any:
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp()
    ts.FromDatetime(at)
    return ts


async def test_rates_across_the_callers_accounts_worst_first_and_their_history(api: Api) -> None:
    await place(api, ("R1", "Unshipped", False))
    reply = await api.client.metrics.ListCancellationRates(
        metrics_pb2.ListCancellationRatesRequest(window_kind=metrics_pb2.WINDOW_KIND_LIVE)
    )
    keys = [(r.seller_account, r.marketplace_id) for r in reply.rates]
    assert (SELLER, UK) in keys and all(s != OTHER_SELLER for s, _ in keys)
    order = [
        (r.status != metrics_pb2.RATE_STATUS_AT_RISK, r.status != metrics_pb2.RATE_STATUS_WARNING, -r.rate)
        for r in reply.rates
    ]
    assert order == sorted(order)
    history = await api.client.metrics.GetCancellationRateHistory(
        metrics_pb2.GetCancellationRateHistoryRequest(seller_account=SELLER, marketplace_id=UK, days=5)
    )
    assert len(history.days) == 5
    days = [d.day.ToDatetime(tzinfo=UTC) for d in history.days]
    assert days == sorted(days) and days[-1].date() == datetime.now(UTC).date()
    assert all(
        (d.rate.window_end.ToDatetime() - d.rate.window_start.ToDatetime()).days == 7 for d in history.days
    )


async def test_what_if_says_when_an_order_lies_outside_the_window(api: Api) -> None:
    [old] = await place(api, ("OLD", "Unshipped", False), age=timedelta(days=9))
    [recent] = await place(api, ("NEW", "Unshipped", False))
    reply = await api.client.metrics.ProjectCancellationRate(
        metrics_pb2.ProjectCancellationRateRequest(
            seller_account=SELLER,
            marketplace_id=UK,
            amazon_order_ids=[old, recent],
            cancel_reason="NoInventory",
        )
    )
    effects = {e.amazon_order_id: e for e in reply.effects}
    assert effects[old].counts and not effects[old].in_window and effects[old].cancelled_orders_delta == 0
    assert "outside this window" in effects[old].explanation
    assert (
        effects[recent].counts and effects[recent].in_window and effects[recent].cancelled_orders_delta == 1
    )
    # as_of: the same order, asked about as of 8 days ago, lies in that live window
    back = await api.client.metrics.ProjectCancellationRate(
        metrics_pb2.ProjectCancellationRateRequest(
            seller_account=SELLER,
            marketplace_id=UK,
            amazon_order_ids=[old],
            as_of=_ts(api.now - timedelta(days=8)),
        )
    )
    assert back.effects[0].in_window and back.effects[0].cancelled_orders_delta == 1


async def test_the_list_of_open_requests_follows_requests_opened_and_closed(api: Api) -> None:
    """The API holds an account's open requests whole once listed (a page is a slice of it), and the pages
    asked of it: a request opened or closed afterwards, or a listed order that changes, shows on the next
    list, not when the process restarts."""

    async def pages() -> list[orders_pb2.Order]:
        orders, token = [], ""
        while True:  # three at a time: the pages are cut from the held list
            page = await api.client.orders.ListCancellationRequests(
                orders_pb2.ListCancellationRequestsRequest(
                    seller_account=SELLER, marketplace_id=UK, page_size=3, page_token=token
                )
            )
            orders += page.orders
            token = page.next_page_token
            if not token:
                return orders

    async def listed() -> list[str]:
        return [o.amazon_order_id for o in await pages()]

    before = await listed()
    assert before == await listed()  # the second from what the first read, its pages held
    [opened] = await place(api, ("LISTED", "Unshipped", True))
    now_listed = await api.until(lambda: _with(listed, opened), "the new request listed", timeout=5)
    assert set(now_listed) == {*before, opened} and len(now_listed) == len(set(now_listed))
    assert now_listed == await listed()  # held again
    code, info = await _refused(  # a token not ours, beside a held list and its pages: refused, nothing held
        api.client.orders.ListCancellationRequests,
        orders_pb2.ListCancellationRequestsRequest(
            seller_account=SELLER, marketplace_id=UK, page_size=3, page_token="bm90IGEgdG9rZW4="
        ),
    )
    assert (code, info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "BAD_PAGE_TOKEN")
    assert now_listed == await listed()  # and the next calls are served
    await api.client.orders.RecordLabelPurchased(
        orders_pb2.RecordLabelPurchasedRequest(
            seller_account=SELLER, marketplace_id=UK, amazon_order_id=opened, request_id=str(uuid.uuid4())
        )
    )

    async def labelled() -> bool:  # the listed order changed, its request still open
        return any(o.amazon_order_id == opened and o.label_purchased for o in await pages())

    await api.until(labelled, "the label shown on the listed order", timeout=30)
    await _amazon_cancels(api, opened)
    await api.until(lambda: _without(listed, opened), "the closed request no longer listed", timeout=30)


async def _with(listed: Callable[[], Any], order_id: str) -> list[str] | None:
    ids = await listed()
    return ids if order_id in ids else None


async def _without(listed: Callable[[], Any], order_id: str) -> bool:
    return order_id not in await listed()


async def test_a_watch_sees_a_new_request_and_resumes_after_it(api: Api) -> None:
    watch = api.client.orders.WatchCancellationRequests(
        orders_pb2.WatchCancellationRequestsRequest(
            seller_account=SELLER, marketplace_id=UK, keepalive_seconds=1
        )
    )
    first = await asyncio.wait_for(watch.read(), 10)  # a keepalive: the watch is on
    assert first.HasField("keepalive") and first.resume_token
    [order_id] = await place(api, ("WATCH", "Unshipped", True))
    while True:
        message = await asyncio.wait_for(watch.read(), 10)
        if message.HasField("change") and message.change.order.amazon_order_id == order_id:
            break
    watch.cancel()
    assert message.change.kind == orders_pb2.CancellationRequestChange.KIND_OPENED
    assert message.change.order.cancellation_request.kind == orders_pb2.CancellationRequest.KIND_FORMAL
    resumed = api.client.orders.WatchCancellationRequests(
        orders_pb2.WatchCancellationRequestsRequest(
            seller_account=SELLER, marketplace_id=UK, keepalive_seconds=1, resume_token=message.resume_token
        )
    )
    after = await asyncio.wait_for(resumed.read(), 10)
    resumed.cancel()
    assert after.HasField("keepalive"), "a resumed watch starts after the last change it was given"
    code, info = await _refused_stream(
        api.client.orders.WatchCancellationRequests,
        orders_pb2.WatchCancellationRequestsRequest(seller_account=SELLER, resume_token=message.resume_token),
    )
    assert (code, info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "BAD_RESUME_TOKEN")  # other filters


async def _refused_stream(call: Any, request: Message) -> tuple[grpc.StatusCode, error_details_pb2.ErrorInfo]:
    stream = call(request)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stream.read()
    return err.value.code(), _info(err.value)


# --- alerts ---------------------------------------------------------------------------------------------


def _alert(alert_id: str, seller: str, rate: float = 0.03) -> tuple[bytes, bytes]:
    """An alert record as the metrics service publishes it to the alerts topic."""
    from cancelguard.events.v1 import alert_pb2

    now = _ts(datetime.now(UTC))
    alert = alert_pb2.Alert(alert_id=alert_id, seller_account=seller, marketplace_id=UK, raised_at=now)
    alert.rate_crossing.CopyFrom(
        alert_pb2.RateCrossing(
            window=alert_pb2.ALERT_WINDOW_LIVE,
            window_start=now,
            window_end=now,
            level=alert_pb2.LEVEL_THRESHOLD,
            direction=alert_pb2.DIRECTION_UP,
            cancelled_orders=3,
            total_orders=100,
            rate=rate,
            level_rate=0.025,
        )
    )
    return f"{seller}|{UK}".encode(), alert.SerializeToString()


async def test_a_watch_of_alerts_sees_the_callers_alerts_once_and_resumes_after_them(api: Api) -> None:
    from cancelguard import kafka

    request = metrics_pb2.WatchAlertsRequest(keepalive_seconds=1)
    watch = api.client.metrics.WatchAlerts(request)
    first = await asyncio.wait_for(watch.read(), 20)
    assert first.HasField("keepalive")
    tag = uuid.uuid4().hex[:6]
    records = [
        _alert(f"{tag}-1", SELLER),
        _alert(f"{tag}-x", OTHER_SELLER),  # another tenant's: never shown
        _alert(f"{tag}-1", SELLER),  # published twice (a retried publish): shown once
        _alert(f"{tag}-2", SELLER),
    ]
    await kafka.publish(api.settings, api.settings.alerts_topic, records[:2], client_id="test")
    await kafka.publish(api.settings, api.settings.alerts_topic, records[2:], client_id="test")
    got: list[metrics_pb2.WatchAlertsResponse] = []
    while len(got) < 2:
        message = await asyncio.wait_for(watch.read(), 20)
        if message.HasField("alert"):
            got.append(message)
    watch.cancel()
    assert [m.alert.alert_id for m in got] == [f"{tag}-1", f"{tag}-2"]
    crossing = got[0].alert.rate_crossing
    assert (
        crossing.level == metrics_pb2.ALERT_LEVEL_THRESHOLD
        and crossing.direction == metrics_pb2.ALERT_DIRECTION_UP
    )
    # resumed after the first: the second comes again (it was after the position), then nothing
    resumed = api.client.metrics.WatchAlerts(
        metrics_pb2.WatchAlertsRequest(keepalive_seconds=1, resume_token=got[0].resume_token)
    )
    again = [await asyncio.wait_for(resumed.read(), 20) for _ in range(2)]
    resumed.cancel()
    assert [m.alert.alert_id for m in again if m.HasField("alert")] == [f"{tag}-2"]
