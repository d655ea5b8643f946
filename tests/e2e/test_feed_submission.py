"""The loop closed with Amazon: a decision that asks for it is submitted to the Feeds API by the API, and
Amazon's own account of the cancel comes back through the pollers.

The services run as processes (metrics, api, pollers) with an accounts file pointing at the simulator,
served by this test on loopback. An Unshipped order arrives through the v2026 poller; DecideCancellation
with `submit_feed` queues its feed; the API's submitter uploads and submits it (through 503s on the way,
which only delay it) and reads Amazon's processing report; the simulator applies the feed to its order,
and the poller brings the order back cancelled by the merchant with the reason the seller chose.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from cancelguard.amazon.operations import SEARCH_ORDERS, UsagePlan
from cancelguard.client import AsyncClient
from cancelguard.config import Settings
from cancelguard.demo_credentials import DEMO_TOKEN
from cancelguard.processes import POLLERS, ServiceProcesses
from cancelguard.simulator.spapi.generator import ScenarioSpec
from cancelguard.simulator.spapi.server import build_simulator
from cancelguard.simulator.spapi.testing import serving
from cancelguard.v1 import orders_pb2

pytestmark = pytest.mark.e2e

SELLER = "A2DEMOSELLERJP"  # one of the demo caller's seller accounts (conftest's callers file)
UK = "A1F83G8C2ARO7P"
State = orders_pb2.FeedSubmission


async def _until(what: str, check: Callable[[], Awaitable[Any]], timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = await check()
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.NOT_FOUND:
                raise
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        await asyncio.sleep(0.2)


def _accounts_file(path: Path, base: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "defaults": {"client_id": "env:FEEDTEST_LWA_ID", "client_secret": "env:FEEDTEST_LWA_SECRET"},
                "accounts": [
                    {
                        "seller_id": SELLER,
                        "region": "eu",
                        "marketplaces": [UK],
                        "orders_api": "v2026",
                        "refresh_token": "env:FEEDTEST_REFRESH",
                        "endpoint": base,
                        "lwa_endpoint": f"{base}/auth/o2/token",
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    return path


@pytest.mark.timeout(300)
async def test_a_decision_submitted_as_a_feed_comes_back_from_amazon_cancelled_by_the_merchant(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    sim = build_simulator(ScenarioSpec(now, seed=11, days=2, sellers=(SELLER,), marketplaces=(UK,)))
    # A larger searchOrders plan for this seller (the answers' rate header says so; the pollers follow it).
    # Under Amazon's default, 20 calls and then one per 180 s, the 503s the test asks for use up the burst
    # at a pace set by the machine's speed, and then the cancel comes back only minutes later.
    sim.plans[(SELLER, SEARCH_ORDERS.key)] = UsagePlan(5.0, 20)
    unshipped = [
        o
        for o in sim.world.orders_of(SELLER)
        if o.channel == "MFN"
        and (v := o.visible(now)) is not None
        and v.status == "Unshipped"
        and (c := o.current(now + timedelta(hours=6))) is not None
        and c.status == "Unshipped"  # and still so for long after the test
        and not any(i.cancelled_by for i in c.items)
    ]
    assert unshipped, "the scenario has an Unshipped MFN order"
    target = unshipped[0]
    async with serving(sim) as base:
        monkeypatch.setenv("FEEDTEST_LWA_ID", sim.client_id)
        monkeypatch.setenv("FEEDTEST_LWA_SECRET", sim.client_secret)
        monkeypatch.setenv("FEEDTEST_REFRESH", sim.world.sellers[SELLER].refresh_token)
        settings = settings.model_copy(
            update={
                "accounts_file": str(_accounts_file(tmp_path / "accounts.json", base)),
                "poll_interval_s": 0.5,
                "poll_backfill_days": 3,
                "api_feed_poll_s": 0.5,
                "unshipped_report_interval_s": 86400.0,
                "performance_report_interval_s": 86400.0,
            }
        )
        services = ServiceProcesses(settings, tmp_path / "logs")
        services.start(("metrics", "api", POLLERS))
        try:
            await services.wait_healthy()
            async with AsyncClient(f"127.0.0.1:{settings.api_port}", token=DEMO_TOKEN) as api:
                key = {
                    "seller_account": SELLER,
                    "marketplace_id": UK,
                    "amazon_order_id": target.amazon_order_id,
                }

                async def order() -> orders_pb2.Order:
                    return await api.orders.GetOrder(orders_pb2.GetOrderRequest(**key))

                seen = await _until("the poller brings the order", order)
                assert seen.status == orders_pb2.ORDER_STATUS_UNSHIPPED

                # a feed for an account the API has no credentials for is refused before anything is kept
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await api.orders.DecideCancellation(
                        orders_pb2.DecideCancellationRequest(
                            **{**key, "marketplace_id": "A1PA6795UKMFR9"},
                            cancel_reason="NoInventory",
                            request_id=str(uuid.uuid4()),
                            submit_feed=True,
                        )
                    )
                assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                assert "accounts file" in (refused.value.details() or "")

                sim.faults.update({"error_503_rate": 0.5})  # Amazon stumbles: the submission waits it out
                decided = await api.orders.DecideCancellation(
                    orders_pb2.DecideCancellationRequest(
                        **key, cancel_reason="NoInventory", request_id=str(uuid.uuid4()), submit_feed=True
                    )
                )
                assert decided.feed_submission.state == State.STATE_PENDING
                ask = orders_pb2.GetFeedSubmissionRequest(seller_account=SELLER, event_id=decided.event_id)

                async def done() -> orders_pb2.FeedSubmission | None:
                    found = await api.orders.GetFeedSubmission(ask)
                    return found if found.state in (State.STATE_DONE, State.STATE_FAILED) else None

                submission = await _until("Amazon processed the feed", done)
                sim.faults.update({"error_503_rate": 0.0})
                assert submission.state == State.STATE_DONE, submission
                assert (submission.messages_processed, submission.messages_successful) == (1, 1), list(
                    submission.results
                )
                assert submission.feed_id and submission.processing_status == "DONE"

                sim.clock.advance(180)  # past the Orders API's lag: Amazon shows its own account of it

                async def cancelled_by_amazon() -> orders_pb2.Order | None:
                    found = await order()
                    return found if found.status == orders_pb2.ORDER_STATUS_CANCELED else None

                back = await _until("the poller brings Amazon's cancel back", cancelled_by_amazon)
                assert back.attribution.source == "AMAZON_CANCELLED_BY"  # Amazon's word, not only ours
                assert back.attribution.cancelled_by == orders_pb2.CANCELLED_BY_MERCHANT
                assert back.attribution.cancel_reason == "NoInventory"
                assert back.attribution.rule == "SELLER_CANCEL_UNSHIPPED"
                assert any(k.startswith("feeds.createFeed 2") for k in sim.stats), sim.stats
        except AssertionError as exc:  # what the services and Amazon saw, for a failure seen only in CI
            raise AssertionError(
                f"{exc}\nAmazon's calls: {dict(sim.stats)}\n--- pollers:\n{services.log_tail(POLLERS, 40)}"
                f"\n--- api:\n{services.log_tail('api', 20)}"
            ) from exc
        finally:
            codes = services.stop()
        assert codes["api"] == 0, services.log_tail("api")
