"""Dead letters: bounded, without personal data, and saying what they are."""

import hashlib
import json

from cancelguard import dead_letters
from cancelguard.dead_letters import Origin

ORIGIN = Origin("raw", 2, 40)


def _headers(letter: dead_letters.DeadLetter) -> dict[str, str]:
    return {k: v.decode() for k, v in letter.headers}


def test_a_large_record_is_cut_to_a_bounded_prefix_with_its_size_and_digest() -> None:
    value = b"x" * 1_500_000
    letter = dead_letters.build(
        value=value,
        key=b"k" * 5000,
        reason_code="NOT_JSON",
        message="m" * 10_000,
        origin=ORIGIN,
        stage="ingestion",
    )
    h = _headers(letter)
    assert letter.value is not None and len(letter.value) == dead_letters.MAX_VALUE
    assert letter.key is not None and len(letter.key) == dead_letters.MAX_KEY
    assert len(h[dead_letters.REASON]) <= dead_letters.MAX_REASON
    assert (h[dead_letters.ORIGINAL_SIZE], h[dead_letters.TRUNCATED]) == ("1500000", "true")
    assert h[dead_letters.ORIGINAL_SHA256] == hashlib.sha256(value).hexdigest()
    # everything a dead letter carries stays far below Kafka's 1 MiB record limit
    assert len(letter.value) + len(letter.key) + sum(len(k) + len(v) for k, v in letter.headers) < 100_000


def test_personal_fields_of_a_known_format_are_removed() -> None:
    doc = {"Payload": {"OrderChangeNotification": {"Summary": {"DestinationPostalCode": "48110", "x": 1}}}}
    letter = dead_letters.build(
        value=json.dumps(doc).encode(),
        key=None,
        reason_code="MISSING_FIELD",
        message="m",
        origin=ORIGIN,
        stage="ingestion",
        personal_fields=("Payload.OrderChangeNotification.Summary.DestinationPostalCode",),
    )
    assert letter.value is not None and b"48110" not in letter.value
    assert json.loads(letter.value)["Payload"]["OrderChangeNotification"]["Summary"] == {"x": 1}
    described = dead_letters.describe(0, 7, 0, None, letter.value, letter.headers)
    assert not described.whole and described.origin == ORIGIN and described.reason_code == "MISSING_FIELD"


def test_a_record_with_nothing_to_remove_is_kept_whole() -> None:
    letter = dead_letters.build(
        value=b"{not json",
        key=b"k",
        reason_code="NOT_JSON",
        message="m",
        origin=ORIGIN,
        stage="ingestion",
        personal_fields=("text",),
    )
    d = dead_letters.describe(0, 0, 0, letter.key, letter.value, letter.headers)
    assert d.whole and d.value == b"{not json" and dead_letters.is_original(d.value, d.original_sha256)
