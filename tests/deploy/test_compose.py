"""deploy/compose: the whole stack under Docker Compose, fed the demo scenario, its rates read via the API;
the pollers poll the SP-API simulator's sellers (FAKE accounts), whose orders the API then serves.

A project of its own (name and 127.0.0.1 ports picked here), so it never meets `make compose-up`'s; taken
down with its volumes however the test ends.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import datetime, timedelta
from typing import Any

import grpc
import pytest

from cancelguard.client import Client
from cancelguard.demo_credentials import DEMO_TOKEN, SIMULATOR_SELLERS
from cancelguard.domain.policy import marketplace
from cancelguard.localstack import find_free_port
from cancelguard.simulator.scenario import DEFAULT_SHOPS
from cancelguard.v1 import metrics_pb2, orders_pb2

from .support import REPO, image_env

COMPOSE = REPO / "deploy" / "compose" / "compose.sh"
PORTS = ("KAFKA", "POSTGRES", "API", "INGESTION_HEALTH", "METRICS_HEALTH", "POLLERS_HEALTH", "AMAZON")
# a row of the demo: "  A1DEMOSELLERUS   DE   live 168 h     11-24 21:00..12-01 20:59   186   5   2.69% ..."
LIVE_ROW = re.compile(r"^\s+(\w+)\s+(\w\w)\s+live 168 h\s.*?\s(\d+)\s+(\d+)\s+[\d.]+%", re.M)
POLLED_WITHIN_S = 240  # the pollers' first polls of the 9 accounts, within the simulator's usage plans


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _cancelled_orders(truth: dict[str, Any]) -> list[dict[str, Any]]:
    """One order per simulator seller that Amazon cancelled in full, long enough ago that the pollers'
    first poll (up to two minutes before its time, as Amazon answers) reads it."""
    settled = _time(truth["as_of"]) - timedelta(minutes=5)
    picked: dict[str, dict[str, Any]] = {}
    for order in truth["orders"]:
        if (
            order["seller_id"] in SIMULATOR_SELLERS
            and order["channel"] == "MFN"
            and order["cancelled"]
            and not order["partial"]
            and _time(order["cancelled_at"]) < settled
        ):
            picked.setdefault(order["seller_id"], order)
    assert sorted(picked) == sorted(SIMULATOR_SELLERS), "the simulator's scenario cancels orders of each"
    return list(picked.values())


def test_the_compose_stack_serves_the_demo_rates_through_the_api() -> None:
    env = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": f"cancelguard-test-{uuid.uuid4().hex[:8]}",
        "CANCELGUARD_IMAGE": image_env("CANCELGUARD_IMAGE", "cancelguard:0.1.0"),
        **{f"CANCELGUARD_COMPOSE_{name}_PORT": str(find_free_port()) for name in PORTS},
    }

    def compose(*args: str, timeout: float = 300) -> str:
        out = subprocess.run(
            [str(COMPOSE), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        assert out.returncode == 0, f"compose {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
        return out.stdout

    def port(service: str, container_port: int) -> str:
        return compose("port", service, str(container_port)).strip().rsplit(":", 1)[1]

    try:
        compose("up", "-d")
        api_port = port("api", 50051)
        demo_env = {
            **env,
            "CANCELGUARD_KAFKA_BOOTSTRAP": f"127.0.0.1:{port('kafka', 19092)}",
            "CANCELGUARD_API_PORT": api_port,
            "CANCELGUARD_INGESTION_HEALTH_PORT": port("ingestion", 50052),
            "CANCELGUARD_METRICS_HEALTH_PORT": port("metrics", 50053),
        }
        demo = subprocess.run(
            [sys.executable, "-m", "cancelguard", "demo", "--attach"],
            env=demo_env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        # the check that failed can be anywhere in the story: its start and its end
        out = demo.stdout
        story = out if len(out) <= 8000 else f"{out[:4000]}\n...\n{out[-4000:]}"
        assert demo.returncode == 0, story + demo.stderr[-4000:]
        assert demo.stdout.count("-> matches") == 3, demo.stdout

        # the rates the demo printed, asked again of the API, here
        printed = LIVE_ROW.findall(demo.stdout)
        assert len(printed) == 3, demo.stdout
        shops = {
            (s.seller_id, marketplace(s.marketplace_id).country): s.marketplace_id for s in DEFAULT_SHOPS
        }
        with Client(f"127.0.0.1:{api_port}", token=DEMO_TOKEN) as api:  # the demo's FAKE caller
            stub = api.metrics
            for seller, country, orders, cancelled in printed:
                rate = stub.GetCancellationRate(
                    metrics_pb2.GetCancellationRateRequest(
                        seller_account=seller,
                        marketplace_id=shops[(seller, country)],
                        window_kind=metrics_pb2.WINDOW_KIND_LIVE,
                    ),
                    timeout=10,
                )
                assert (rate.total_orders, rate.cancelled_orders) == (int(orders), int(cancelled))
                assert rate.rate == pytest.approx(int(cancelled) / int(orders))

        # the stand-in for Amazon answers on its published port
        amazon = f"http://127.0.0.1:{port('amazon', 8700)}"
        with urllib.request.urlopen(f"{amazon}/_sim/health", timeout=10) as reply:
            assert reply.status == 200

        # the pollers: healthy by their own check, and the simulator's orders they polled (v2026 and v0
        # accounts, with the FAKE credentials of deploy/compose/amazon-simulator) served by the API
        (pollers,) = compose("ps", "-q", "pollers").split()

        def health() -> str:
            return subprocess.run(
                ["docker", "inspect", "--format", "{{.State.Health.Status}}", pollers],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.strip()

        deadline = time.monotonic() + 120
        while health() != "healthy":
            assert time.monotonic() < deadline, compose("logs", "--tail", "30", "pollers")
            time.sleep(2)
        with urllib.request.urlopen(f"{amazon}/_sim/truth", timeout=30) as reply:
            wanted = _cancelled_orders(json.load(reply))
        deadline = time.monotonic() + POLLED_WITHIN_S
        with Client(f"127.0.0.1:{api_port}", token=DEMO_TOKEN) as api:
            for order in wanted:
                request = orders_pb2.GetOrderRequest(
                    seller_account=order["seller_id"],
                    marketplace_id=order["marketplace_id"],
                    amazon_order_id=order["amazon_order_id"],
                )
                while True:
                    try:
                        served = api.orders.GetOrder(request, timeout=10)
                    except grpc.RpcError as err:
                        assert err.code() == grpc.StatusCode.NOT_FOUND, err
                        assert time.monotonic() < deadline, (
                            f"{order['amazon_order_id']} of {order['seller_id']} not polled within "
                            f"{POLLED_WITHIN_S}s:\n" + compose("logs", "--tail", "40", "pollers")
                        )
                        time.sleep(2)
                        continue
                    # its cancel reaches the API too (the pollers re-read changed orders every interval)
                    if served.status == orders_pb2.ORDER_STATUS_CANCELED or time.monotonic() > deadline:
                        break
                    time.sleep(2)
                assert served.status == orders_pb2.ORDER_STATUS_CANCELED, (order, served)
    finally:
        compose("down", "--volumes", "--remove-orphans")
