"""The simulator's ORDER_CHANGE notifications follow Amazon's schema (required fields, types, enums)."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cancelguard.simulator.scenario import generate

CONTRACT = json.loads((Path(__file__).parents[2] / "fixtures/amazon/order_change_contract.json").read_text())
JSON_TYPES = {
    "string": str,
    "integer": int,
    "boolean": bool,
    "object": dict,
    "array": list,
    "null": type(None),
}


def objects_at(doc: Any, path: str) -> list[Any]:
    """Every object found at a contract path like `Payload.OrderChangeNotification.Summary.OrderItems[]`."""
    nodes = [doc]
    if path == "$":
        return nodes
    for part in path.split("."):
        many = part.endswith("[]")
        key = part.removesuffix("[]")
        nodes = [n[key] for n in nodes if isinstance(n, dict) and key in n]
        if many:
            nodes = [x for n in nodes for x in n]
    return nodes


def violations(doc: dict[str, Any]) -> list[str]:
    found = []
    for path, spec in CONTRACT["objects"].items():
        for obj in objects_at(doc, path):
            for name in spec["required"]:
                if name not in obj:
                    found.append(f"{path}: missing required {name}")
            for name, rules in spec["properties"].items():
                if name not in obj:
                    continue
                value = obj[name]
                types = rules.get("type")
                if types is not None:
                    allowed = tuple(JSON_TYPES[t] for t in ([types] if isinstance(types, str) else types))
                    if isinstance(value, bool) and bool not in allowed:
                        found.append(f"{path}.{name}: boolean where {types} expected")
                    elif not isinstance(value, allowed):
                        found.append(f"{path}.{name}: {type(value).__name__} where {types} expected")
                if "enum" in rules and value not in rules["enum"]:
                    found.append(f"{path}.{name}: {value!r} not in {rules['enum']}")
    return found


def test_contract_checker_accepts_amazons_own_example() -> None:
    example = json.loads(
        (Path(__file__).parents[2] / "fixtures/amazon/order_change_example.json").read_text()
    )
    assert violations(example) == []


def test_contract_checker_catches_a_wrong_enum_and_a_missing_field() -> None:
    example = json.loads(
        (Path(__file__).parents[2] / "fixtures/amazon/order_change_example.json").read_text()
    )
    summary = example["Payload"]["OrderChangeNotification"]["Summary"]
    summary["OrderStatus"] = "CANCELLED"  # the v2026 spelling is not valid in ORDER_CHANGE
    del summary["MarketplaceId"]
    assert len(violations(example)) == 2


@pytest.mark.parametrize("seed", [1, 7, 42])
def test_every_simulated_notification_follows_the_schema(seed: int) -> None:
    scenario = generate(datetime(2026, 11, 20, 12, tzinfo=UTC), seed=seed)
    assert scenario.notifications
    for notification in scenario.notifications:
        assert violations(notification) == [], notification
