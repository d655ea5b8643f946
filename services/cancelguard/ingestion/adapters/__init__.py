"""One adapter per source: what Amazon (or the helpdesk) says -> normalised order events. Pure: no I/O.

The readers below give every adapter the same rules (`domain.bounds`) and errors that name the field's
JSON path, e.g. "ORDER_CHANGE notification: Payload.OrderChangeNotification.AmazonOrderId is empty".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar, overload

import orjson

from cancelguard.domain import bounds
from cancelguard.domain.bounds import Reason, invalid
from cancelguard.domain.model import InvalidInput, parse_bool, parse_time

T = TypeVar("T")


def load_json_object(raw: bytes | str | Mapping[str, Any], what: str) -> Mapping[str, Any]:
    """Bytes or text of one JSON object (or the object itself) -> the object; InvalidInput otherwise.

    orjson reads it (about three times faster than `json`, and this runs for every raw record); what
    orjson refuses, `json` reads again, so the standard library's rules decide every edge: NaN, a lone
    surrogate escape, a UTF-16 or BOM-prefixed document, nesting too deep (orjson stops at 1024 levels).
    One difference remains: orjson reads an integer beyond 64 bits as a float, which every bound refuses
    with the same reason code as the integer."""
    if isinstance(raw, bytes | str):
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            doc = _load_json_strictly(raw, what)
    else:
        doc = raw
    if not isinstance(doc, Mapping):
        raise invalid(Reason.NOT_AN_OBJECT, f"{what} must be a JSON object, got {type(doc).__name__}")
    return doc


def _load_json_strictly(raw: bytes | str, what: str) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise invalid(Reason.NOT_JSON, f"{what} is not JSON: {exc}") from None
    except RecursionError:
        raise invalid(Reason.TOO_DEEP, f"{what} is nested too deeply to read") from None


_PARTS: dict[str, tuple[str, ...]] = {}  # dotted path -> its parts: the adapters use a few dozen paths


def optional(node: Any, path: str) -> Any:
    """The value at a dotted path, or None where any part is absent (or null)."""
    parts = _PARTS.get(path)
    if parts is None:
        parts = tuple(path.split("."))
        if len(_PARTS) < 10_000:  # bounded, whatever paths a caller makes up
            _PARTS[path] = parts
    for part in parts:
        # JSON objects are dicts: the exact-type test is what the hot path pays, the ABC check the rest
        if type(node) is not dict and not isinstance(node, Mapping):
            return None
        node = node.get(part)  # absent and null read alike: None goes no further
    return node


# The readers below check the common case first and build the field's name ("what: path") only for
# the error message of a value that fails: they run for every field of every record.


def required(node: Any, path: str, what: str) -> Any:
    value = optional(node, path)
    if value is None:
        raise invalid(Reason.MISSING_FIELD, f"{what} has no {path}")
    return value


def identifier_at(node: Any, path: str, what: str, *, max_len: int = bounds.MAX_IDENTIFIER) -> str:
    value = optional(node, path)
    if bounds.is_identifier(value, max_len):
        return value
    if value is None:
        raise invalid(Reason.MISSING_FIELD, f"{what} has no {path}")
    return bounds.identifier(value, f"{what}: {path}", max_len=max_len)


def text_at(node: Any, path: str, what: str, *, max_len: int = bounds.MAX_TEXT) -> str:
    """Optional free text: absent or null reads as ""."""
    value = optional(node, path)
    if value is None:
        return ""
    if bounds.is_text(value, max_len):
        return value
    return bounds.text(value, f"{what}: {path}", max_len=max_len)


def quantity_at(node: Any, path: str, what: str) -> int | None:
    value = optional(node, path)
    if bounds.is_quantity(value):
        return value  # type: ignore[no-any-return]
    return bounds.quantity(value, f"{what}: {path}")


def time_at(
    node: Any, path: str, what: str, *, now: datetime, planned: bool = False, must: bool = True
) -> datetime | None:
    """An ISO 8601 time within the bounds (`planned`: a date that may lie ahead, such as ship-by)."""
    value = optional(node, path)
    if value is None:
        if must:
            raise invalid(Reason.MISSING_FIELD, f"{what} has no {path}")
        return None
    # the common case, Amazon's UTC times ("...Z"), without the careful reading's steps; anything else
    # (an offset, spaces, a bad or out-of-range time) takes the careful reading, which decides
    if type(value) is str and len(value) <= 64 and value.isprintable():  # printable: no bad character
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if (
            parsed is not None
            and parsed.tzinfo is UTC
            and bounds.EARLIEST <= parsed <= now + (bounds.PLANNED_AHEAD if planned else bounds.EVENT_SKEW)
        ):
            return parsed
    where = f"{what}: {path}"
    if not isinstance(value, str):
        raise invalid(Reason.BAD_TIME, f"{where} must be an ISO 8601 time string, got {bounds.shown(value)}")
    bounds.text(value, where, max_len=64)
    parsed = parse_time(value, where)
    check = bounds.planned_time if planned else bounds.event_time
    return check(parsed, where, now=now)


_DIGITS = re.compile(r"[0-9]{1,18}")  # a longer run is out of range anyway (and costly to convert)


def quantity_text_at(node: Any, path: str, what: str) -> int | None:
    """A quantity written as text (report cells: "2"); absent reads as None."""
    value = optional(node, path)
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        value = int(value)
    return None if value is None else bounds.quantity(value, f"{what}: {path}")


@overload
def parsed_at(
    node: Any, path: str, what: str, parse: Callable[[object], T], *, must: Literal[True] = True
) -> T: ...


@overload
def parsed_at(node: Any, path: str, what: str, parse: Callable[[object], T], *, must: bool) -> T | None: ...


def parsed_at(
    node: Any, path: str, what: str, parse: Callable[[object], T], *, must: bool = True
) -> T | None:
    """A value read with one of the model's normalisers (`parse_status`, `parse_channel`, ...); the error
    names the path and keeps the normaliser's reason."""
    value = required(node, path, what) if must else optional(node, path)
    if value is None:
        return None
    try:
        return parse(value)
    except InvalidInput as exc:
        raise InvalidInput(f"{what}: {path}: {exc}", exc.reason) from None


def flag_at(node: Any, path: str, what: str) -> bool | None:
    """One of Amazon's booleans (`true`, `"true"`, `TRUE`). Absent, null or "" read as None: the source
    does not say, which is never the same as "no"."""
    if optional(node, path) == "":
        return None
    return parsed_at(node, path, what, parse_bool, must=False)


def object_at(node: Any, path: str, what: str) -> Mapping[str, Any] | None:
    """An optional nested object: None when absent, refused when present but not an object (a request
    flag inside a malformed object must not silently read as "the source does not say")."""
    value = optional(node, path)
    if value is not None and not isinstance(value, Mapping):
        raise invalid(Reason.NOT_AN_OBJECT, f"{what}: {path} must be an object, got {type(value).__name__}")
    return value


def marketplace_at(node: Any, path: str, what: str, *, polled: str | None) -> str:
    """An order's marketplace at `path`, else the one the poller asked for (the models make it optional)."""
    if optional(node, path) is not None:
        return identifier_at(node, path, what)
    if polled is not None:
        return bounds.identifier(polled, "the polled marketplace id")
    raise invalid(Reason.MISSING_FIELD, f"{what}: has no {path}, and no marketplace was given")


def polled_event_id(source: str, order_id: str, updated_at: datetime) -> str:
    """A polled order's event id: its id + Amazon's last-update time (domain.md, Implications 2), so a
    re-polled unchanged order is a duplicate however Amazon spelled the time."""
    return f"{source}:{order_id}:{updated_at.isoformat()}"


def array_at(node: Any, path: str, what: str) -> list[Any]:
    return as_array(required(node, path, what), f"{what}: {path}")


def as_array(value: Any, where: str) -> list[Any]:
    """A list of at most MAX_ITEMS entries (`where` names it in the error)."""
    if not isinstance(value, list):
        raise invalid(Reason.WRONG_TYPE, f"{where} must be a list, got {type(value).__name__}")
    if len(value) > bounds.MAX_ITEMS:
        raise invalid(Reason.OUT_OF_RANGE, f"{where} has {len(value)} entries (at most {bounds.MAX_ITEMS})")
    return value


__all__ = [
    "InvalidInput",
    "array_at",
    "as_array",
    "flag_at",
    "identifier_at",
    "load_json_object",
    "marketplace_at",
    "object_at",
    "optional",
    "parsed_at",
    "polled_event_id",
    "quantity_at",
    "quantity_text_at",
    "required",
    "text_at",
    "time_at",
]
