"""deploy/compose: the whole stack under Docker Compose, fed the demo scenario, its rates read via the API.

A project of its own (name and 127.0.0.1 ports picked here), so it never meets `make compose-up`'s; taken
down with its volumes however the test ends.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
import uuid

import pytest

from cancelguard.client import Client
from cancelguard.demo_credentials import DEMO_TOKEN
from cancelguard.domain.policy import marketplace
from cancelguard.localstack import find_free_port
from cancelguard.simulator.scenario import DEFAULT_SHOPS
from cancelguard.v1 import metrics_pb2

from .support import REPO, image_env

COMPOSE = REPO / "deploy" / "compose" / "compose.sh"
PORTS = ("KAFKA", "POSTGRES", "API", "INGESTION_HEALTH", "METRICS_HEALTH", "AMAZON")
# a row of the demo: "  A1DEMOSELLERUS   DE   live 168 h     11-24 21:00..12-01 20:59   186   5   2.69% ..."
LIVE_ROW = re.compile(r"^\s+(\w+)\s+(\w\w)\s+live 168 h\s.*?\s(\d+)\s+(\d+)\s+[\d.]+%", re.M)


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
        assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-4000:]
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
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port('amazon', 8700)}/_sim/health", timeout=10
        ) as reply:
            assert reply.status == 200
    finally:
        compose("down", "--volumes", "--remove-orphans")
