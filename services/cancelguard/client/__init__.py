"""A small client for cancelguard's gRPC API, for Python callers and the `cancelguard` CLI.

    from cancelguard.client import Client

    with Client("127.0.0.1:50051", token=os.environ["CANCELGUARD_API_TOKEN"]) as api:
        rate = api.cancellation_rate("A1DEMOSELLERUS", "ATVPDKIKX0DER", live=True)
        for order in api.open_requests("A1DEMOSELLERUS", "ATVPDKIKX0DER"):
            ...

What it sets up, so that every caller does the same:
- the channel's service config (`service_config.json`, shipped beside this file and documented in the
  README for other languages): a 10 s default deadline, and retries of UNAVAILABLE only (AIP-194),
  with backoff; every write carries a request_id, so retrying one is safe;
- the bearer token on every call, and a request id (`x-request-id`) the server logs;
- TLS or mutual TLS when given the files.

`Client` is synchronous; `AsyncClient` gives the same stubs on a `grpc.aio` channel. Both expose the
generated stubs (`orders`, `metrics`) with the defaults applied, and `Client` adds typed helpers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.timestamp_pb2 import Timestamp

from cancelguard.v1 import metrics_pb2, metrics_pb2_grpc, orders_pb2, orders_pb2_grpc

SERVICE_CONFIG = resources.files(__package__).joinpath("service_config.json").read_text(encoding="utf-8")
DEFAULT_DEADLINE_S = 10.0


@dataclass(frozen=True, slots=True)
class Tls:
    """PEM files: the CA that signed the server's certificate; with a certificate and key, mutual TLS."""

    ca_file: str
    cert_file: str = ""
    key_file: str = ""

    def credentials(self) -> grpc.ChannelCredentials:
        read = lambda p: Path(p).read_bytes() if p else None  # noqa: E731
        return grpc.ssl_channel_credentials(read(self.ca_file), read(self.key_file), read(self.cert_file))


def channel_options() -> list[tuple[str, Any]]:
    return [
        ("grpc.service_config", SERVICE_CONFIG),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", 30_000),
    ]


class _Defaults:
    """A generated stub whose calls carry the token, a request id and the default deadline (streams:
    none, they live until cancelled)."""

    def __init__(self, stub: Any, service: ServiceDescriptor, token: str, deadline_s: float | None) -> None:
        self._stub = stub
        self._streams = {m.name for m in service.methods if m.server_streaming}
        self._token = token
        self._deadline_s = deadline_s

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)
        deadline = None if name in self._streams else self._deadline_s

        def call(
            request: Any, *, timeout: float | None = None, metadata: Sequence[tuple[str, str]] = (), **kw: Any
        ) -> Any:
            sent = (("authorization", f"Bearer {self._token}"), ("x-request-id", uuid.uuid4().hex), *metadata)
            return method(request, timeout=timeout if timeout is not None else deadline, metadata=sent, **kw)

        return call


def _timestamp(at: datetime | None) -> Timestamp | None:
    if at is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(at)
    return ts


_ORDERS = orders_pb2.DESCRIPTOR.services_by_name["OrderService"]
_METRICS = metrics_pb2.DESCRIPTOR.services_by_name["MetricsService"]


def _stubs(channel: Any, token: str, deadline_s: float | None) -> tuple[Any, Any]:
    """The OrderService and MetricsService stubs on `channel`, with the token and deadline on each call."""
    return (
        _Defaults(orders_pb2_grpc.OrderServiceStub(channel), _ORDERS, token, deadline_s),
        _Defaults(metrics_pb2_grpc.MetricsServiceStub(channel), _METRICS, token, deadline_s),
    )


class Client:
    def __init__(
        self,
        target: str,
        *,
        token: str,
        tls: Tls | None = None,
        deadline_s: float | None = DEFAULT_DEADLINE_S,
    ) -> None:
        options = channel_options()
        self.channel = (
            grpc.secure_channel(target, tls.credentials(), options=options)
            if tls is not None
            else grpc.insecure_channel(target, options=options)
        )
        self.orders, self.metrics = _stubs(self.channel, token, deadline_s)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- typed helpers ---

    def cancellation_rate(
        self,
        seller: str,
        marketplace_id: str,
        *,
        live: bool = False,
        days: int = 0,
        as_of: datetime | None = None,
    ) -> metrics_pb2.CancellationRate:
        kind = metrics_pb2.WINDOW_KIND_LIVE if live else metrics_pb2.WINDOW_KIND_AMAZON_ALIGNED
        request = metrics_pb2.GetCancellationRateRequest(
            seller_account=seller,
            marketplace_id=marketplace_id,
            window_kind=kind,
            window_days=days,
            as_of=_timestamp(as_of),
        )
        return self.metrics.GetCancellationRate(request)  # type: ignore[no-any-return]

    def cancellation_rates(
        self, *, seller: str = "", live: bool = False, as_of: datetime | None = None
    ) -> Iterator[metrics_pb2.CancellationRate]:
        kind = metrics_pb2.WINDOW_KIND_LIVE if live else metrics_pb2.WINDOW_KIND_AMAZON_ALIGNED
        token = ""
        while True:
            page = self.metrics.ListCancellationRates(
                metrics_pb2.ListCancellationRatesRequest(
                    seller_account=seller, window_kind=kind, as_of=_timestamp(as_of), page_token=token
                )
            )
            yield from page.rates
            token = page.next_page_token
            if not token:
                return

    def history(
        self, seller: str, marketplace_id: str, *, days: int = 30, as_of: datetime | None = None
    ) -> list[metrics_pb2.RateOnDay]:
        reply = self.metrics.GetCancellationRateHistory(
            metrics_pb2.GetCancellationRateHistoryRequest(
                seller_account=seller, marketplace_id=marketplace_id, days=days, as_of=_timestamp(as_of)
            )
        )
        return list(reply.days)

    def orders_list(
        self,
        seller: str,
        *,
        marketplace_id: str = "",
        actions: Sequence[Any] = (),
        needs_review: bool | None = None,
        purchased_after: datetime | None = None,
        limit: int | None = None,
        page_size: int = 0,
    ) -> Iterator[orders_pb2.Order]:
        request = orders_pb2.ListOrdersRequest(
            seller_account=seller,
            marketplace_id=marketplace_id,
            actions=actions,
            purchased_after=_timestamp(purchased_after),
            page_size=page_size,
        )
        if needs_review is not None:
            request.needs_review = needs_review
        given = 0
        while True:
            page = self.orders.ListOrders(request)
            for order in page.orders:
                yield order
                given += 1
                if limit is not None and given >= limit:
                    return
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    def open_requests(self, seller: str, marketplace_id: str) -> Iterator[orders_pb2.Order]:
        request = orders_pb2.ListCancellationRequestsRequest(
            seller_account=seller, marketplace_id=marketplace_id
        )
        while True:
            page = self.orders.ListCancellationRequests(request)
            yield from page.orders
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    def decide(
        self,
        seller: str,
        marketplace_id: str,
        order_id: str,
        cancel_reason: str,
        *,
        order_item_ids: Sequence[str] = (),
        request_id: str | None = None,
        submit_feed: bool = False,
    ) -> orders_pb2.DecideCancellationResponse:
        """Cancel an order. Pass the same request_id to retry safely; a new one is made otherwise.
        `submit_feed`: cancelguard submits the feed to Amazon (follow it with `feed_submission`)."""
        return self.orders.DecideCancellation(  # type: ignore[no-any-return]
            orders_pb2.DecideCancellationRequest(
                seller_account=seller,
                marketplace_id=marketplace_id,
                amazon_order_id=order_id,
                cancel_reason=cancel_reason,
                order_item_ids=order_item_ids,
                request_id=request_id or str(uuid.uuid4()),
                submit_feed=submit_feed,
            )
        )

    def feed_submission(self, seller: str, event_id: str) -> orders_pb2.FeedSubmission:
        """Where the cancel feed of a decision (its event_id) stands on Amazon's side."""
        return self.orders.GetFeedSubmission(  # type: ignore[no-any-return]
            orders_pb2.GetFeedSubmissionRequest(seller_account=seller, event_id=event_id)
        )


class AsyncClient:
    """The same stubs and defaults on a `grpc.aio` channel."""

    def __init__(
        self,
        target: str,
        *,
        token: str,
        tls: Tls | None = None,
        deadline_s: float | None = DEFAULT_DEADLINE_S,
    ) -> None:
        options = channel_options()
        self.channel = (
            grpc.aio.secure_channel(target, tls.credentials(), options=options)
            if tls is not None
            else grpc.aio.insecure_channel(target, options=options)
        )
        self.orders, self.metrics = _stubs(self.channel, token, deadline_s)

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


def service_config() -> dict[str, Any]:
    return dict(json.loads(SERVICE_CONFIG))
