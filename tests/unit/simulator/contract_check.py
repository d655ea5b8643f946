"""Checks a JSON document against a contract file of tests/fixtures/amazon (derived from Amazon's models):
per object path, the required fields, JSON types and enums."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parents[2] / "fixtures/amazon"
JSON_TYPES = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "object": dict,
    "array": list,
    "null": type(None),
}


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


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


def violations(doc: Any, contract: dict[str, Any]) -> list[str]:
    found = []
    for path, spec in contract["objects"].items():
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
                    names = [types] if isinstance(types, str) else types
                    allowed = tuple(t for n in names for t in _as_tuple(JSON_TYPES[n]))
                    if isinstance(value, bool) and bool not in allowed:
                        found.append(f"{path}.{name}: boolean where {types} expected")
                    elif not isinstance(value, allowed):
                        found.append(f"{path}.{name}: {type(value).__name__} where {types} expected")
                if "enum" in rules and value not in rules["enum"]:
                    found.append(f"{path}.{name}: {value!r} not in {rules['enum']}")
                if "items_enum" in rules and isinstance(value, list):
                    found += [
                        f"{path}.{name}: {v!r} not in {rules['items_enum']}"
                        for v in value
                        if v not in rules["items_enum"]
                    ]
    return found


def _as_tuple(t: type | tuple[type, ...]) -> tuple[type, ...]:
    return t if isinstance(t, tuple) else (t,)
