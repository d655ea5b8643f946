"""The simulator's ORDER_CHANGE notifications follow Amazon's schema (required fields, types, enums)."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from contract_check import load, violations

from cancelguard.simulator.scenario import generate

CONTRACT = load("order_change_contract.json")


def test_contract_checker_accepts_amazons_own_example() -> None:
    example = json.loads(
        (Path(__file__).parents[2] / "fixtures/amazon/order_change_example.json").read_text()
    )
    assert violations(example, CONTRACT) == []


def test_contract_checker_catches_a_wrong_enum_and_a_missing_field() -> None:
    example = json.loads(
        (Path(__file__).parents[2] / "fixtures/amazon/order_change_example.json").read_text()
    )
    summary = example["Payload"]["OrderChangeNotification"]["Summary"]
    summary["OrderStatus"] = "CANCELLED"  # the v2026 spelling is not valid in ORDER_CHANGE
    del summary["MarketplaceId"]
    assert len(violations(example, CONTRACT)) == 2


@pytest.mark.parametrize("seed", [1, 7, 42])
def test_every_simulated_notification_follows_the_schema(seed: int) -> None:
    scenario = generate(datetime(2026, 11, 20, 12, tzinfo=UTC), seed=seed)
    assert scenario.notifications
    for notification in scenario.notifications:
        assert violations(notification, CONTRACT) == [], notification
