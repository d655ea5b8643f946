"""Is a buyer's cancellation request open? The one definition, used by the store (which lists open
requests), the API (which shows them) and the recommended actions.

A request is open while the seller can still act on it by cancelling: the order is neither cancelled
nor shipped (no item shipped either: a partly shipped order can only be returned). A formal request is
open while Amazon's flag is up; an informal one (a buyer message) has no flag, so it stays open until
the order is cancelled or ships. A shipping label does not close it: the seller may still cancel, and
the recommended action says what a label changes. When both exist, the formal one is the one to act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cancelguard.domain.model import Order, RequestKind


@dataclass(frozen=True, slots=True)
class OpenRequest:
    kind: RequestKind
    requested_at: datetime  # when the buyer first asked: open requests are listed oldest first


def open_request(order: Order) -> OpenRequest | None:
    if order.is_canceled or order.is_shipped:
        return None
    if order.has_open_formal_request:
        at = order.first_formal_request_at
        assert at is not None  # an open flag was first seen at some time
        return OpenRequest(RequestKind.FORMAL, at)
    if order.informal_requests:
        return OpenRequest(RequestKind.INFORMAL, order.informal_requests[0].requested_at)
    return None
