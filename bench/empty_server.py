"""The anchor of `make bench-api`: a grpc.aio server with the API's own methods (same paths, same request
and response types, decoded and encoded the same way) whose handlers do nothing but return an empty
response. What gRPC itself costs in Python on this machine; the API's read RPCs are measured against it.

    python bench/empty_server.py PORT [PAGE]

PAGE: a file of serialized ListCancellationRequestsResponse bytes, sent as the answer to every
ListCancellationRequests call (the anchor of a page: what gRPC costs to carry one of that size).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import grpc
from google.protobuf.message_factory import GetMessageClass

from cancelguard.api.server import SERVICES


def handlers(page: bytes = b"") -> list[grpc.GenericRpcHandler]:
    out = []
    for service in SERVICES:
        methods = {}
        for method in service.methods:
            if method.server_streaming:
                continue
            response: object = GetMessageClass(method.output_type)()
            serialize = GetMessageClass(method.output_type).SerializeToString
            if page and method.name == "ListCancellationRequests":
                response, serialize = page, bytes  # sent as it is, as the API sends its cached pieces

            async def empty(
                request: object, context: grpc.aio.ServicerContext, response: object = response
            ) -> object:
                return response

            methods[method.name] = grpc.unary_unary_rpc_method_handler(
                empty,
                request_deserializer=GetMessageClass(method.input_type).FromString,
                response_serializer=serialize,
            )
        out.append(grpc.method_handlers_generic_handler(service.full_name, methods))
    return out


async def main(port: int, page: bytes) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(handlers(page))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await server.stop(1)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), Path(sys.argv[2]).read_bytes() if len(sys.argv) > 2 else b""))
