"""The CLI's API commands (`cancelguard cr|orders|requests|decide|api-token`), through `cancelguard.client`.

The token comes from `--token-file`, else CANCELGUARD_API_TOKEN, else the demo's FAKE token (which only
a local demo accepts). `--api` is the server's address (default 127.0.0.1:CANCELGUARD_API_PORT).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from cancelguard.v1 import metrics_pb2, orders_pb2

BAR = 40
_EIGHTHS = " ▏▎▍▌▋▊▉█"


def add_arguments(sub: Any) -> None:
    """The API commands' parsers."""

    def connection(p: argparse.ArgumentParser) -> None:
        p.add_argument("--api", help="the API's address (default 127.0.0.1:CANCELGUARD_API_PORT)")
        p.add_argument(
            "--token-file", help="a file holding the caller's bearer token (else CANCELGUARD_API_TOKEN)"
        )
        p.add_argument("--tls-ca", help="TLS: the CA certificate (PEM) that signed the server's")
        p.add_argument("--tls-cert", help="mutual TLS: this client's certificate (PEM)")
        p.add_argument("--tls-key", help="mutual TLS: this client's key (PEM)")
        p.add_argument("--json", action="store_true", help="JSON (one object per line) instead of a table")

    cr = sub.add_parser("cr", help="Cancellation Rates: of one seller account x marketplace, or all of yours")
    cr.add_argument("seller_account", nargs="?", default="", help="default: every account the token may see")
    cr.add_argument("marketplace_id", nargs="?", default="")
    cr.add_argument("--live", action="store_true", help="the last 168 hours instead of Amazon's 7 whole days")
    cr.add_argument("--days", type=int, default=0, help="Amazon-aligned window length (India: 7 or 30)")
    cr.add_argument("--as-of", help="the moment to compute for (ISO 8601, e.g. 2026-11-20T10:00:00Z)")
    cr.add_argument(
        "--history",
        nargs="?",
        type=int,
        const=30,
        metavar="DAYS",
        help="day by day, as a chart (default 30 days)",
    )
    connection(cr)
    orders = sub.add_parser("orders", help="orders of a seller account: open requests first, then the latest")
    orders.add_argument("seller_account")
    orders.add_argument("--marketplace", default="", help="only this marketplace")
    orders.add_argument(
        "--action",
        action="append",
        default=[],
        help="only this recommended action, e.g. CANCEL_BUYER_CANCELED",
    )
    orders.add_argument(
        "--needs-review", action="store_true", help="only orders whose attribution needs review"
    )
    orders.add_argument("--limit", type=int, default=50)
    connection(orders)
    requests = sub.add_parser("requests", help="open cancellation requests, with the action to take")
    requests.add_argument("seller_account")
    requests.add_argument("marketplace_id")
    requests.add_argument(
        "--watch", action="store_true", help="then print new and changed requests until Ctrl-C"
    )
    connection(requests)
    decide = sub.add_parser("decide", help="cancel an order (checked first) and print the feed that does it")
    decide.add_argument("seller_account")
    decide.add_argument("marketplace_id")
    decide.add_argument("amazon_order_id")
    decide.add_argument("cancel_reason", help="NoInventory, BuyerCanceled, ... (OrderAcknowledgement.xsd)")
    decide.add_argument("--item", action="append", default=[], help="only this order item (repeatable)")
    decide.add_argument("--request-id", help="to retry a decision safely (default: a new one)")
    decide.add_argument("--feed", help="write the order acknowledgement feed (XML) here; default: stdout")
    decide.add_argument(
        "--submit", action="store_true", help="cancelguard submits the feed to Amazon (Feeds API)"
    )
    connection(decide)
    feed = sub.add_parser("feed", help="where a decision's cancel feed stands on Amazon's side")
    feed.add_argument("seller_account")
    feed.add_argument("event_id", help="the decision's event id (cancelguard decide prints it)")
    connection(feed)
    token = sub.add_parser(
        "api-token", help="make a token for a calling service, with its callers-file entry"
    )
    token.add_argument("name", help="the calling service, e.g. oms")
    token.add_argument(
        "--seller", action="append", default=[], help="a seller account it may see (repeatable)"
    )


def run(args: argparse.Namespace, api_port: int) -> int:
    if args.command == "api-token":
        return _api_token(args)
    commands: dict[str, Callable[[Any, argparse.Namespace], int]] = {
        "cr": _cr,
        "feed": _feed,
        "orders": _orders,
        "requests": _requests,
        "decide": _decide,
    }
    from cancelguard.client import Client, Tls

    tls = Tls(args.tls_ca, args.tls_cert or "", args.tls_key or "") if args.tls_ca else None
    try:
        with Client(args.api or f"127.0.0.1:{api_port}", token=_token(args), tls=tls) as api:
            return commands[args.command](api, args)
    except grpc.RpcError as exc:
        print(f"cancelguard {args.command}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1


def _token(args: argparse.Namespace) -> str:
    if args.token_file:
        return Path(args.token_file).read_text(encoding="utf-8").strip()
    if token := os.environ.get("CANCELGUARD_API_TOKEN"):
        return token
    from cancelguard.demo_credentials import DEMO_TOKEN

    return DEMO_TOKEN


def _as_of(text: str | None) -> datetime | None:
    if not text:
        return None
    from cancelguard.domain.model import parse_time

    return parse_time(text, "--as-of")


def _json(message: Message) -> None:
    print(json.dumps(MessageToDict(message, preserving_proto_field_name=True), ensure_ascii=False))


def _status(rate: metrics_pb2.CancellationRate) -> str:
    return metrics_pb2.RateStatus.Name(rate.status).removeprefix("RATE_STATUS_")


def _line(r: metrics_pb2.CancellationRate) -> str:
    return (
        f"{r.seller_account} {r.marketplace_id} "
        f"{r.window_start.ToJsonString()}..{r.window_end.ToJsonString()}: "
        f"{r.cancelled_orders}/{r.total_orders} = {r.rate:.2%} {_status(r)} (threshold {r.threshold:.1%})"
    )


def _cr(api: Any, args: argparse.Namespace) -> int:
    as_of = _as_of(args.as_of)
    if not args.seller_account or not args.marketplace_id:
        if args.history is not None:
            print("cancelguard cr --history: give SELLER_ACCOUNT and MARKETPLACE_ID", file=sys.stderr)
            return 2
        for rate in api.cancellation_rates(seller=args.seller_account, live=args.live, as_of=as_of):
            _json(rate) if args.json else print(_line(rate))
        return 0
    if args.history is not None:
        days = api.history(args.seller_account, args.marketplace_id, days=args.history, as_of=as_of)
        if args.json:
            for day in days:
                _json(day)
        else:
            print("\n".join(history_chart(days)))
        return 0
    rate = api.cancellation_rate(
        args.seller_account, args.marketplace_id, live=args.live, days=args.days, as_of=as_of
    )
    _json(rate) if args.json else print(_line(rate))
    return 0


def history_chart(days: Sequence[metrics_pb2.RateOnDay], width: int = BAR) -> list[str]:
    """One bar per day, scaled to the highest rate or the threshold; `|` marks the threshold, and
    Amazon's own figure follows where it is known."""
    if not days:
        return ["no days"]
    threshold = days[-1].rate.threshold
    top = max(
        [
            threshold * 1.2,
            *(d.rate.rate for d in days),
            *(float(d.rate.amazon.rate) for d in days if d.rate.HasField("amazon")),
        ]
    )
    mark = round(threshold / top * width) if top else width
    lines = [f"{'day (UTC)':<10}  {'Cancellation Rate, Amazon-aligned window':<{width + 2}}   rate   orders"]
    for day in days:
        rate = day.rate
        cells = rate.rate / top * width if top else 0.0
        bar = _bar(cells, width)
        bar = bar[:mark] + ("|" if bar[mark : mark + 1] in (" ", "") else "┃") + bar[mark + 1 :]
        figure = rate.amazon
        known = rate.HasField("amazon")
        amazon = f"  Amazon {float(figure.rate):.2%} ({float(figure.difference):+.2%})" if known else ""
        when = day.day.ToDatetime(tzinfo=UTC).date().isoformat()
        lines.append(
            f"{when}  {bar:<{width + 1}}  {rate.rate:>6.2%}  {rate.cancelled_orders}/{rate.total_orders}"
            f"  {_status(rate)}{amazon}"
        )
    lines.append(f"{'':<10}  {' ' * mark}^ threshold {threshold:.1%}")
    return lines


def _bar(cells: float, width: int) -> str:
    whole = int(cells)
    part = int((cells - whole) * 8)
    text = "█" * whole + (_EIGHTHS[part] if part and whole < width else "")
    return text.ljust(width)


def _orders(api: Any, args: argparse.Namespace) -> int:
    codes = []
    for name in args.action:
        try:
            codes.append(
                orders_pb2.RecommendedAction.Code.Value(f"CODE_{name.upper().removeprefix('CODE_')}")
            )
        except ValueError:
            print(f"cancelguard orders: unknown action {name}", file=sys.stderr)
            return 2
    listed = api.orders_list(
        args.seller_account,
        marketplace_id=args.marketplace,
        actions=codes,
        needs_review=True if args.needs_review else None,
        limit=args.limit,
    )
    for order in listed:
        _json(order) if args.json else print(_order_line(order))
    return 0


def _order_line(order: orders_pb2.Order) -> str:
    action = order.recommended_action
    code = orders_pb2.RecommendedAction.Code.Name(action.code).removeprefix("CODE_")
    status = orders_pb2.OrderStatus.Name(order.status).removeprefix("ORDER_STATUS_")
    request = ""
    if order.HasField("cancellation_request") and order.cancellation_request.open:
        kind = orders_pb2.CancellationRequest.Kind.Name(order.cancellation_request.kind).removeprefix("KIND_")
        request = f" {kind.lower()} request"
    reason = f" ({action.cancel_reason})" if action.cancel_reason else ""
    return f"{order.marketplace_id} {order.amazon_order_id} {status}{request} -> {code}{reason}"


def _requests(api: Any, args: argparse.Namespace) -> int:
    for order in api.open_requests(args.seller_account, args.marketplace_id):
        _json(order) if args.json else print(_order_line(order))
        action = order.recommended_action
        if not args.json and action.reply_text:
            print(f"    reply ({action.reply_language}): {action.reply_text}")
    if not args.watch:
        return 0
    watch = api.orders.WatchCancellationRequests(
        orders_pb2.WatchCancellationRequestsRequest(
            seller_account=args.seller_account, marketplace_id=args.marketplace_id
        )
    )
    try:
        for message in watch:
            if message.HasField("change"):
                change = message.change
                kind = orders_pb2.CancellationRequestChange.Kind.Name(change.kind).removeprefix("KIND_")
                _json(message) if args.json else print(f"{kind:<8} {_order_line(change.order)}")
    except KeyboardInterrupt:
        watch.cancel()
    return 0


def _decide(api: Any, args: argparse.Namespace) -> int:
    reply = api.decide(
        args.seller_account,
        args.marketplace_id,
        args.amazon_order_id,
        args.cancel_reason,
        order_item_ids=args.item,
        request_id=args.request_id,
        submit_feed=args.submit,
    )
    if args.json:
        _json(reply)
        return 0
    print(
        f"decided: cancel {args.amazon_order_id} with {reply.cancel_reason}: {reply.explanation}",
        file=sys.stderr,
    )
    print(f"event {reply.event_id}; feed {reply.feed_type}", file=sys.stderr)
    if args.submit:
        print(
            f"cancelguard submits the feed to Amazon: `cancelguard feed {args.seller_account} "
            f"{reply.event_id}` says where it stands",
            file=sys.stderr,
        )
    if args.feed:
        Path(args.feed).write_text(reply.feed_document, encoding="utf-8")
        print(f"feed written to {args.feed}", file=sys.stderr)
    else:
        print(reply.feed_document)
    return 0


def _feed(api: Any, args: argparse.Namespace) -> int:
    found = api.feed_submission(args.seller_account, args.event_id)
    if args.json:
        _json(found)
        return 0
    state = orders_pb2.FeedSubmission.State.Name(found.state).removeprefix("STATE_")
    line = f"{found.amazon_order_id} in {found.marketplace_id}: {state}"
    if found.feed_id:
        line += f", Amazon feed {found.feed_id} ({found.processing_status or 'accepted'})"
    if found.state == orders_pb2.FeedSubmission.STATE_DONE:
        line += (
            f": {found.messages_successful} of {found.messages_processed} applied,"
            f" {found.messages_with_error} refused"
        )
    print(line)
    for result in found.results:
        print(f"  {result}")
    failed = found.state == orders_pb2.FeedSubmission.STATE_FAILED
    if found.error:
        print(f"  {'why' if failed else 'last try'}: {found.error}")
    return 1 if failed else 0


def _api_token(args: argparse.Namespace) -> int:
    from cancelguard.api.auth import token_digest
    from cancelguard.domain import bounds

    bounds.identifier(args.name, "name")
    token = secrets.token_urlsafe(32)
    print(f"token (give it to {args.name}; it is not stored anywhere): {token}", file=sys.stderr)
    print(f"[callers.{args.name}]")
    print(f'token_sha256 = ["{token_digest(token)}"]')
    print("seller_accounts = [" + ", ".join(f'"{s}"' for s in args.seller) + "]")
    return 0
