"""Backoff grows exponentially, is jittered, capped and bounded."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cancelguard.amazon.backoff import Backoff


@pytest.mark.parametrize(
    ("failures", "low", "high"),
    [(1, 0.25, 0.5), (2, 0.5, 1.0), (3, 1.0, 2.0), (4, 2.0, 4.0), (7, 15.0, 30.0), (20, 15.0, 30.0)],
)
def test_delay_ranges(failures: int, low: float, high: float) -> None:
    backoff = Backoff(base_s=0.5, cap_s=30.0)
    delays = [backoff.delay(failures, random.Random(seed)) for seed in range(200)]
    assert all(low <= d <= high for d in delays)
    assert len(set(delays)) > 100  # jittered


@given(st.integers(min_value=1, max_value=64), st.integers(min_value=0, max_value=2**32))
def test_never_above_the_cap_nor_below_half_the_nominal(failures: int, seed: int) -> None:
    backoff = Backoff(base_s=0.1, cap_s=5.0)
    delay = backoff.delay(failures, random.Random(seed))
    nominal = min(5.0, 0.1 * 2 ** (failures - 1))
    assert nominal / 2 <= delay <= nominal <= 5.0


@pytest.mark.parametrize("bad", [{"base_s": -1}, {"base_s": 2, "cap_s": 1}, {"max_attempts": 0}])
def test_bad_settings_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        Backoff(**bad)
