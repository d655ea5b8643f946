"""What the API's CLI prints: the history chart with Amazon's figure, and a feed submission per state."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from cancelguard import cli_api
from cancelguard.v1 import metrics_pb2, orders_pb2

State = orders_pb2.FeedSubmission


def _day(rate: float, amazon: str | None = None) -> metrics_pb2.RateOnDay:
    day = metrics_pb2.RateOnDay(
        rate=metrics_pb2.CancellationRate(
            rate=rate, threshold=0.025, cancelled_orders=int(rate * 100), total_orders=100
        )
    )
    day.day.FromSeconds(1_700_000_000)
    if amazon is not None:
        day.rate.amazon.CopyFrom(
            metrics_pb2.AmazonFigure(rate=amazon, difference=f"{rate - float(amazon):.6f}")
        )
    return day


def test_the_history_chart_shows_amazons_figure_where_known() -> None:
    lines = cli_api.history_chart([_day(0.01), _day(0.03, amazon="0.02")])
    assert "Amazon" not in lines[1]
    assert "Amazon 2.00% (+1.00%)" in lines[2]
    assert lines[-1].strip().startswith("^ threshold 2.5%")


class _Api:
    def __init__(self, found: orders_pb2.FeedSubmission) -> None:
        self.found = found

    def feed_submission(self, seller: str, event_id: str) -> orders_pb2.FeedSubmission:
        return self.found


@pytest.mark.parametrize(
    ("submission", "code", "shown"),
    [
        (State(state=State.STATE_PENDING, error="HTTP 503", attempts=2), 0,
         ["PENDING", "last try: HTTP 503"]),
        (State(state=State.STATE_SUBMITTED, feed_id="5001", processing_status="IN_PROGRESS"), 0,
         ["SUBMITTED, Amazon feed 5001 (IN_PROGRESS)"]),
        (State(state=State.STATE_DONE, feed_id="5001", processing_status="DONE", messages_processed=1,
               messages_with_error=1, results=["Error 90106: Item 1 is already cancelled."]), 0,
         ["0 of 1 applied, 1 refused", "Error 90106"]),
        (State(state=State.STATE_FAILED, error="createFeed: 400 InvalidInput"), 1,
         ["FAILED", "why: createFeed"]),
    ],
)  # fmt: skip
def test_a_feed_submission_is_shown_with_its_state(
    submission: orders_pb2.FeedSubmission, code: int, shown: list[str], capsys: Any
) -> None:
    submission.amazon_order_id, submission.marketplace_id = "111-1", "ATVPDKIKX0DER"
    args = argparse.Namespace(seller_account="A1", event_id="api-decision:x", json=False)
    assert cli_api._feed(_Api(submission), args) == code
    out = capsys.readouterr().out
    for text in shown:
        assert text in out
