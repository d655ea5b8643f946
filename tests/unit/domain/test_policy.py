"""Policy per marketplace (issue item 4)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from cancelguard.domain.model import InvalidInput
from cancelguard.domain.policy import (
    MARKETPLACES,
    CancellationPolicy,
    PolicyBook,
    UnknownMarketplace,
    WindowPlacement,
    marketplace,
    policy_for,
)

from .builders import DE, IN, JP, UK, US


def test_default_policy() -> None:
    policy = policy_for(US)
    assert policy.threshold == Decimal("0.025")
    assert policy.warning == Decimal("0.020")
    assert policy.warning < policy.threshold
    assert policy.window_days == (7,)
    assert policy.live_window_hours == 168
    assert policy.self_cancel_window == timedelta(minutes=30)
    # the switches for inferred or weakly sourced rules, and their defaults
    assert policy.window_placement is WindowPlacement.PURCHASE_DATE
    assert policy.pending_in_denominator is False
    assert policy.exclude_payment_fraud_cancels is True
    assert policy.formal_request_needs_buyer_canceled_reason is False
    assert policy.suppression_days == 30


def test_india() -> None:
    policy = policy_for(IN)
    assert policy.threshold == Decimal("0.02")
    assert policy.warning < policy.threshold
    assert set(policy.window_days) == {7, 30}
    assert policy.primary_window_days == 7
    assert policy.formal_request_needs_buyer_canceled_reason is True


def test_japan_self_cancel_window_is_five_minutes() -> None:
    assert policy_for(JP).self_cancel_window == timedelta(minutes=5)
    assert policy_for(JP).threshold == Decimal("0.025")


@pytest.mark.parametrize("marketplace_id", sorted(set(MARKETPLACES) - {IN, JP}))
def test_every_other_marketplace_has_the_default_rules(marketplace_id: str) -> None:
    assert policy_for(marketplace_id) == CancellationPolicy()


@pytest.mark.parametrize(
    ("marketplace_id", "country", "language"),
    [
        (US, "US", "en"),
        (DE, "DE", "de"),
        (JP, "JP", "ja"),
        (IN, "IN", "en"),
        (UK, "UK", "en"),
        ("A1C3SOZRARQ6R3", "PL", "pl"),
        ("A2NODRKZP88ZB9", "SE", "sv"),
        ("A33AVAJ2PDY3EV", "TR", "tr"),
        ("A2Q3Y263D00KWC", "BR", "pt"),
        ("A17E79C6D8DWNP", "SA", "ar"),
        ("A1805IZSGTT6HS", "NL", "nl"),
    ],
)
def test_marketplaces_by_amazon_id(marketplace_id: str, country: str, language: str) -> None:
    found = marketplace(marketplace_id)
    assert (found.id, found.country, found.language) == (marketplace_id, country, language)


@pytest.mark.parametrize("bad", ["", "US", "atvpdkikx0der", "ATVPDKIKX0DEX", " ATVPDKIKX0DER"])
def test_unknown_marketplace_is_an_error_not_a_default(bad: str) -> None:
    with pytest.raises(UnknownMarketplace, match="marketplace id"):
        policy_for(bad)
    with pytest.raises(InvalidInput):
        marketplace(bad)


def test_seller_overrides_per_marketplace_and_for_all() -> None:
    book = PolicyBook(
        overrides={DE: {"warning": Decimal("0.01"), "pending_in_denominator": True}},
        default_overrides={"amazon_window_lag_days": 0},
    )
    de, us, india = book.for_marketplace(DE), book.for_marketplace(US), book.for_marketplace(IN)
    assert (de.warning, de.pending_in_denominator, de.amazon_window_lag_days) == (Decimal("0.01"), True, 0)
    assert (us.warning, us.pending_in_denominator, us.amazon_window_lag_days) == (Decimal("0.020"), False, 0)
    assert india.threshold == Decimal("0.02")  # Amazon's marketplace rule kept under a seller default


def test_overrides_given_as_strings_or_floats_stay_exact() -> None:
    policy = PolicyBook(overrides={US: {"threshold": "0.03", "warning": 0.015}}).for_marketplace(US)
    assert policy.threshold == Decimal("0.03") and isinstance(policy.threshold, Decimal)
    assert policy.warning == Decimal("0.015")


@pytest.mark.parametrize(
    "overrides",
    [
        {US: {"no_such_field": 1}},
        {US: {"warning": Decimal("0.03")}},  # warning above the threshold
        {US: {"warning": Decimal("0.025")}},  # a warning equal to the threshold could never show
        {US: {"threshold": Decimal("0")}},
        {US: {"threshold": "lots"}},
        {US: {"window_days": ()}},
        {US: {"window_days": (0,)}},
        {US: {"amazon_window_lag_days": -1}},
        {US: {"live_window_hours": 0}},
        {US: {"self_cancel_window": timedelta(minutes=-1)}},
        {"ATVPDKIKX0DEX": {"warning": Decimal("0.01")}},  # typo in the id
    ],
    ids=[
        "unknown-field",
        "warning-above",
        "warning-equal",
        "zero-threshold",
        "not-a-number",
        "no-windows",
        "zero-day-window",
        "negative-lag",
        "no-live-hours",
        "negative-self-cancel",
        "unknown-marketplace",
    ],
)
def test_bad_overrides_fail_when_the_book_is_made(overrides: dict) -> None:
    with pytest.raises(InvalidInput):
        PolicyBook(overrides=overrides)


def test_bad_default_override_fails_for_every_marketplace_it_breaks() -> None:
    # 2.2% warning is fine for most marketplaces but above India's 2% threshold
    with pytest.raises(InvalidInput):
        PolicyBook(default_overrides={"warning": Decimal("0.022")})
