"""Dead letters: records a stage could not read, kept with the reason, bounded, without personal data.

A dead letter's headers say why and where from, as Kafka Connect's error headers do: the reason code
(`bounds.Reason`) and message, the stage, the source topic/partition/offset, and the original's size
and SHA-256. Its value is the original with the personal fields of a known format removed, cut to
`MAX_VALUE` bytes, so a 1 MB record can never make a dead letter too large to send. The original itself
stays in the source topic (for its retention): `replay` re-sends it from there after a fix, checked
against the digest, or sends the dead letter's own copy when that copy is whole.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cancelguard.domain.bounds import Reason
from cancelguard.domain.model import InvalidInput

REASON_CODE = "cancelguard.dlq.reason.code"
REASON = "cancelguard.dlq.reason"
STAGE = "cancelguard.dlq.stage"
SOURCE_TOPIC = "cancelguard.dlq.source.topic"
SOURCE_PARTITION = "cancelguard.dlq.source.partition"
SOURCE_OFFSET = "cancelguard.dlq.source.offset"
SOURCE_FILE = "cancelguard.dlq.source.file"  # for lines of imported files (order reports) ...
SOURCE_LINE = "cancelguard.dlq.source.line"  # ... instead of topic, partition and offset
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

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            (SOURCE_TOPIC, self.topic.encode()),
            (SOURCE_PARTITION, str(self.partition).encode()),
            (SOURCE_OFFSET, str(self.offset).encode()),
        ]


@dataclass(frozen=True, slots=True)
class FileOrigin:
    """A line of a file someone imported (an order report): its name, never its path on their machine."""

    file: str
    line: int

    def headers(self) -> list[tuple[str, bytes]]:
        return [(SOURCE_FILE, self.file.encode()[:1000]), (SOURCE_LINE, str(self.line).encode())]


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
    origin: Origin | FileOrigin,
    stage: str,
    personal_fields: Sequence[str] = (),
) -> DeadLetter:
    kept, redacted = redact(value, personal_fields) if value is not None else (None, False)
    truncated = kept is not None and len(kept) > MAX_VALUE
    if kept is not None and truncated:
        kept = kept[:MAX_VALUE]
    headers = [
        (REASON_CODE, reason_code.encode()),
        (REASON, message.encode("utf-8", "backslashreplace")[:MAX_REASON]),
        (STAGE, stage.encode()),
        *origin.headers(),
        (ORIGINAL_SIZE, str(len(value) if value is not None else 0).encode()),
        (REDACTED, b"true" if redacted else b"false"),
        (TRUNCATED, b"true" if truncated else b"false"),
    ]
    if value is not None:
        headers.append((ORIGINAL_SHA256, hashlib.sha256(value).hexdigest().encode()))
    return DeadLetter(kept, key[:MAX_KEY] if key is not None else None, headers)


def redact(value: bytes, personal_fields: Sequence[str]) -> tuple[bytes, bool]:
    """The value without the dotted paths in `personal_fields`, when it is a JSON object that has them."""
    if not personal_fields:
        return value, False
    try:
        doc = json.loads(value)
    except (ValueError, RecursionError):  # not JSON (or not readable): nothing is known to remove
        return value, False
    removed = False
    for path in personal_fields:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, dict) and last in node:
            del node[last]
            removed = True
    if not removed:
        return value, False
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "backslashreplace"
    ), True


@dataclass(frozen=True, slots=True)
class Described:
    """A dead letter as read back from its topic."""

    partition: int
    offset: int
    timestamp_ms: int
    reason_code: str
    reason: str
    stage: str
    origin: Origin | None
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
            "source": None
            if self.origin is None
            else {
                "topic": self.origin.topic,
                "partition": self.origin.partition,
                "offset": self.origin.offset,
            },
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
    origin = None
    if SOURCE_TOPIC in h:
        try:
            origin = Origin(h[SOURCE_TOPIC], int(h[SOURCE_PARTITION]), int(h[SOURCE_OFFSET]))
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
