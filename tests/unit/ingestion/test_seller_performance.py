"""GET_V2_SELLER_PERFORMANCE_REPORT -> Amazon's own cancellation rate as an account event: Amazon's
example (with its own spelling of the key), exact rates, bad input."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from cancelguard.domain.bounds import check_event
from cancelguard.domain.model import (
    AccountEvent,
    AccountKey,
    AmazonRateStatus,
    AmazonReportedRate,
    InvalidInput,
    Source,
    TargetCondition,
)
from cancelguard.events import codec
from cancelguard.ingestion.adapters.seller_performance import parse_seller_performance
from cancelguard.metrics import service as metrics_service

from .documents import DELETE, assert_valid_or_refused, changed, fixture, json_values, mangled, nested

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
REPORTED_AT = datetime(2020, 11, 20, 3, 0, tzinfo=UTC)
SELLER = "A3TH9S8BH6GOGM"
EXAMPLE = fixture("account_health_report_example.json")
AMAZONS_KEY = "performanceMetrics.0.prefulfillmentCancelRate"  # the example's spelling
SCHEMA = {
    **EXAMPLE,
    "performanceMetrics": [
        {
            "marketplaceId": "ATVPDKIKX0DER",
            "preFulfillmentCancellationRate": EXAMPLE["performanceMetrics"][0]["prefulfillmentCancelRate"],
        }
    ],
}
METRIC = "performanceMetrics.0.preFulfillmentCancellationRate"


def parse(doc: Any = EXAMPLE, **kw: Any) -> list[AccountEvent]:
    args: dict[str, Any] = {
        "seller_account": SELLER,
        "report_id": "50039018867",
        "reported_at": REPORTED_AT,
        "observed_at": NOW,
    }
    return parse_seller_performance(doc, **{**args, **kw})


def test_amazons_example_becomes_its_reported_rate() -> None:
    [event] = parse()
    assert event == AccountEvent(
        event_id="seller-performance:50039018867:ATVPDKIKX0DER",
        key=AccountKey(SELLER, "ATVPDKIKX0DER"),
        source=Source.SELLER_PERFORMANCE_REPORT,
        occurred_at=REPORTED_AT,
        observed_at=NOW,
        body=AmazonReportedRate(
            window_from=datetime(2020, 11, 12, tzinfo=UTC),
            window_to=datetime(2020, 11, 18, 23, 59, tzinfo=UTC),  # "2020-11-18T23:59Z"
            order_count=17197,
            cancellation_count=551,
            rate=Decimal("0.005"),
            status=AmazonRateStatus.GOOD,
            target_value=Decimal("0.01"),
            target_condition=TargetCondition.LESS_THAN,
        ),
    )
    assert event.key.partition_key == f"{SELLER}|ATVPDKIKX0DER"  # beside the orders it concerns
    check_event(event, now=NOW)
    assert codec.decode(codec.encode(event)) == event


def test_the_metrics_service_reads_it_as_an_account_event_never_as_an_order_to_fold() -> None:
    [event] = parse()
    value = codec.encode(event)
    record = ConsumerRecord(
        "order-events", 0, 7, 0, 0, event.key.partition_key.encode(), value, None, 0, 0, ()
    )
    decoded = metrics_service.decode(record, NOW)  # checked too: bounds.check_event
    assert isinstance(decoded, AccountEvent) and decoded == event  # the store folds OrderEvents only


def test_the_schemas_key_reads_the_same() -> None:
    assert parse(SCHEMA) == parse()


@pytest.mark.parametrize(
    ("rate", "exact"),
    [
        (0.005, "0.005"),
        (Decimal("0.00500"), "0.00500"),
        (0, "0"),
        (1, "1"),
        (0.1 + 0.2, "0.30000000000000004"),
    ],
)
def test_rates_are_kept_exactly_as_the_document_wrote_them(rate: Any, exact: str) -> None:
    [event] = parse(_metric("rate", rate))
    assert str(event.body.rate) == exact
    assert codec.decode(codec.encode(event)) == event


def test_one_event_per_marketplace() -> None:
    second = {**SCHEMA["performanceMetrics"][0], "marketplaceId": "A2EUQ1WTGCTBG2"}
    doc = {**SCHEMA, "performanceMetrics": [*SCHEMA["performanceMetrics"], second]}
    assert [e.key.marketplace_id for e in parse(doc)] == ["ATVPDKIKX0DER", "A2EUQ1WTGCTBG2"]
    assert parse({**SCHEMA, "performanceMetrics": []}) == []


def _metric(path: str, value: Any) -> Any:
    return changed(SCHEMA, f"{METRIC}.{path}", value)


FROM, TO = "reportingDateRange.reportingDateFrom", "reportingDateRange.reportingDateTo"
# (document, the reason code, what the message says)
BAD_INPUT = [
    (b"{not json", "NOT_JSON", "not JSON"),
    (b'"report"', "NOT_AN_OBJECT", "JSON object"),
    (nested(100_000), "TOO_DEEP", "nested too deeply"),
    (changed(SCHEMA, "performanceMetrics", DELETE), "MISSING_FIELD", "has no performanceMetrics"),
    (changed(SCHEMA, "performanceMetrics", {}), "WRONG_TYPE", "must be a list"),
    (changed(SCHEMA, "performanceMetrics.0", []), "NOT_AN_OBJECT", "performanceMetrics[0] must be an object"),
    (changed(SCHEMA, "performanceMetrics.0.marketplaceId", DELETE), "MISSING_FIELD", "has no marketplaceId"),
    (changed(SCHEMA, "performanceMetrics.0.marketplaceId", "ATVPDKIKX0DER\x00"), "BAD_IDENTIFIER", "control"),
    (changed(SCHEMA, "performanceMetrics.0.marketplaceId", "\ud800"), "BAD_IDENTIFIER", "printable ASCII"),
    (changed(SCHEMA, METRIC, DELETE), "MISSING_FIELD", "has no preFulfillmentCancellationRate"),
    (changed(SCHEMA, METRIC, 0.005), "NOT_AN_OBJECT", "must be an object"),
    (_metric("reportingDateRange", DELETE), "MISSING_FIELD", "reportingDateRange"),
    (_metric(FROM, "last week"), "BAD_TIME", "reportingDateFrom"),
    (_metric(TO, "2020-11-18T23:59"), "BAD_TIME", "no time zone"),
    (_metric(FROM, "0001-01-01T00:00Z"), "TIME_OUT_OF_RANGE", "outside 2000-01-01"),
    (_metric(FROM, "1970-01-01T00:00Z"), "TIME_OUT_OF_RANGE", "reportingDateFrom"),
    (_metric(TO, "2999-11-18T23:59Z"), "TIME_OUT_OF_RANGE", "reportingDateTo"),
    (_metric(FROM, "2020-11-19T00:00Z"), "OUT_OF_RANGE", "the window ends before it starts"),
    (_metric("orderCount", DELETE), "MISSING_FIELD", "has no orderCount"),
    (_metric("orderCount", -1), "OUT_OF_RANGE", "orderCount is -1"),
    (_metric("orderCount", 2**63), "OUT_OF_RANGE", "expected 0 to 1,000,000,000"),
    (_metric("orderCount", "17197"), "OUT_OF_RANGE", "whole number"),
    (_metric("cancellationCount", 17198), "OUT_OF_RANGE", "exceeds order_count"),
    (_metric("cancellationCount", True), "OUT_OF_RANGE", "whole number"),
    (_metric("rate", 1.5), "OUT_OF_RANGE", "fraction from 0 to 1"),
    (_metric("rate", -0.01), "OUT_OF_RANGE", "fraction from 0 to 1"),
    (_metric("rate", float("nan")), "OUT_OF_RANGE", "fraction from 0 to 1"),
    (_metric("rate", "0.005"), "OUT_OF_RANGE", "must be a number"),
    (_metric("rate", DELETE), "MISSING_FIELD", "has no rate"),
    (_metric("targetValue", float("inf")), "OUT_OF_RANGE", "targetValue"),
    (_metric("status", "OK"), "UNKNOWN_VALUE", "expected GOOD, BAD, NONE"),
    (_metric("targetCondition", "LT"), "UNKNOWN_VALUE", "expected LESS_THAN"),
    (
        {**SCHEMA, "performanceMetrics": SCHEMA["performanceMetrics"] * 2},
        "OUT_OF_RANGE",
        "marketplace ATVPDKIKX0DER appears twice",
    ),
]


@pytest.mark.parametrize(("doc", "reason", "says"), BAD_INPUT, ids=lambda v: v if isinstance(v, str) else "")
def test_bad_input_says_what_is_wrong(doc: Any, reason: str, says: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse(doc)
    assert err.value.reason == reason, str(err.value)
    assert says in str(err.value)


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"seller_account": ""}, "MISSING_FIELD"),
        ({"report_id": "50039 018867"}, "BAD_IDENTIFIER"),
        ({"reported_at": datetime(2999, 1, 1, tzinfo=UTC)}, "TIME_OUT_OF_RANGE"),
    ],
)
def test_what_the_caller_passes_is_checked_too(kw: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse(**kw)
    assert err.value.reason == reason


@given(
    value=json_values,
    where=st.sampled_from(
        ["", "performanceMetrics", "performanceMetrics.0", METRIC, f"{METRIC}.reportingDateRange"]
    ),
    key=st.sampled_from(
        [
            "performanceMetrics",
            "marketplaceId",
            "preFulfillmentCancellationRate",
            "prefulfillmentCancelRate",
            "reportingDateFrom",
            "reportingDateTo",
            "orderCount",
            "cancellationCount",
            "rate",
            "status",
            "targetValue",
            "targetCondition",
            "other",
        ]
    ),
)
@settings(max_examples=300, deadline=None)
def test_any_mangled_report_is_parsed_into_valid_events_or_refused_with_a_reason(
    value: Any, where: str, key: str
) -> None:
    assert_valid_or_refused(lambda: list(parse(mangled(SCHEMA, where, key, value))), now=NOW)
