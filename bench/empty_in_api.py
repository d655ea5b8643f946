"""An anchor of `make bench-api`: the API's own process (`cancelguard serve api`, with its Postgres pool,
Kafka producer, read-cache listener, probes, health and reflection services and channel options) whose two
services are answered by the empty handlers of `bench/empty_server.py` instead of the API's. Beside the
empty handler in a process of its own, it tells what the API's process costs a call, apart from what the
API does for the call itself.

    python bench/empty_in_api.py    (the settings from the environment, as for the API)
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import empty_server
import grpc
from google.protobuf.descriptor import ServiceDescriptor

from cancelguard.api import server as api_server
from cancelguard.api.wiring import Gate
from cancelguard.cli import main


def empty_services(
    server: grpc.aio.Server,
    services: Iterable[tuple[ServiceDescriptor, Any]],
    gate: Gate,
    seen_limit: int = 0,
) -> None:
    """In place of `wiring.add_services`: the same paths, answered empty, without the gate."""
    server.add_generic_rpc_handlers(tuple(empty_server.handlers({})))


if __name__ == "__main__":
    api_server.add_services = empty_services  # build_server registers the services through this name
    sys.exit(main(["serve", "api"]))
