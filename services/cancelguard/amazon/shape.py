"""Checks that an answer has the shape its model promises, naming the JSON path when it does not.

Only what the client itself relies on (envelopes, lists it pages through, ids it passes on, the
model's required fields) is checked here; reading the fields into order events is the adapters' job.
"""

from __future__ import annotations

from typing import Any

from cancelguard.amazon.errors import MalformedResponse

_JSON_TYPES: dict[type, str] = {dict: "an object", list: "an array", str: "a string", int: "an integer"}


def require(operation: str, doc: Any, path: str, key: str, kind: type, *, optional: bool = False) -> Any:
    """`doc[key]` if it is of `kind` (None if optional and absent), else MalformedResponse at path.key."""
    if not isinstance(doc, dict):
        raise MalformedResponse(operation, path, f"expected an object, got {_name(doc)}")
    if key not in doc or doc[key] is None:
        if optional:
            return None
        raise MalformedResponse(operation, f"{path}.{key}", "required field missing")
    value = doc[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedResponse(
            operation, f"{path}.{key}", f"expected {_JSON_TYPES.get(kind, kind.__name__)}, got {_name(value)}"
        )
    return value


def objects(operation: str, doc: Any, path: str, key: str, required: tuple[str, ...] = ()) -> list[dict]:
    """`doc[key]` as a list of objects, each with the `required` fields (any JSON value but null)."""
    items = require(operation, doc, path, key, list)
    for i, item in enumerate(items):
        where = f"{path}.{key}[{i}]"
        if not isinstance(item, dict):
            raise MalformedResponse(operation, where, f"expected an object, got {_name(item)}")
        for field in required:
            if item.get(field) is None:
                raise MalformedResponse(operation, f"{where}.{field}", "required field missing")
    return items


def _name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return _JSON_TYPES.get(type(value), type(value).__name__)
