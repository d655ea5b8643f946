"""One adapter per source: what Amazon (or the helpdesk) says -> normalised order events. Pure: no I/O.

The readers below give every adapter the same rules (`domain.bounds`) and errors that name the field's
JSON path, e.g. "ORDER_CHANGE notification: Payload.OrderChangeNotification.AmazonOrderId is empty".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cancelguard.domain import bounds
from cancelguard.domain.bounds import Reason, invalid
from cancelguard.domain.model import InvalidInput, parse_time

_MISSING = object()


def load_json_object(raw: bytes | str | Mapping[str, Any], what: str) -> Mapping[str, Any]:
    """Bytes or text of one JSON object (or the object itself) -> the object; InvalidInput otherwise."""
    if isinstance(raw, bytes | str):
        try:
            doc = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise invalid(Reason.NOT_JSON, f"{what} is not JSON: {exc}") from None
        except RecursionError:
            raise invalid(Reason.TOO_DEEP, f"{what} is nested too deeply to read") from None
    else:
        doc = raw
    if not isinstance(doc, Mapping):
        raise invalid(Reason.NOT_AN_OBJECT, f"{what} must be a JSON object, got {type(doc).__name__}")
    return doc


def optional(node: Any, path: str) -> Any:
    """The value at a dotted path, or None where any part is absent (or null)."""
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part, _MISSING)
        if node is _MISSING:
            return None
    return node


def required(node: Any, path: str, what: str) -> Any:
    value = optional(node, path)
    if value is None:
        raise invalid(Reason.MISSING_FIELD, f"{what} has no {path}")
    return value


def identifier_at(node: Any, path: str, what: str, *, max_len: int = bounds.MAX_IDENTIFIER) -> str:
    return bounds.identifier(required(node, path, what), f"{what}: {path}", max_len=max_len)


def text_at(node: Any, path: str, what: str, *, max_len: int = bounds.MAX_TEXT) -> str:
    """Optional free text: absent or null reads as ""."""
    value = optional(node, path)
    return "" if value is None else bounds.text(value, f"{what}: {path}", max_len=max_len)


def quantity_at(node: Any, path: str, what: str) -> int | None:
    value = optional(node, path)
    return None if value is None else bounds.quantity(value, f"{what}: {path}")


def time_at(
    node: Any, path: str, what: str, *, now: datetime, planned: bool = False, must: bool = True
) -> datetime | None:
    """An ISO 8601 time within the bounds (`planned`: a date that may lie ahead, such as ship-by)."""
    value = required(node, path, what) if must else optional(node, path)
    if value is None:
        return None
    where = f"{what}: {path}"
    if not isinstance(value, str):
        raise invalid(Reason.BAD_TIME, f"{where} must be an ISO 8601 time string, got {bounds.shown(value)}")
    bounds.text(value, where, max_len=64)
    parsed = parse_time(value, where)
    check = bounds.planned_time if planned else bounds.event_time
    return check(parsed, where, now=now)


def array_at(node: Any, path: str, what: str) -> list[Any]:
    value = required(node, path, what)
    if not isinstance(value, list):
        raise invalid(Reason.WRONG_TYPE, f"{what}: {path} must be a list, got {type(value).__name__}")
    if len(value) > bounds.MAX_ITEMS:
        raise invalid(
            Reason.OUT_OF_RANGE, f"{what}: {path} has {len(value)} entries (at most {bounds.MAX_ITEMS})"
        )
    return value


__all__ = [
    "InvalidInput",
    "array_at",
    "identifier_at",
    "load_json_object",
    "optional",
    "quantity_at",
    "required",
    "text_at",
    "time_at",
]
