"""The wiring hands each call's handler the metadata of that call: the gate authenticates what came with
the call, whichever calls are handled in between; an answer the servicer holds goes only to a caller
let in."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from cancelguard.api.auth import CallerRegistry, parse_callers
from cancelguard.api.server import SERVICES
from cancelguard.api.wiring import Gate, Held, InFlight, add_services, current_call
from cancelguard.demo_credentials import callers_toml
from cancelguard.v1 import metrics_pb2

SERVICE = SERVICES[1]  # MetricsService
PATH = f"/{SERVICE.full_name}/GetCancellationRate"


class Details(grpc.HandlerCallDetails):
    def __init__(self, method: str, metadata: tuple[tuple[str, str], ...]) -> None:
        self.method = method
        self.invocation_metadata = metadata


class Context:
    def __init__(self) -> None:
        self.status: Any = None

    async def abort_with_status(self, status: Any) -> None:
        self.status = status
        raise RuntimeError("aborted")


class Servicer:
    """Every method answers the caller's name, from the call's context; a rate of a marketplace HELD... is
    held (while `holding`), and each request whose answer is looked for is counted by its marketplace."""

    def __init__(self) -> None:
        self.holding = True
        self.decoded: dict[str, int] = {}
        self.held = {"GetCancellationRate": Held(self.place, self.answer)}

    def place(self, request: Any) -> tuple[tuple[str, str], str]:
        self.decoded[request.marketplace_id] = self.decoded.get(request.marketplace_id, 0) + 1
        return (request.seller_account, request.marketplace_id), "rate"  # the account first

    def answer(self, place: tuple[tuple[str, str], str]) -> bytes | None:
        (_, marketplace), _ = place
        return b"held" if marketplace.startswith("HELD") and self.holding else None

    def __getattr__(self, name: str) -> Any:
        async def behavior(request: Any, context: Any) -> str:
            return current_call().caller.name

        return behavior


class Server:
    def __init__(self) -> None:
        self.handlers: list[grpc.GenericRpcHandler] = []

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.handlers += handlers


def generic_handler(servicer: Servicer | None = None, seen_limit: int = 100) -> grpc.GenericRpcHandler:
    registry = CallerRegistry(None)
    registry.callers = parse_callers(
        callers_toml({"oms": ("tok-oms", ["S1"]), "wms": ("tok-wms", ["S1"]), "other": ("tok-other", ["S2"])})
    )
    server = Server()
    gate = Gate(registry, InFlight(limit=100))
    add_services(server, [(SERVICE, servicer or Servicer())], gate, seen_limit)  # type: ignore[arg-type]
    [handler] = server.handlers
    return handler


def bytes_of(marketplace: str = "ATVPDKIKX0DER", seller: str = "S1") -> bytes:
    request = metrics_pb2.GetCancellationRateRequest(seller_account=seller, marketplace_id=marketplace)
    return request.SerializeToString()


async def answer(
    handler: grpc.RpcMethodHandler, context: Context, marketplace: str = "ATVPDKIKX0DER", seller: str = "S1"
) -> Any:
    assert handler.request_deserializer is None  # the handler takes the bytes, as gRPC hands them over
    try:
        return await handler.unary_unary(bytes_of(marketplace, seller), context)
    except RuntimeError:
        return None


@pytest.mark.parametrize(
    ("metadata", "caller", "code"),
    [
        ((("authorization", "Bearer tok-oms"),), "oms", None),
        ((("user-agent", "x"), ("authorization", "Bearer tok-wms")), "wms", None),
        ((), None, grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", "Bearer tok-nobody"),), None, grpc.StatusCode.UNAUTHENTICATED),
    ],
)
def test_each_call_is_authenticated_with_its_own_metadata(
    metadata: tuple[tuple[str, str], ...], caller: str | None, code: grpc.StatusCode | None
) -> None:
    service = generic_handler()

    async def run() -> None:
        # handlers picked for two calls before either runs: each keeps its own call's metadata
        mine = service.service(Details(PATH, metadata))
        other = service.service(Details(PATH, (("authorization", "Bearer tok-oms"),)))
        assert mine is not None and other is not None
        context = Context()
        assert await answer(mine, context) == caller
        assert (context.status.code if context.status else None) == code
        assert await answer(other, Context()) == "oms"

    asyncio.run(run())


def test_a_held_answer_goes_only_to_a_caller_let_in() -> None:
    service = generic_handler()

    def handler(token: str) -> grpc.RpcMethodHandler:
        found = service.service(Details(PATH, (("authorization", f"Bearer {token}"),)))
        assert found is not None
        return found

    async def run() -> None:
        assert await answer(handler("tok-oms"), Context(), "HELD") == b"held"
        assert await answer(handler("tok-oms"), Context(), "OTHER") == "oms"  # not held: the servicer's
        for token, seller, code in (
            ("tok-nobody", "S1", grpc.StatusCode.UNAUTHENTICATED),
            ("tok-oms", "S2", grpc.StatusCode.PERMISSION_DENIED),
        ):
            refused = Context()
            assert await answer(handler(token), refused, "HELD", seller) is None
            assert refused.status.code is code

    asyncio.run(run())


@pytest.mark.parametrize(
    ("token", "seller", "code"),
    [
        ("tok-oms", "S1", None),
        ("tok-wms", "S1", None),
        ("tok-nobody", "S1", grpc.StatusCode.UNAUTHENTICATED),
        ("", "S1", grpc.StatusCode.UNAUTHENTICATED),
        ("tok-other", "S1", grpc.StatusCode.PERMISSION_DENIED),  # the bytes seen from a caller let in
        ("tok-other", "S2", None),
    ],
)
def test_request_bytes_seen_before_are_let_in_as_the_first_time(
    token: str, seller: str, code: grpc.StatusCode | None
) -> None:
    """A request whose bytes were seen (and answered from what is held) is not decoded again, and its caller
    is checked as any other: the same answer as for bytes never seen."""
    servicer = Servicer()
    service = generic_handler(servicer)
    metadata = (("authorization", f"Bearer {token}"),) if token else ()

    async def run() -> None:
        for asker in ("tok-oms", "tok-other"):  # the bytes of both sellers seen
            found = service.service(Details(PATH, (("authorization", f"Bearer {asker}"),)))
            assert found is not None
            assert await answer(found, Context(), "HELD", "S1" if asker == "tok-oms" else "S2") == b"held"
        assert servicer.decoded == {"HELD": 2}
        for _ in range(2):
            context = Context()
            found = service.service(Details(PATH, metadata))
            assert found is not None
            assert await answer(found, context, "HELD", seller) == (b"held" if code is None else None)
            assert (context.status.code if context.status else None) == code
        assert servicer.decoded == {"HELD": 2}  # none of them decoded again
        # and the next call, a good one with the same bytes, is served
        good = service.service(Details(PATH, (("authorization", "Bearer tok-oms"),)))
        assert good is not None
        assert await answer(good, Context(), "HELD", "S1") == b"held"

    asyncio.run(run())


def test_undecodable_bytes_are_refused_never_kept_and_the_next_request_is_served() -> None:
    servicer = Servicer()
    service = generic_handler(servicer)
    seen = service._by_path[PATH].seen  # type: ignore[attr-defined]
    found = service.service(Details(PATH, (("authorization", "Bearer tok-oms"),)))
    assert found is not None

    async def run() -> None:
        for _ in range(2):
            refused = Context()
            with pytest.raises(RuntimeError):  # aborted
                await found.unary_unary(b"\x0a\xff", refused)  # a string field cut short
            assert refused.status.code is grpc.StatusCode.INVALID_ARGUMENT
        assert not seen and not servicer.decoded
        assert await answer(found, Context(), "HELD") == b"held"

    asyncio.run(run())


def test_request_bytes_seen_before_are_answered_by_the_servicer_when_nothing_is_held() -> None:
    servicer = Servicer()
    service = generic_handler(servicer)
    metadata = (("authorization", "Bearer tok-wms"),)

    async def run() -> None:
        found = service.service(Details(PATH, metadata))
        assert found is not None
        assert await answer(found, Context(), "HELD") == b"held"
        servicer.holding = False  # the cache dropped it
        assert await answer(found, Context(), "HELD") == "wms"  # the servicer's, from the call's context

    asyncio.run(run())


def test_only_request_bytes_answered_from_what_is_held_are_kept_and_they_are_bounded() -> None:
    servicer = Servicer()
    service = generic_handler(servicer, seen_limit=3)
    metadata = (("authorization", "Bearer tok-oms"),)
    seen = service._by_path[PATH].seen  # type: ignore[attr-defined]

    async def run() -> None:
        found = service.service(Details(PATH, metadata))
        assert found is not None
        for _ in range(2):
            assert await answer(found, Context(), "OTHER") == "oms"  # not held: the servicer's
        assert servicer.decoded == {"OTHER": 2} and not seen
        for _ in range(2):
            for n in range(5):
                assert await answer(found, Context(), f"HELD{n}") == b"held"
        assert 0 < len(seen) <= 3
        # five requests, three kept at most: kept, then forgotten all at once, and decoded again
        assert sum(servicer.decoded[f"HELD{n}"] for n in range(5)) > 5

    asyncio.run(run())


def test_a_path_of_another_service_or_method_is_not_ours() -> None:
    service = generic_handler()
    assert service.service(Details(f"/{SERVICE.full_name}/NoSuchMethod", ())) is None
    assert service.service(Details("/grpc.health.v1.Health/Check", ())) is None


def test_calls_beyond_the_limit_are_shed_at_once_and_health_still_answers() -> None:
    """A real server on loopback: with its limit of calls in flight, a new call is refused with
    RESOURCE_EXHAUSTED at once, health checks still answer, and once a call ends the next gets in."""
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from grpc_status import rpc_status

    release, both_in = asyncio.Event(), asyncio.Event()
    holding = 0

    class Holding:
        def __init__(self) -> None:
            self.held: dict[str, Any] = {}  # no answer held: every call waits in its handler

        def __getattr__(self, name: str) -> Any:
            async def behavior(request: Any, context: Any) -> metrics_pb2.CancellationRate:
                nonlocal holding
                holding += 1
                if holding == 2:
                    both_in.set()
                await release.wait()
                return metrics_pb2.CancellationRate(seller_account="S1")

            return behavior

    async def run() -> None:
        registry = CallerRegistry(None)
        registry.callers = parse_callers(callers_toml({"oms": ("tok-oms", ["S1"])}))
        server = grpc.aio.server()
        add_services(server, [(SERVICE, Holding())], Gate(registry, InFlight(limit=2)))
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                rate = channel.unary_unary(
                    PATH,
                    request_serializer=metrics_pb2.GetCancellationRateRequest.SerializeToString,
                    response_deserializer=metrics_pb2.CancellationRate.FromString,
                )
                request = metrics_pb2.GetCancellationRateRequest(seller_account="S1", marketplace_id="M")
                metadata = (("authorization", "Bearer tok-oms"),)
                held = [asyncio.ensure_future(rate(request, metadata=metadata, timeout=30)) for _ in range(2)]
                await both_in.wait()  # both calls are in their handlers
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await rate(request, metadata=metadata, timeout=30)
                assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
                status = rpc_status.from_call(refused.value)
                assert status is not None and "OVERLOADED" in str(status.details[0].value)
                assert "retry with backoff" in (refused.value.details() or "")
                check = health_pb2_grpc.HealthStub(channel).Check
                answer = await check(health_pb2.HealthCheckRequest(), timeout=30)
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
                release.set()
                assert [r.seller_account for r in await asyncio.gather(*held)] == ["S1", "S1"]
                assert (await rate(request, metadata=metadata, timeout=30)).seller_account == "S1"
        finally:
            await server.stop(None)

    asyncio.run(run())


def test_every_held_answer_of_the_api_has_a_place_that_names_the_requests_own_account_first() -> None:
    """The wiring lets request bytes seen before in by the seller their place names (`Held`): each servicer's
    place must name the seller account of the request itself, or a caller could replay another tenant's
    bytes."""
    import types

    from google.protobuf.message_factory import GetMessageClass

    from cancelguard.api.cache import ReadCache
    from cancelguard.api.reads import Reads
    from cancelguard.api.servicers import MetricsService, OrderService

    reads = Reads(types.SimpleNamespace(forget_active=lambda: None), ReadCache())  # type: ignore[arg-type]
    no_io: Any = None
    servicers = (OrderService(reads, no_io, no_io, no_io, no_io), MetricsService(reads, no_io, no_io, no_io))
    places = 0
    for service, servicer in zip(SERVICES, servicers, strict=True):
        for name, held in servicer.held.items():
            request_class = GetMessageClass(service.methods_by_name[name].input_type)
            for seller, marketplace in (("S1", "ATVPDKIKX0DER"), ("A2OTHERSELLER", "A1VC38T7YXB528")):
                place = held.place(request_class(seller_account=seller, marketplace_id=marketplace))
                assert place is not None and place[0] == (seller, marketplace), (name, place)
                places += 1
    assert places == 6  # GetOrder, ListCancellationRequests, GetCancellationRate: two requests each
