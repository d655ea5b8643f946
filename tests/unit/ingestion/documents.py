"""Amazon's example documents (tests/fixtures/amazon), and ways to break them, for the adapter tests.

changed(doc, "orderItems.0.quantityOrdered", 2**31)    a copy with one value set (or DELETE-d)
mangled(doc, where, key, value)                        a copy with a random value put somewhere
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from cancelguard.domain.bounds import Reason, check_event
from cancelguard.domain.model import Event, InvalidInput
from cancelguard.events import codec

FIXTURES = Path(__file__).parents[2] / "fixtures/amazon"
DELETE = object()


def fixture(name: str) -> Any:
    """A fixture's document: the `example` inside the files that name their upstream `_source`."""
    doc = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return doc["example"] if isinstance(doc, dict) and "_source" in doc else doc


def _node(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def changed(doc: Any, path: str, value: Any) -> Any:
    """A deep copy of `doc` with the value at a dotted path (list indexes as numbers) set, or deleted."""
    out = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = _node(out, parents)
    index: Any = int(last) if isinstance(node, list) else last
    if value is DELETE:
        del node[index]
    else:
        node[index] = value
    return out


def nested(depth: int) -> bytes:
    return b'{"x": ' + b"[" * depth + b"]" * depth + b"}"


def mangled(doc: Any, where: str, key: str, value: Any) -> Any:
    """A copy with `value` under `key` of the object at `where` (appended, if that is a list)."""
    out = copy.deepcopy(doc)
    node = _node(out, [p for p in where.split(".") if p])
    if isinstance(node, dict):
        node[key] = value
    elif isinstance(node, list):
        node.append(value)
    return out


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.sampled_from(["", "true", "FALSE", "BUYER", "AMAZON", "UNKNOWN", "CANCELLED", "\ud800", "a\x00b"])
    | st.sampled_from(["2026-11-20T10:00:00Z", "0001-01-01T00:00:00Z", "2999-01-01T00:00:00Z", "1970-01-19"])
    | st.integers(min_value=2**31 - 2, max_value=2**63),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)


def assert_valid_or_refused(parse: Callable[[], Event | list[Event]], *, now: datetime) -> None:
    """Events that keep every bound and survive the topic unchanged, or a refusal with a stable reason;
    never another exception."""
    try:
        parsed = parse()
    except InvalidInput as refused:
        assert refused.reason in {r.value for r in Reason}, refused.reason
        return
    for event in parsed if isinstance(parsed, list) else [parsed]:
        check_event(event, now=now)
        assert codec.decode(codec.encode(event)) == event
