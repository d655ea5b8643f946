"""The wiring hands each call's handler the metadata of that call: the gate authenticates what came with
the call, whichever calls are handled in between."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from cancelguard.api.auth import CallerRegistry, parse_callers
from cancelguard.api.server import SERVICES
from cancelguard.api.wiring import Gate, InFlight, add_service, current_call
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
    def __getattr__(self, name: str) -> Any:
        async def behavior(request: Any, context: Any) -> str:
            return current_call().caller.name

        return behavior


class Server:
    def __init__(self) -> None:
        self.handlers: list[grpc.GenericRpcHandler] = []

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.handlers += handlers


def generic_handler() -> grpc.GenericRpcHandler:
    registry = CallerRegistry(None)
    registry.callers = parse_callers(callers_toml({"oms": ("tok-oms", ["S1"]), "wms": ("tok-wms", ["S1"])}))
    server = Server()
    add_service(server, SERVICE, Servicer(), Gate(registry, InFlight()))  # type: ignore[arg-type]
    [handler] = server.handlers
    return handler


async def answer(handler: grpc.RpcMethodHandler, context: Context) -> Any:
    request = metrics_pb2.GetCancellationRateRequest(seller_account="S1", marketplace_id="ATVPDKIKX0DER")
    try:
        return await handler.unary_unary(handler.request_deserializer(request.SerializeToString()), context)
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


def test_a_path_of_another_service_or_method_is_not_ours() -> None:
    service = generic_handler()
    assert service.service(Details(f"/{SERVICE.full_name}/NoSuchMethod", ())) is None
    assert service.service(Details("/grpc.health.v1.Health/Check", ())) is None
