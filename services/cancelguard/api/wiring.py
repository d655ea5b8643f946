"""Registers the servicers from the service descriptors themselves, so that every method of every
service, unary or streaming, gets the same treatment and a new RPC cannot skip any of it:

- a lenient request decoder: bytes that are not the request message (invalid UTF-8 in a string,
  truncated fields) reach the wrapper as `Undecodable`, which answers INVALID_ARGUMENT with an
  ErrorInfo, instead of gRPC's bare UNKNOWN;
- authentication: the caller's bearer token (`authorization: Bearer <token>`), or UNAUTHENTICATED;
- authorization: a request naming a `seller_account` the caller may not see is PERMISSION_DENIED,
  decided here, before the servicer (and so the store) is touched: the same answer, in the same time,
  whether that account or its orders exist or not;
- every failure answered with its documented status and an ErrorInfo (`errors.error_for`);
- Prometheus counts and latency by method and code, the caller's name and a request id on every log
  line of the call (`logs.context`), never its token;
- an answer the servicer holds for the request (`Held`: a lookup in the read cache, no I/O) given as
  soon as the caller is let in, without the call's context, which only its log lines and the servicer's
  own code need (a held answer is the bulk of the reads, and that context costs as much as the lookup);
  and for request bytes seen before, without decoding them again (`_Method.seen`);
- a count of the calls in flight, so that a shutdown can let every one of them finish (`InFlight`),
  and tell streams to end (`InFlight.closing`); beyond its limit a new call is refused at once with
  RESOURCE_EXHAUSTED (load shedding). Counted here, not by gRPC's `maximum_concurrent_rpcs`: that limiter
  costs every call a task and a lock (about 2% of a read's CPU, measured), and it would refuse health
  checks too, so that an overloaded replica would look dead to Kubernetes.

Health and reflection are registered elsewhere, need no credential and are never shed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from time import perf_counter
from typing import Any, NamedTuple

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass
from prometheus_client import REGISTRY, Metric
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

from cancelguard import logs
from cancelguard.api import errors, validation
from cancelguard.api.auth import Caller, CallerRegistry
from cancelguard.api.errors import ApiError

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 10.0, 300.0)


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A request whose bytes are not its message; `error` says why."""

    error: str


class Call(NamedTuple):
    """The call being handled, for the servicer: who asks, and the id its log lines carry. (A tuple: one is
    made for every call, and a frozen dataclass takes three times as long to make.)"""

    method: str
    caller: Caller
    request_id: str


# (key, value); values are str but for keys ending in -bin (bytes), which the gate never reads
Metadata = tuple[tuple[str, Any], ...]
# where a servicer holds an answer (`Held.place`): the account it is of, (seller, marketplace), first
Place = tuple[Any, ...]


_CALL: ContextVar[Call] = ContextVar("cancelguard_api_call")


def current_call() -> Call:
    return _CALL.get()


def lenient(message_class: type[Message]) -> Callable[[bytes], Message | Undecodable]:
    def deserialize(data: bytes) -> Message | Undecodable:
        try:
            return message_class.FromString(data)
        except (DecodeError, RecursionError) as exc:  # RecursionError: absurdly nested messages
            return Undecodable(str(exc) or type(exc).__name__)

    return deserialize


def serializer(message_class: type[Message]) -> Callable[[Message | bytes], bytes]:
    """Messages, or responses a servicer already holds serialized (its caches): sent as they are."""
    serialize = message_class.SerializeToString

    def to_bytes(response: Message | bytes) -> bytes:
        return response if type(response) is bytes else serialize(response)  # type: ignore[arg-type]

    return to_bytes


class InFlight:
    """The calls being handled now, at most `limit` (more are refused: `overloaded`); `drain` waits until
    there are none for a quiet moment."""

    QUIET_S = 0.25  # no new call for this long: the ones queued before the shutdown have all started

    def __init__(self, limit: int) -> None:
        self.count = 0
        self.limit = limit
        self.overloaded = errors.overloaded(limit)
        self._last_start = 0.0
        self._changed = asyncio.Event()
        self.closing = asyncio.Event()  # set at shutdown: streams end, and say why

    def started(self, now: float) -> None:
        """`now`: perf_counter(), which the handler reads anyway for the call's latency."""
        self.count += 1
        self._last_start = now

    def finished(self) -> None:
        self.count -= 1
        self._changed.set()

    async def drain(self, timeout_s: float) -> bool:
        """True when every call finished within `timeout_s`."""
        self.closing.set()
        deadline = perf_counter() + timeout_s
        while True:
            now = perf_counter()
            if self.count == 0 and now - self._last_start >= self.QUIET_S:
                return True
            if now >= deadline:
                return False
            self._changed.clear()
            wait = min(deadline - now, self.QUIET_S)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._changed.wait()


class Telemetry:
    """`cancelguard_api_rpcs_total` by method, code and caller, and `cancelguard_api_rpc_seconds` (streams:
    their whole life) by method and code: kept as plain numbers and handed to Prometheus when it scrapes
    (a Counter's or a Histogram's child takes a lock per change, which costs more than the rest of a
    call's bookkeeping). One per process, as the Prometheus registry is."""

    def __init__(self) -> None:
        self._methods: dict[str, MethodTelemetry] = {}

    def method(self, name: str) -> MethodTelemetry:
        """The figures of the method `name`, which its handler keeps at hand (no lookup by name a call)."""
        return self._methods.setdefault(name, MethodTelemetry())

    def record(self, method: str, code: str, caller: str, seconds: float) -> None:
        self.method(method).record(code, caller, seconds)

    def collect(self) -> Iterator[Metric]:
        # copies first: the scrape runs in Prometheus' thread while the event loop counts
        counts = CounterMetricFamily(
            "cancelguard_api_rpcs", "RPCs handled", labels=["method", "code", "caller"]
        )
        latency = HistogramMetricFamily(
            "cancelguard_api_rpc_seconds",
            "RPC latency (streams: their whole life)",
            labels=["method", "code"],
        )
        bounds = [*(str(b) for b in LATENCY_BUCKETS), "+Inf"]
        for name, figures in list(self._methods.items()):
            for code, by_caller in list(figures.counts.items()):
                for caller, n in list(by_caller.items()):
                    counts.add_metric((name, code, caller), n)
            for code, row in list(figures.latency.items()):
                row = row[:]
                cumulative = list(itertools.accumulate(row[:-1]))
                latency.add_metric(
                    (name, code), list(zip(bounds, cumulative, strict=True)), sum_value=row[-1]
                )
        return iter((counts, latency))


class MethodTelemetry:
    """One method's calls by code and caller, and latency by code (per bucket, then +Inf, then the sum):
    keyed by strings, whose hashes Python keeps, where a key of a tuple is built and hashed on every call."""

    __slots__ = ("counts", "latency")

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = {}
        self.latency: dict[str, list[float]] = {}

    def record(self, code: str, caller: str, seconds: float) -> None:
        by_caller = self.counts.get(code)
        if by_caller is None:
            self.latency[code] = [0] * (len(LATENCY_BUCKETS) + 2)
            by_caller = self.counts[code] = {}
        by_caller[caller] = by_caller.get(caller, 0) + 1
        row = self.latency[code]
        row[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # the first bucket whose bound is >= seconds
        row[-1] += seconds


TELEMETRY = Telemetry()
REGISTRY.register(TELEMETRY)


class Gate:
    """Authentication, authorization and the call's context: one per server."""

    def __init__(self, registry: CallerRegistry, in_flight: InFlight) -> None:
        self.registry = registry
        self.in_flight = in_flight
        self.telemetry = TELEMETRY
        self._ids = itertools.count(1)
        self._prefix = os.urandom(4).hex()  # request ids unique across processes and restarts

    def admit(self, request: Any, metadata: Metadata, method: str, checks_seller: bool) -> Caller:
        """The caller let in (the call counted in flight already), or ApiError: RESOURCE_EXHAUSTED (over the
        limit), UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT (undecodable)."""
        caller = self.authenticate(metadata)
        if type(request) is Undecodable:
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "UNDECODABLE_REQUEST",
                f"the request is not a valid {method} request message: {request.error}",
            )
        return self.authorize(caller, request.seller_account if checks_seller else "")

    def authenticate(self, metadata: Metadata) -> Caller:
        """The caller whose bearer token came with the call, or ApiError: RESOURCE_EXHAUSTED (over the
        limit of calls in flight), UNAUTHENTICATED."""
        if self.in_flight.count > self.in_flight.limit:
            raise self.in_flight.overloaded
        token = ""
        for key, value in metadata or ():
            if key == "authorization":
                token = value
                break
        if not token:
            raise errors.NO_CREDENTIALS
        scheme, _, secret = token.partition(" ")
        caller = self.registry.callers.authenticate(secret) if scheme.lower() == "bearer" else None
        if caller is None:
            raise errors.BAD_CREDENTIALS
        return caller

    @staticmethod
    def authorize(caller: Caller, seller: str) -> Caller:
        """`caller`, if it may see the seller account the request names (""): none), or PERMISSION_DENIED."""
        if seller and not caller.may_see(seller):  # (an account it may see was checked at load)
            # the shape first (never the store): an unknown account and a foreign one look the same
            validation.identifier(seller, "seller_account")
            raise errors.not_allowed(seller)
        return caller

    def enter(self, metadata: Metadata, method: str, caller: Caller | None) -> None:
        """The call's context, for its log lines and the servicer (`current_call`): its request id (the
        caller's `x-request-id`, or a new one), method and caller (None: not let in)."""
        request_id = next((value for key, value in metadata or () if key == "x-request-id"), "")
        if not request_id or len(request_id) > 64 or not request_id.isprintable():
            request_id = f"{self._prefix}-{next(self._ids)}"
        fields = {"request_id": request_id, "method": method}  # this call's own: its log lines'
        if caller is not None:
            fields["caller"] = caller.name
            _CALL.set(Call(method, caller, request_id))
        logs.context.set(fields)


class Held(NamedTuple):
    """The answers a servicer may hold for a method's requests (in the read cache), found without I/O.
    `place(request)`: where the answer to a request (valid, and its seller allowed the caller) would be held,
    read from the request alone, so the same bytes always give the same place (None: never held): a tuple
    whose first item is the account the answer is of, `(seller_account, marketplace_id)`, the strings
    interned (a place may be kept for long: `_Method.seen`);
    `answer(place)`: the answer held there now, serialized (None: none)."""

    place: Callable[[Any], Place | None]
    answer: Callable[[Any], bytes | None]


class _Method:
    """A method as the gate serves it, built once: its name, whether its request names a seller account,
    the servicer's behavior and the answers it may hold (None: it holds none), and the lenient decoder and
    the encoder of its messages.

    `seen`: the bytes of requests that were answered from what the servicer holds (so valid, from a caller
    let in), with the place of their answer (`Held.place`, which names the seller account too), at most
    `seen_limit` (then forgotten all at once): the same bytes again are not decoded, and their answer is
    looked up at once. Most reads repeat a request (a dashboard's rate, an order asked again), and decoding
    it and reading its fields cost as much as the rest of a held answer. Nothing in it goes stale: it keeps
    what the bytes say, not the answer. The place itself is what is kept, nothing built around it: each
    object kept brings the cyclic collector's next collection nearer. With a tuple of the seller and the
    place kept instead, full collections came in half of `make bench-api-loop`'s rounds of orders asked
    for the first time (8.4-9.1 µs a call in those rounds, 5.6-5.9 µs in the others); with the place
    alone, in one round of seven.
    """

    __slots__ = (
        "behavior",
        "checks_seller",
        "deserialize",
        "gate",
        "handler",
        "held",
        "name",
        "seen",
        "seen_limit",
        "serialize",
        "telemetry",
    )

    def __init__(
        self,
        gate: Gate,
        method: MethodDescriptor,
        behavior: Callable[..., Any],
        held: Held | None,
        seen_limit: int,
    ) -> None:
        self.gate = gate
        self.name = method.name
        self.checks_seller = "seller_account" in method.input_type.fields_by_name
        self.behavior = behavior
        self.held = held
        self.seen: dict[bytes, Place] = {}
        self.seen_limit = seen_limit
        self.telemetry = gate.telemetry.method(method.name)
        self.deserialize = lenient(GetMessageClass(method.input_type))
        self.serialize = serializer(GetMessageClass(method.output_type))
        self.handler = _StreamHandler if method.server_streaming else _UnaryHandler

    def remember(self, data: bytes, place: Place) -> None:
        """The request `data` was answered from `place`: kept for the same bytes again."""
        if len(self.seen) >= self.seen_limit:
            self.seen.clear()
        self.seen[data] = place


class _Handler(grpc.RpcMethodHandler):
    """One call's handler: its method's, with the call's metadata bound. gRPC hands the metadata to
    `service` to pick the handler; asking the context for it again converts it again from gRPC's core
    (about 5 µs a call, measured). Built for every call, so it holds two references and nothing else
    (a `grpc.unary_unary_rpc_method_handler` with a partial costs three times as long)."""

    __slots__ = ("_metadata", "_method")
    request_streaming = False
    stream_unary = None
    stream_stream = None

    def __init__(self, method: _Method, metadata: Metadata) -> None:
        self._method = method
        self._metadata = metadata

    @property
    def response_serializer(self) -> Callable[[Message | bytes], bytes]:
        return self._method.serialize


class _UnaryHandler(_Handler):
    __slots__ = ()
    request_deserializer = None  # gRPC hands over the request's bytes: decoded here, unless seen before
    response_streaming = False
    unary_stream = None

    async def unary_unary(self, data: bytes, context: grpc.aio.ServicerContext) -> Any:
        method = self._method
        gate = method.gate
        start = perf_counter()
        gate.in_flight.started(start)
        code, caller, entered, request = "OK", None, False, None
        try:
            held = method.held
            place = seen = method.seen.get(data) if held is not None else None
            if seen is None:
                request = method.deserialize(data)
                caller = gate.admit(request, self._metadata, method.name, method.checks_seller)
                place = held.place(request) if held is not None else None
            else:
                caller = gate.authorize(gate.authenticate(self._metadata), seen[0][0])  # its account's seller
            if place is not None:
                answer = held.answer(place)  # type: ignore[union-attr]  # (a place comes from `held` only)
                if answer is not None:
                    if seen is None:
                        method.remember(data, place)
                    return answer
            if request is None:  # seen before, not held now: the servicer needs the request
                request = method.deserialize(data)
            gate.enter(self._metadata, method.name, caller)
            entered = True
            return await method.behavior(request, context)
        except Exception as exc:
            if not entered:  # refused, or the held lookup failed: the error's log line needs the context
                gate.enter(self._metadata, method.name, caller)
            error = errors.error_for(exc, method.name)
            code = error.code.name
            await context.abort_with_status(error.to_status())
        finally:
            gate.in_flight.finished()
            method.telemetry.record(code, "-" if caller is None else caller.name, perf_counter() - start)


class _StreamHandler(_Handler):
    __slots__ = ()
    response_streaming = True
    unary_unary = None

    @property
    def request_deserializer(self) -> Callable[[bytes], Message | Undecodable]:
        return self._method.deserialize

    async def unary_stream(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        method = self._method
        gate = method.gate
        start = perf_counter()
        gate.in_flight.started(start)
        code, caller, entered = "OK", None, False
        try:
            caller = gate.admit(request, self._metadata, method.name, method.checks_seller)
            gate.enter(self._metadata, method.name, caller)
            entered = True
            async for response in method.behavior(request, context):
                yield response
        except Exception as exc:
            if not entered:  # refused: the error's log line needs the context
                gate.enter(self._metadata, method.name, caller)
            error = errors.error_for(exc, method.name)
            code = error.code.name
            await context.abort_with_status(error.to_status())
        finally:
            gate.in_flight.finished()
            method.telemetry.record(code, "-" if caller is None else caller.name, perf_counter() - start)


class _Methods(grpc.GenericRpcHandler):
    """The methods of all the services by path: one lookup a call, whichever service it is for."""

    def __init__(self, by_path: dict[str, _Method]) -> None:
        self._by_path = by_path

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = self._by_path.get(handler_call_details.method)
        if method is None:
            return None
        return method.handler(method, handler_call_details.invocation_metadata)


def add_services(
    server: grpc.aio.Server,
    services: Iterable[tuple[ServiceDescriptor, Any]],
    gate: Gate,
    seen_limit: int = 200_000,
) -> None:
    """Every method of each (service, servicer) served through the gate; `seen_limit`: the request bytes a
    method with held answers keeps (`_Method.seen`)."""
    by_path = {}
    for service, servicer in services:
        held: dict[str, Held] = getattr(servicer, "held", {})  # method name -> the answers it may hold
        for method in service.methods:
            if method.client_streaming:
                raise NotImplementedError(f"{method.full_name}: client streaming is not supported")
            by_path[f"/{service.full_name}/{method.name}"] = _Method(
                gate, method, getattr(servicer, method.name), held.get(method.name), seen_limit
            )
    server.add_generic_rpc_handlers((_Methods(by_path),))
