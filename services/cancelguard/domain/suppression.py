"""Offer suppression risk: Amazon "may remove the offer if there is a history of seller-cancelled orders or
two consecutive seller-cancellations for orders placed in the last 30 days" (help 200285210, EU/AU/AE).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cancelguard.domain.attribution import attribute
from cancelguard.domain.model import Channel, Order
from cancelguard.domain.placement import seller_cancelled_skus
from cancelguard.domain.policy import CancellationPolicy
from cancelguard.domain.windows import utc


@dataclass(frozen=True, slots=True)
class SuppressionRisk:
    seller_sku: str
    amazon_order_ids: tuple[str, str]  # the two consecutive seller-cancelled orders, oldest first
    purchased_at: tuple[datetime, datetime]
    explanation: str


def suppression_risks(
    orders: Iterable[Order], policy: CancellationPolicy, as_of: datetime
) -> list[SuppressionRisk]:
    """Every SKU whose two consecutive orders placed in the last `policy.suppression_days` days were both
    cancelled by the seller. Orders of one seller account and marketplace."""
    until = utc(as_of)
    since = until - timedelta(days=policy.suppression_days)
    # per SKU, one entry per order (an order may hold the SKU on several items)
    by_sku: dict[str, dict[str, tuple[datetime, bool]]] = defaultdict(dict)
    for order in orders:
        if order.channel is not Channel.MFN or order.purchased_at is None:
            continue
        if not since <= order.purchased_at <= until:
            continue
        cancelled = set(seller_cancelled_skus(order, attribute(order, policy)))
        for item in order.items.values():
            if not item.sku:
                continue
            per_order = by_sku[item.sku]
            _, before = per_order.get(order.key.amazon_order_id, (order.purchased_at, False))
            per_order[order.key.amazon_order_id] = (order.purchased_at, before or item.sku in cancelled)
    risks = []
    for sku, orders_of_sku in sorted(by_sku.items()):
        entries = sorted((t, order_id, cancelled) for order_id, (t, cancelled) in orders_of_sku.items())
        for (t1, o1, c1), (t2, o2, c2) in itertools.pairwise(entries):
            if c1 and c2:
                risks.append(
                    SuppressionRisk(
                        sku, (o1, o2), (t1, t2), suppression_explanation(sku, o1, o2, policy.suppression_days)
                    )
                )
                break
    return risks


def suppression_explanation(sku: str, first_order: str, second_order: str, days: int) -> str:
    return (
        f"SKU {sku}: two consecutive seller cancellations ({first_order}, {second_order}) within "
        f"{days} days; Amazon may remove the offer (editing its price reactivates it)"
    )
