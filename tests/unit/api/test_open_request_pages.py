"""Pages cut from a held list of open requests start where the database's keyset query would."""

from datetime import UTC, datetime, timedelta

import pytest

from cancelguard.api.cache import OpenRequests
from cancelguard.api.reads import _start_after
from cancelguard.metrics.store import After, ListedOrder

T0 = datetime(2026, 11, 20, 9, tzinfo=UTC)
T1, T2 = T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)
# the database's order: by request time, then order id in its collation (here "b" sorts after "c")
LISTED = OpenRequests.of(
    [ListedOrder("a", T0), ListedOrder("c", T1), ListedOrder("b", T1), ListedOrder("d", T2)]
)


@pytest.mark.parametrize(
    ("after", "start"),
    [
        (After(), 0),  # from the start
        (After(T0, True, "a"), 1),
        (After(T1, True, "c"), 2),  # after "c" in the list's own order, not by comparing ids
        (After(T1, True, "b"), 3),
        (After(T1, False), 3),  # nothing more at T1
        (After(T1, True, None), 1),  # every order at T1 (another marketplace's position)
        (After(T0 + timedelta(seconds=30), True, "zz"), 1),  # no order at that time: the next one
        (After(T2, True, "d"), 4),  # the end
        (After(T2 + timedelta(days=1), True, "x"), 4),
        (After(T1, True, "gone"), None),  # closed since, and others share its time: ask the database
    ],
)
def test_a_page_starts_after_its_position(after: After, start: int | None) -> None:
    assert _start_after(LISTED, after) == start
