"""The seller performance report (GET_V2_SELLER_PERFORMANCE_REPORT, schema
accountHealthReport-2020-11-18) -> Amazon's own cancellation rate, one event per marketplace.

`performanceMetrics[]` holds one entry per requested marketplace; its `preFulfillmentCancellationRate`
(the schema's name; the schema's own example spells it `prefulfillmentCancelRate`, so both are read)
gives the window (`reportingDateRange`, UTC, 7 whole days ending a day back), `orderCount`,
`cancellationCount`, `rate`, `status` and the target. The report names no seller and no time of its
own: the caller passes the seller account it asked for and the report's `createdTime` (Reports API
getReport), which is the event's occurred_at. The event id is the report id + marketplace: a report
fetched twice gives the same ids. The document holds no personal data.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from cancelguard.domain import bounds
from cancelguard.domain.bounds import Reason, invalid
from cancelguard.domain.model import (
    AccountEvent,
    AccountKey,
    AmazonRateStatus,
    AmazonReportedRate,
    Source,
    TargetCondition,
)
from cancelguard.ingestion.adapters import (
    array_at,
    identifier_at,
    load_json_object,
    optional,
    parsed_at,
    required,
    time_at,
)

REPORT_TYPE = "GET_V2_SELLER_PERFORMANCE_REPORT"
WHAT = "seller performance report"
# The schema's key, then the spelling its own example uses.
RATE_KEYS = ("preFulfillmentCancellationRate", "prefulfillmentCancelRate")
PERSONAL_FIELDS: tuple[str, ...] = ()


E = TypeVar("E", bound=enum.Enum)


def _member_of(enum_type: type[E]) -> Callable[[object], E]:
    def parse(value: object) -> E:
        try:
            return enum_type(value)
        except ValueError:
            expected = ", ".join(str(e.value) for e in enum_type)
            raise invalid(
                Reason.UNKNOWN_VALUE, f"unknown value {bounds.shown(value)}; expected {expected}"
            ) from None

    return parse


def _reported_rate(entry: Any, where: str, *, now: datetime) -> tuple[str, AmazonReportedRate]:
    if not isinstance(entry, Mapping):
        raise invalid(Reason.NOT_AN_OBJECT, f"{where} must be an object")
    marketplace_id = identifier_at(entry, "marketplaceId", where)
    key = next((k for k in RATE_KEYS if optional(entry, k) is not None), RATE_KEYS[0])
    metric = required(entry, key, where)
    if not isinstance(metric, Mapping):
        raise invalid(Reason.NOT_AN_OBJECT, f"{where}: {key} must be an object")
    at = f"{where}: {key}"
    window_from = time_at(metric, "reportingDateRange.reportingDateFrom", at, now=now)
    window_to = time_at(metric, "reportingDateRange.reportingDateTo", at, now=now)
    assert window_from is not None and window_to is not None
    return marketplace_id, AmazonReportedRate(
        window_from=window_from,
        window_to=window_to,
        order_count=bounds.count(required(metric, "orderCount", at), f"{at}.orderCount"),
        cancellation_count=bounds.count(required(metric, "cancellationCount", at), f"{at}.cancellationCount"),
        rate=bounds.fraction(required(metric, "rate", at), f"{at}.rate"),
        status=parsed_at(metric, "status", at, _member_of(AmazonRateStatus)),
        target_value=bounds.fraction(required(metric, "targetValue", at), f"{at}.targetValue"),
        target_condition=parsed_at(metric, "targetCondition", at, _member_of(TargetCondition)),
    )


def parse_seller_performance(
    raw: bytes | str | Mapping[str, Any],
    *,
    seller_account: str,
    report_id: str,
    reported_at: datetime,
    observed_at: datetime,
) -> list[AccountEvent]:
    """One report document -> one AmazonReportedRate event per marketplace in it. Raises InvalidInput
    saying what is wrong and where (the document is one record: it is taken or refused whole)."""
    doc = load_json_object(raw, WHAT)
    seller = bounds.identifier(seller_account, "seller_account")
    report = bounds.identifier(report_id, "report_id")
    occurred_at = bounds.event_time(reported_at, "the report's createdTime", now=observed_at)
    entries = array_at(doc, "performanceMetrics", WHAT)
    events = []
    seen: set[str] = set()
    for n, entry in enumerate(entries):
        marketplace_id, body = _reported_rate(entry, f"{WHAT}: performanceMetrics[{n}]", now=observed_at)
        if marketplace_id in seen:  # two figures for one window: which one is Amazon's?
            raise invalid(Reason.OUT_OF_RANGE, f"{WHAT}: marketplace {marketplace_id} appears twice")
        seen.add(marketplace_id)
        event = AccountEvent(
            event_id=f"seller-performance:{report}:{marketplace_id}",
            key=AccountKey(seller, marketplace_id),
            source=Source.SELLER_PERFORMANCE_REPORT,
            occurred_at=occurred_at,
            observed_at=observed_at,
            body=body,
        )
        bounds.check_event(event, now=observed_at)  # across fields: the window's order, counts <= orders
        events.append(event)
    return events
