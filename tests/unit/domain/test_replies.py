"""Reply texts to buyers who asked to cancel by message."""

from __future__ import annotations

import pytest

from cancelguard.domain.buyer_messages import SUPPORTED_LANGUAGES
from cancelguard.domain.replies import ReplyKind, reply_text

ORDER_ID = "028-1234567-7654321"
CASES = [(kind, language) for kind in ReplyKind for language in SUPPORTED_LANGUAGES]


@pytest.mark.parametrize(("kind", "language"), CASES)
def test_every_reply_names_the_order(kind: ReplyKind, language: str) -> None:
    text = reply_text(kind, language, order_id=ORDER_ID)
    assert text.strip()
    assert text.count(ORDER_ID) == 1
    assert "{" not in text and "}" not in text  # no placeholder left behind


@pytest.mark.parametrize(("kind", "language"), CASES)
def test_replies_are_translated(kind: ReplyKind, language: str) -> None:
    text = reply_text(kind, language, order_id=ORDER_ID)
    english = reply_text(kind, "en", order_id=ORDER_ID)
    assert (text == english) == (language == "en")


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_the_two_kinds_differ(language: str) -> None:
    ask = reply_text(ReplyKind.ASK_FORMAL_REQUEST, language, order_id=ORDER_ID)
    ret = reply_text(ReplyKind.RETURN_INSTEAD, language, order_id=ORDER_ID)
    assert ask != ret


@pytest.mark.parametrize(
    ("language", "labels"),
    [
        ("en", ("Your Orders", "Request cancellation")),
        ("de", ("Meine Bestellungen", "Stornierung anfordern")),
        ("fr", ("Vos commandes", "Demander l'annulation")),
        ("es", ("Mis pedidos", "Solicitar cancelación")),
        ("ja", ("注文履歴",)),
    ],
)
def test_ask_formal_request_names_amazons_menu(language: str, labels: tuple[str, ...]) -> None:
    text = reply_text(ReplyKind.ASK_FORMAL_REQUEST, language, order_id=ORDER_ID)
    for label in labels:
        assert label in text


def test_return_instead_says_refuse_or_return() -> None:
    text = reply_text(ReplyKind.RETURN_INSTEAD, "en", order_id=ORDER_ID)
    assert "refuse the delivery" in text and "return" in text and "refund" in text
    assert "can no longer cancel" in text


@pytest.mark.parametrize("language", ["", "xx", "ru", "ko", "und"])
def test_unknown_language_falls_back_to_english(language: str) -> None:
    for kind in ReplyKind:
        assert reply_text(kind, language, order_id=ORDER_ID) == reply_text(kind, "en", order_id=ORDER_ID)


@pytest.mark.parametrize(
    ("tag", "language"),
    [
        ("de-DE", "de"),
        ("pt_BR", "pt"),
        ("FR", "fr"),
        (" ja ", "ja"),
    ],
)
def test_region_tags_use_the_language(tag: str, language: str) -> None:
    assert reply_text(ReplyKind.ASK_FORMAL_REQUEST, tag, order_id=ORDER_ID) == reply_text(
        ReplyKind.ASK_FORMAL_REQUEST, language, order_id=ORDER_ID
    )


def test_order_id_is_inserted_verbatim() -> None:
    odd = "{order_id} {0} %s"
    text = reply_text(ReplyKind.ASK_FORMAL_REQUEST, "en", order_id=odd)
    assert odd in text


def test_reply_kind_values_are_stable() -> None:
    assert ReplyKind.ASK_FORMAL_REQUEST.value == "ask_formal_request"
    assert ReplyKind.RETURN_INSTEAD.value == "return_instead"
