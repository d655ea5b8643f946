"""Dead letters: records a stage could not read, kept with the reason, bounded, without personal data.

A dead letter's headers say why and where from, as Kafka Connect's error headers do: the reason code
(`bounds.Reason`) and message, the stage, the source topic/partition/offset (or, for a line of an
imported file, the file's name and the line), and the original's size and SHA-256. Its value is the
original with the personal fields of a known format removed, cut to `MAX_VALUE` bytes, so a 1 MB
record can never make a dead letter too large to send. The original itself stays in the source topic
(for its retention): `replay` re-sends it from there after a fix, checked against the digest, or sends
the dead letter's own copy when that copy is whole.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cancelguard.domain.bounds import Reason
from cancelguard.domain.model import InvalidInput

REASON_CODE = "cancelguard.dlq.reason.code"
REASON = "cancelguard.dlq.reason"
STAGE = "cancelguard.dlq.stage"
SOURCE_TOPIC = "cancelguard.dlq.source.topic"
SOURCE_PARTITION = "cancelguard.dlq.source.partition"
SOURCE_OFFSET = "cancelguard.dlq.source.offset"
SOURCE_FILE = "cancelguard.dlq.source.file"  # a line of an imported file (an order report) ...
SOURCE_LINE = "cancelguard.dlq.source.line"  # ... instead of topic, partition and offset
SOURCE_OPERATION = "cancelguard.dlq.source.operation"  # a document of an Amazon API answer (a poller) ...
SOURCE_REQUEST_ID = "cancelguard.dlq.source.request_id"
SOURCE_PATH = "cancelguard.dlq.source.path"  # ... and where in the answer, as a JSON path
ORIGINAL_SIZE = "cancelguard.dlq.original.size"
ORIGINAL_SHA256 = "cancelguard.dlq.original.sha256"
# "true" when the value is not the original byte for byte (personal fields removed, or cut)
REDACTED = "cancelguard.dlq.redacted"
TRUNCATED = "cancelguard.dlq.truncated"

MAX_VALUE = 64 * 1024
MAX_KEY = 1024
MAX_REASON = 2000


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record came from: written on its dead letter so it can be found and replayed."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class FileOrigin:
    """A line of a file someone imported (an order report): the file's name, never its path on their
    machine. There is no topic to replay it from: a fixed file is imported again."""

    file: str
    line: int


@dataclass(frozen=True, slots=True)
class ApiOrigin:
    """One document of an answer from Amazon's APIs (an order in a page the pollers read): the operation,
    Amazon's request id, and the document's JSON path in the answer. There is no topic to replay it
    from: a fixed source is polled again."""

    operation: str  # e.g. ordersV0.getOrders
    request_id: str
    path: str  # e.g. $.payload.Orders[3]

    def __str__(self) -> str:
        request = f" [x-amzn-RequestId {self.request_id}]" if self.request_id else ""
        return f"{self.operation} {self.path}{request}"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    value: bytes | None
    key: bytes | None
    headers: list[tuple[str, bytes]]


def build(
    *,
    value: bytes | None,
    key: bytes | None,
    reason_code: str,
    message: str,
    origin: Origin | FileOrigin | ApiOrigin,
    stage: str,
    personal_fields: Sequence[str] = (),
    replacement: bytes | None = None,
) -> DeadLetter:
    """`replacement`: what to keep instead of the original, when its format has no personal fields to
    remove (a report row holds the buyer's name and address in columns: its dead letter keeps only what
    identifies the row). The size and digest stay the original's."""
    kept: bytes | None
    if replacement is not None:
        kept, redacted = replacement, True
    else:
        kept, redacted = redact(value, personal_fields) if value is not None else (None, False)
    truncated = kept is not None and len(kept) > MAX_VALUE
    if kept is not None and truncated:
        kept = kept[:MAX_VALUE]
    headers = [
        (REASON_CODE, reason_code.encode()),
        (REASON, message.encode("utf-8", "backslashreplace")[:MAX_REASON]),
        (STAGE, stage.encode()),
        *_origin_headers(origin),
        (ORIGINAL_SIZE, str(len(value) if value is not None else 0).encode()),
        (REDACTED, b"true" if redacted else b"false"),
        (TRUNCATED, b"true" if truncated else b"false"),
    ]
    if value is not None:
        headers.append((ORIGINAL_SHA256, hashlib.sha256(value).hexdigest().encode()))
    return DeadLetter(kept, key[:MAX_KEY] if key is not None else None, headers)


def _origin_headers(origin: Origin | FileOrigin | ApiOrigin) -> list[tuple[str, bytes]]:
    if isinstance(origin, ApiOrigin):
        return [
            (SOURCE_OPERATION, origin.operation.encode()),
            (SOURCE_REQUEST_ID, origin.request_id.encode("utf-8", "backslashreplace")[:MAX_KEY]),
            (SOURCE_PATH, origin.path.encode("utf-8", "backslashreplace")[:MAX_KEY]),
        ]
    if isinstance(origin, FileOrigin):
        return [
            (SOURCE_FILE, origin.file.encode("utf-8", "backslashreplace")[:MAX_KEY]),
            (SOURCE_LINE, str(origin.line).encode()),
        ]
    return [
        (SOURCE_TOPIC, origin.topic.encode()),
        (SOURCE_PARTITION, str(origin.partition).encode()),
        (SOURCE_OFFSET, str(origin.offset).encode()),
    ]


def redact(value: bytes, personal_fields: Sequence[str]) -> tuple[bytes, bool]:
    """The value without the dotted paths in `personal_fields`, when it is a JSON object that has them.
    A part ending in "[]" is a list: the rest of the path is removed from each of its entries."""
    if not personal_fields:
        return value, False
    try:
        doc = json.loads(value)
    except (ValueError, RecursionError):  # not JSON (or not readable): nothing is known to remove
        return value, False
    removed = [_remove(doc, path.split(".")) for path in personal_fields]
    if not any(removed):
        return value, False
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "backslashreplace"
    ), True


def _remove(node: Any, parts: list[str]) -> bool:
    head, *rest = parts
    if not isinstance(node, Mapping):
        return False
    if head.endswith("[]"):
        entries = node.get(head[:-2])
        return isinstance(entries, list) and bool(rest) and any([_remove(e, rest) for e in entries])
    if rest:
        return _remove(node.get(head), rest)
    if isinstance(node, dict) and head in node:
        del node[head]
        return True
    return False


@dataclass(frozen=True, slots=True)
class Described:
    """A dead letter as read back from its topic."""

    partition: int
    offset: int
    timestamp_ms: int
    reason_code: str
    reason: str
    stage: str
    origin: Origin | FileOrigin | ApiOrigin | None
    original_size: int
    original_sha256: str
    whole: bool  # the value is the original byte for byte: it can be replayed by itself
    key: bytes | None
    value: bytes | None

    def as_json(self) -> dict[str, Any]:
        return {
            "dead_letter": f"{self.partition}:{self.offset}",
            "timestamp_ms": self.timestamp_ms,
            "reason_code": self.reason_code,
            "reason": self.reason,
            "stage": self.stage,
            "source": None if self.origin is None else asdict(self.origin),
            "original_size": self.original_size,
            "original_sha256": self.original_sha256,
            "whole": self.whole,
        }


def describe(
    partition: int,
    offset: int,
    timestamp_ms: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
) -> Described:
    h = {name: raw.decode("utf-8", "replace") for name, raw in headers}
    origin: Origin | FileOrigin | ApiOrigin | None = None
    try:
        if SOURCE_TOPIC in h:
            origin = Origin(h[SOURCE_TOPIC], int(h[SOURCE_PARTITION]), int(h[SOURCE_OFFSET]))
        elif SOURCE_FILE in h:
            origin = FileOrigin(h[SOURCE_FILE], int(h[SOURCE_LINE]))
        elif SOURCE_OPERATION in h:
            origin = ApiOrigin(h[SOURCE_OPERATION], h.get(SOURCE_REQUEST_ID, ""), h.get(SOURCE_PATH, ""))
    except (KeyError, ValueError):
        origin = None
    return Described(
        partition=partition,
        offset=offset,
        timestamp_ms=timestamp_ms,
        reason_code=h.get(REASON_CODE, "UNKNOWN"),
        reason=h.get(REASON, ""),
        stage=h.get(STAGE, ""),
        origin=origin,
        original_size=int(h.get(ORIGINAL_SIZE, "0") or 0),
        original_sha256=h.get(ORIGINAL_SHA256, ""),
        whole=h.get(REDACTED) == "false" and h.get(TRUNCATED) == "false",
        key=key,
        value=value,
    )


def refusal(exc: BaseException) -> tuple[str, str]:
    """(reason code, message) for a record that failed with `exc`: bad input says its own reason;
    anything else is a bug of ours on that record."""
    if isinstance(exc, InvalidInput):
        return exc.reason, str(exc)
    if isinstance(exc, RecursionError):
        return Reason.TOO_DEEP.value, "the record is nested too deeply to read"
    return Reason.INTERNAL_ERROR.value, f"internal error {type(exc).__name__}: {exc}"


def is_original(value: bytes | None, sha256: str) -> bool:
    return value is not None and hashlib.sha256(value).hexdigest() == sha256
