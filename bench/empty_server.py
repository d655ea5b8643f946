"""The anchor of `make bench-api`: a grpc.aio server with the API's own methods (same paths, same request
and response types, decoded and encoded the same way) whose handlers do nothing but return an empty
response. What gRPC itself costs in Python on this machine; the API's read RPCs are measured against it.

    python bench/empty_server.py PORT [--loop=uvloop] [METHOD=FILE ...]

METHOD=FILE: the serialized response in FILE is the answer to every call of METHOD (for example
`ListCancellationRequests=page.bin`): what gRPC costs to carry an answer of that size, as the API
sends it, with nothing computed. --loop=uvloop: on uvloop's event loop, as the API runs (the default is
asyncio's own, a plain grpc.aio server's).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import grpc
from google.protobuf.message_factory import GetMessageClass

from cancelguard.api.server import SERVICES
from cancelguard.runtime import run_on_loop


def handlers(answers: dict[str, bytes]) -> list[grpc.GenericRpcHandler]:
    out = []
    for service in SERVICES:
        methods = {}
        for method in service.methods:
            if method.server_streaming:
                continue
            response: object = GetMessageClass(method.output_type)()
            serialize = GetMessageClass(method.output_type).SerializeToString
            if method.name in answers:
                response, serialize = answers[method.name], bytes  # as it is, as the API sends held answers

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


async def main(port: int, answers: dict[str, bytes]) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(handlers(answers))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await server.stop(1)


if __name__ == "__main__":
    loop = next((arg.split("=", 1)[1] for arg in sys.argv[2:] if arg.startswith("--loop=")), "asyncio")
    pairs = (arg.partition("=") for arg in sys.argv[2:] if not arg.startswith("--loop="))
    answers = {method: Path(file).read_bytes() for method, _, file in pairs}
    run_on_loop(main(int(sys.argv[1]), answers), loop)
