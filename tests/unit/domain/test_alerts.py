"""When to alert: levels crossed, the grace period, our figure against Amazon's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cancelguard.domain.alerts import (
    AlertState,
    Direction,
    Level,
    alert_id,
    crossings,
    diverges,
    settle,
    watched_windows,
)
from cancelguard.domain.policy import policy_for
from cancelguard.domain.windows import RateStatus

G, W, R = RateStatus.GOOD, RateStatus.WARNING, RateStatus.AT_RISK
UP, DOWN = Direction.UP, Direction.DOWN
T = datetime(2026, 11, 26, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("before", "after", "crossed"),
    [
        (G, G, []),
        (G, W, [(Level.WARNING, UP)]),
        (G, R, [(Level.WARNING, UP), (Level.THRESHOLD, UP)]),
        (W, R, [(Level.THRESHOLD, UP)]),
        (R, W, [(Level.THRESHOLD, DOWN)]),
        (R, G, [(Level.THRESHOLD, DOWN), (Level.WARNING, DOWN)]),
        (W, G, [(Level.WARNING, DOWN)]),
        (R, R, []),
    ],
)
def test_crossings_name_each_level_passed_in_order(before, after, crossed) -> None:  # type: ignore[no-untyped-def]
    assert crossings(before, after) == crossed


def test_without_grace_a_change_is_alerted_at_once_and_numbered() -> None:
    s = settle(AlertState("GOOD", 0), "WARNING", T, timedelta(0))
    assert (s.state, s.alerted_from) == (AlertState("WARNING", 1), "GOOD")
    assert settle(s.state, "WARNING", T, timedelta(0)).alerted_from is None  # no change: no alert


def test_with_grace_a_change_is_alerted_only_once_it_has_held() -> None:
    grace = timedelta(minutes=10)
    s = settle(AlertState("GOOD", 0), "AT_RISK", T, grace)
    assert s.alerted_from is None and s.state.pending_status == "AT_RISK"
    s = settle(s.state, "AT_RISK", T + timedelta(minutes=9), grace)
    assert s.alerted_from is None
    s = settle(s.state, "AT_RISK", T + timedelta(minutes=10), grace)
    assert (s.alerted_from, s.state) == ("GOOD", AlertState("AT_RISK", 1))


def test_a_transient_overcount_within_the_grace_period_is_never_alerted() -> None:
    grace = timedelta(minutes=10)
    s = settle(AlertState("GOOD", 3), "AT_RISK", T, grace)  # a cancel ahead of the shipment it raced
    s = settle(s.state, "GOOD", T + timedelta(minutes=2), grace)  # the late shipment arrives
    assert s.alerted_from is None and s.state == AlertState("GOOD", 3)
    s = settle(s.state, "GOOD", T + timedelta(hours=1), grace)
    assert s.alerted_from is None


def test_a_status_that_changes_again_in_the_grace_period_starts_it_over() -> None:
    grace = timedelta(minutes=10)
    s = settle(AlertState("GOOD", 0), "WARNING", T, grace)
    s = settle(s.state, "AT_RISK", T + timedelta(minutes=5), grace)
    assert s.state.pending_since == T + timedelta(minutes=5)
    assert settle(s.state, "AT_RISK", T + timedelta(minutes=12), grace).alerted_from is None
    assert settle(s.state, "AT_RISK", T + timedelta(minutes=15), grace).alerted_from == "GOOD"


def test_alert_ids_are_deterministic() -> None:
    assert alert_id("S", "M", "LIVE", 2, "WARNING_UP") == alert_id("S", "M", "LIVE", 2, "WARNING_UP")
    assert alert_id("S", "M", "LIVE", 2, "WARNING_UP") != alert_id("S", "M", "LIVE", 3, "WARNING_UP")


def test_divergence_is_exact() -> None:
    assert not diverges(1, 100, Decimal("0.005"), Decimal("0.005"))  # 1% vs 0.5%: exactly the tolerance
    assert diverges(11, 1000, Decimal("0.005"), Decimal("0.005"))  # 1.1% vs 0.5%
    assert not diverges(0, 0, Decimal("0"), Decimal("0.005"))


def test_india_watches_both_of_its_windows() -> None:
    names = [w.name for w in watched_windows(policy_for("A21TJRUUN4KGV"), T)]
    assert names == ["LIVE", "AMAZON_7", "AMAZON_30"]
    assert [w.name for w in watched_windows(policy_for("ATVPDKIKX0DER"), T)] == ["LIVE", "AMAZON_7"]
