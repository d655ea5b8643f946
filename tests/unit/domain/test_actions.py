"""The action to take on an order (issue item 6): one case per action, named after the rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from cancelguard.domain.actions import ActionCode, Intent, recommend
from cancelguard.domain.model import Channel
from cancelguard.domain.policy import MARKETPLACES, marketplace, policy_for
from cancelguard.domain.replies import ReplyKind, reply_text
from cancelguard.domain.windows import CancellationRate, RateStatus, WindowKind, cancellation_rate, window_for

from .builders import DE, FR, IN, JP, US, D, H, M, OrderStory, buckets_of, story

ORDER_ID = "111-0000001-0000001"


@dataclass(frozen=True)
class Case:
    build: Callable[[], OrderStory]
    intent: Intent
    code: ActionCode
    cancel_reason: str
    counts: bool
    reply: ReplyKind | None


def unshipped(**kw) -> OrderStory:
    return story(**kw).pending(M(0)).unshipped(H(1))


# One entry per action of issue item 6 (and the ones around them), named after the rule.
ACTIONS = {
    "formal-request-unshipped-no-label->cancel-BuyerCanceled": Case(
        lambda: unshipped().formal(H(2)),
        Intent.NONE,
        ActionCode.CANCEL_BUYER_CANCELED,
        "BuyerCanceled",
        False,
        None,
    ),
    "formal-request-and-seller-out-of-stock->still-BuyerCanceled": Case(
        lambda: unshipped().formal(H(2)),
        Intent.CANCEL_NO_INVENTORY,
        ActionCode.CANCEL_BUYER_CANCELED,
        "BuyerCanceled",
        False,
        None,
    ),
    "informal-request-only->ask-for-formal-request": Case(
        lambda: unshipped().informal(H(2)),
        Intent.NONE,
        ActionCode.ASK_FOR_FORMAL_REQUEST,
        "",
        False,
        ReplyKind.ASK_FORMAL_REQUEST,
    ),
    "formal-request-on-shipped->advise-return": Case(
        lambda: unshipped().formal(H(2)).shipped(D(1)),
        Intent.NONE,
        ActionCode.ADVISE_RETURN,
        "",
        False,
        ReplyKind.RETURN_INSTEAD,
    ),
    "formal-request-after-label->advise-return": Case(
        lambda: unshipped().label(H(2)).formal(H(3)),
        Intent.NONE,
        ActionCode.ADVISE_RETURN,
        "",
        False,
        ReplyKind.RETURN_INSTEAD,
    ),
    "informal-request-on-shipped->advise-return": Case(
        lambda: unshipped().shipped(D(1)).informal(D(2)),
        Intent.NONE,
        ActionCode.ADVISE_RETURN,
        "",
        False,
        ReplyKind.RETURN_INSTEAD,
    ),
    "no-inventory->cancel-NoInventory-counts": Case(
        lambda: unshipped(),
        Intent.CANCEL_NO_INVENTORY,
        ActionCode.CANCEL_NO_INVENTORY,
        "NoInventory",
        True,
        None,
    ),
    "no-inventory-with-informal-request->never-ask-for-a-request": Case(
        lambda: unshipped().informal(H(2)),
        Intent.CANCEL_NO_INVENTORY,
        ActionCode.CANCEL_NO_INVENTORY,
        "NoInventory",
        True,
        None,
    ),
    "BuyerCanceled-without-formal-request->refuse": Case(
        lambda: unshipped(),
        Intent.CANCEL_BUYER_CANCELED,
        ActionCode.REFUSE_BUYER_CANCELED_REASON,
        "",
        True,
        None,
    ),
    "BuyerCanceled-on-informal-request->refuse": Case(
        lambda: unshipped().informal(H(2)),
        Intent.CANCEL_BUYER_CANCELED,
        ActionCode.REFUSE_BUYER_CANCELED_REASON,
        "",
        True,
        None,
    ),
    "pending->nothing-to-do": Case(
        lambda: story().pending(M(0)), Intent.NONE, ActionCode.WAIT_PENDING, "", False, None
    ),
    "pending-with-informal-request->nothing-to-do": Case(
        lambda: story().pending(M(0)).informal(M(10)), Intent.NONE, ActionCode.WAIT_PENDING, "", False, None
    ),
    "no-request->fulfil": Case(lambda: unshipped(), Intent.NONE, ActionCode.FULFIL, "", False, None),
    "seller-wants-to-cancel-shipped->cannot": Case(
        lambda: unshipped().shipped(D(1)),
        Intent.CANCEL_NO_INVENTORY,
        ActionCode.CANNOT_CANCEL_SHIPPED,
        "",
        False,
        None,
    ),
    "afn->not-applicable": Case(
        lambda: story(channel=Channel.AFN).unshipped(H(1)).formal(H(2)),
        Intent.NONE,
        ActionCode.NOT_APPLICABLE,
        "",
        False,
        None,
    ),
    "already-cancelled-by-seller->counted": Case(
        lambda: unshipped().seller_cancel(H(2)).canceled(H(3)),
        Intent.NONE,
        ActionCode.ALREADY_CANCELLED,
        "",
        True,
        None,
    ),
    "already-cancelled-on-request->not-counted": Case(
        lambda: unshipped().formal(H(2)).seller_cancel(H(3), "BuyerCanceled").canceled(H(4)),
        Intent.NONE,
        ActionCode.ALREADY_CANCELLED,
        "",
        False,
        None,
    ),
}


@pytest.mark.parametrize("case", ACTIONS.values(), ids=ACTIONS.keys())
def test_action(case: Case) -> None:
    rec = recommend(case.build().order(), policy_for(US), intent=case.intent)
    assert (rec.code, rec.cancel_reason, rec.counts_against_cr) == (
        case.code,
        case.cancel_reason,
        case.counts,
    )
    assert rec.reply_kind is case.reply
    assert rec.explanation
    if case.reply is None:
        assert rec.reply_text == "" and rec.reply_language == ""
    else:
        assert rec.reply_language == "en"
        assert rec.reply_text == reply_text(case.reply, "en", order_id=ORDER_ID)


def test_informal_request_says_that_cancelling_now_would_count() -> None:
    rec = recommend(unshipped().informal(H(2)).order(), policy_for(US))
    assert "Request cancellation" in rec.explanation
    assert "count" in rec.explanation


def test_no_inventory_never_advises_asking_the_buyer_for_a_request() -> None:
    rec = recommend(unshipped().informal(H(2)).order(), policy_for(US), intent=Intent.CANCEL_NO_INVENTORY)
    assert "Request cancellation" not in rec.explanation
    assert rec.reply_kind is None


def test_refusing_buyer_canceled_says_why() -> None:
    rec = recommend(unshipped().order(), policy_for(US), intent=Intent.CANCEL_BUYER_CANCELED)
    assert "formal" in rec.explanation and "counts" in rec.explanation


def test_cancel_buyer_canceled_names_the_requested_items() -> None:
    order = unshipped(items=("A", "B", "C")).formal(H(2), items=("C", "A")).order()
    rec = recommend(order, policy_for(US))
    assert rec.order_item_ids == ("A", "C")


def test_cancel_buyer_canceled_leaves_out_items_whose_request_cleared() -> None:
    order = (
        unshipped(items=("A", "B"))
        .flag(True, H(2), item="A")
        .flag(True, H(2), item="B")
        .flag(False, H(3), item="A")
        .order()
    )
    rec = recommend(order, policy_for(US))
    assert (rec.code, rec.order_item_ids) == (ActionCode.CANCEL_BUYER_CANCELED, ("B",))


def test_request_cleared_on_every_item_is_no_longer_a_reason_to_cancel() -> None:
    order = unshipped().flag(True, H(2)).flag(False, H(3)).order()
    assert recommend(order, policy_for(US)).code is ActionCode.FULFIL


def test_india_formal_request_is_cancelled_with_buyer_canceled_too() -> None:
    rec = recommend(unshipped(marketplace_id=IN).formal(H(2)).order(), policy_for(IN))
    assert (rec.code, rec.cancel_reason, rec.counts_against_cr) == (
        ActionCode.CANCEL_BUYER_CANCELED,
        "BuyerCanceled",
        False,
    )


# --- the CR effect -------------------------------------------------------------------------------------

AS_OF = datetime(2024, 3, 11, 8, tzinfo=UTC)
IN_WINDOW = datetime(2024, 3, 5, 12, tzinfo=UTC)


def _current(n_orders: int, n_cancelled: int) -> CancellationRate:
    orders = []
    for i in range(n_orders):
        s = story(order_id=f"x{i}", purchased_at=IN_WINDOW).unshipped(H(1))
        if i < n_cancelled:
            s.seller_cancel(H(2)).canceled(H(3))
        orders.append(s.order())
    window = window_for(WindowKind.AMAZON_ALIGNED, AS_OF, policy_for(US))
    return cancellation_rate(window, buckets_of(orders, policy_for(US)), policy_for(US))


@pytest.mark.parametrize(
    ("intent", "build"),
    [
        (Intent.CANCEL_NO_INVENTORY, lambda: story(purchased_at=IN_WINDOW).unshipped(H(1))),
        (Intent.CANCEL_BUYER_CANCELED, lambda: story(purchased_at=IN_WINDOW).unshipped(H(1))),
        (Intent.NONE, lambda: story(purchased_at=IN_WINDOW).unshipped(H(1)).informal(H(2))),
    ],
    ids=["NoInventory", "BuyerCanceled-refused", "informal-request"],
)
def test_projected_rate_shows_what_a_counted_cancel_would_cause(intent: Intent, build) -> None:
    current = _current(100, 2)  # 2.0%: WARNING
    order = build().order()
    rec = recommend(order, policy_for(US), intent=intent, current_rate=current, now=AS_OF)
    assert rec.current_rate == current
    assert rec.projected_rate is not None
    assert (rec.projected_rate.numerator, rec.projected_rate.denominator) == (3, 100)
    assert rec.projected_rate.status is RateStatus.AT_RISK
    assert rec.projected_rate.rate == Decimal("0.03")


def test_projected_rate_for_an_order_outside_the_window_is_unchanged() -> None:
    current = _current(100, 2)
    today = story(purchased_at=AS_OF - H(3)).unshipped(H(1)).order()  # not in the lagging Amazon window
    rec = recommend(today, policy_for(US), intent=Intent.CANCEL_NO_INVENTORY, current_rate=current)
    assert rec.counts_against_cr
    assert (rec.projected_rate.numerator, rec.projected_rate.denominator) == (2, 100)


def test_no_projection_without_a_current_rate() -> None:
    rec = recommend(unshipped().order(), policy_for(US), intent=Intent.CANCEL_NO_INVENTORY)
    assert rec.projected_rate is None and rec.current_rate is None


# --- reply language ------------------------------------------------------------------------------------


@pytest.mark.parametrize("marketplace_id", sorted(MARKETPLACES))
def test_reply_in_the_marketplace_language(marketplace_id: str) -> None:
    order = unshipped(marketplace_id=marketplace_id).informal(H(2)).order()
    rec = recommend(order, policy_for(marketplace_id))
    language = marketplace(marketplace_id).language
    assert rec.reply_language == language
    assert rec.reply_text == reply_text(ReplyKind.ASK_FORMAL_REQUEST, language, order_id=ORDER_ID)


@pytest.mark.parametrize(("marketplace_id", "language"), [(DE, "de"), (FR, "fr"), (JP, "ja")])
def test_reply_texts_differ_by_language(marketplace_id: str, language: str) -> None:
    english = recommend(unshipped().informal(H(2)).order(), policy_for(US)).reply_text
    order = unshipped(marketplace_id=marketplace_id).informal(H(2)).order()
    local = recommend(order, policy_for(marketplace_id))
    assert local.reply_language == language
    assert local.reply_text and local.reply_text != english


def test_reply_in_the_language_the_buyer_wrote_in() -> None:
    # a French buyer on amazon.de: answer in French
    order = unshipped(marketplace_id=DE).informal(H(2), language="fr").order()
    rec = recommend(order, policy_for(DE))
    assert rec.reply_language == "fr"
    assert rec.reply_text == reply_text(ReplyKind.ASK_FORMAL_REQUEST, "fr", order_id=ORDER_ID)
    returned = recommend(
        unshipped(marketplace_id=DE).shipped(D(1)).informal(D(2), language="fr").order(), policy_for(DE)
    )
    assert (returned.reply_kind, returned.reply_language) == (ReplyKind.RETURN_INSTEAD, "fr")


def test_latest_message_language_wins() -> None:
    order = unshipped(marketplace_id=DE).informal(H(2), language="fr").informal(H(5), language="it").order()
    assert recommend(order, policy_for(DE)).reply_language == "it"


def test_formal_request_on_shipped_order_replies_in_the_marketplace_language() -> None:
    rec = recommend(unshipped(marketplace_id=DE).formal(H(2)).shipped(D(1)).order(), policy_for(DE))
    assert (rec.reply_kind, rec.reply_language) == (ReplyKind.RETURN_INSTEAD, "de")


@pytest.mark.parametrize(
    ("marketplace_id", "written", "expected"),
    [
        (DE, "fr-FR", "fr"),  # a region tag: the language is what matters
        (DE, "pt_BR", "pt"),
        (DE, " IT ", "it"),
        (DE, "ko", "de"),  # no Korean replies: the marketplace's language, not a silent English text
        (US, "ko", "en"),
        (JP, "zh", "zh"),
        (DE, "ar", "ar"),
        (DE, "tr", "tr"),
    ],
)
def test_reply_language_is_one_we_have_replies_in(marketplace_id: str, written: str, expected: str) -> None:
    order = unshipped(marketplace_id=marketplace_id).informal(H(2), language=written).order()
    rec = recommend(order, policy_for(marketplace_id))
    assert rec.reply_language == expected
    assert rec.reply_text == reply_text(ReplyKind.ASK_FORMAL_REQUEST, expected, order_id=ORDER_ID)
    assert ORDER_ID in rec.reply_text


REPLY_LANGUAGES = ("en", "de", "fr", "it", "es", "nl", "pl", "sv", "tr", "ja", "zh", "ar", "pt")


@pytest.mark.parametrize("language", REPLY_LANGUAGES)
@pytest.mark.parametrize("kind", list(ReplyKind))
def test_the_issue_languages_each_get_their_own_reply(kind: ReplyKind, language: str) -> None:
    # every language the issue lists reaches the buyer in that language through recommend
    s = unshipped(marketplace_id=US)
    s = (
        s.informal(H(2), language=language)
        if kind is ReplyKind.ASK_FORMAL_REQUEST
        else s.shipped(D(1)).informal(D(2), language=language)
    )
    rec = recommend(s.order(), policy_for(US))
    assert (rec.reply_kind, rec.reply_language) == (kind, language)
    english = reply_text(kind, "en", order_id=ORDER_ID)
    assert (rec.reply_text == english) is (language == "en")
