"""Registers the servicers from the service descriptors themselves, with two things the generated
`add_*Servicer_to_server` functions cannot give:

- a lenient request decoder: bytes that are not the request message (invalid UTF-8 in a string,
  truncated fields) reach the handler as `Undecodable`, which answers INVALID_ARGUMENT with an
  ErrorInfo, instead of gRPC's bare UNKNOWN;
- a count of the calls in flight, so that a shutdown can let every one of them finish (`InFlight`).

Every method of every service is registered from its descriptor, so a new RPC cannot skip either.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A request whose bytes are not its message; `error` says why."""

    error: str


def lenient(message_class: type[Message]) -> Callable[[bytes], Message | Undecodable]:
    def deserialize(data: bytes) -> Message | Undecodable:
        try:
            return message_class.FromString(data)
        except (DecodeError, RecursionError) as exc:  # RecursionError: absurdly nested messages
            return Undecodable(str(exc) or type(exc).__name__)

    return deserialize


class InFlight:
    """The calls being handled now; `drain` waits until there are none for a quiet moment."""

    QUIET_S = 0.25  # no new call for this long: the ones queued before the shutdown have all started

    def __init__(self) -> None:
        self.count = 0
        self._last_start = 0.0
        self._changed = asyncio.Event()

    def wrap(self, behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(behavior)
        async def counted(request: Any, context: grpc.aio.ServicerContext) -> Any:
            self.count += 1
            self._last_start = time.monotonic()
            try:
                return await behavior(request, context)
            finally:
                self.count -= 1
                self._changed.set()

        return counted

    async def drain(self, timeout_s: float) -> bool:
        """True when every call finished within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            now = time.monotonic()
            if self.count == 0 and now - self._last_start >= self.QUIET_S:
                return True
            if now >= deadline:
                return False
            self._changed.clear()
            wait = min(deadline - now, self.QUIET_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait)


def add_service(
    server: grpc.aio.Server, service: ServiceDescriptor, servicer: Any, in_flight: InFlight
) -> None:
    handlers = {}
    for method in service.methods:
        if method.client_streaming or method.server_streaming:
            raise NotImplementedError(f"{method.full_name}: streaming methods need their own handler kind")
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            in_flight.wrap(getattr(servicer, method.name)),
            request_deserializer=lenient(GetMessageClass(method.input_type)),
            response_serializer=GetMessageClass(method.output_type).SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
