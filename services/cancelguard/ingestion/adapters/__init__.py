"""One adapter per source: what Amazon (or the helpdesk) says -> normalised order events. Pure: no I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cancelguard.domain.model import InvalidInput


def load_json_object(raw: bytes | str | Mapping[str, Any], what: str) -> Mapping[str, Any]:
    """Bytes or text of one JSON object (or the object itself) -> the object; InvalidInput otherwise."""
    if isinstance(raw, bytes | str):
        try:
            doc = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{what} is not JSON: {exc}") from None
    else:
        doc = raw
    if not isinstance(doc, Mapping):
        raise InvalidInput(f"{what} must be a JSON object")
    return doc
