"""Buyer-message classifier: informal cancellation requests vs near misses, in 13 languages.

The sentences here are written for these tests (not taken from the labelled JSONL sets).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cancelguard.domain.buyer_messages import (
    SUPPORTED_LANGUAGES,
    MessageClassification,
    classify_message,
    detect_language,
    normalise,
)

DEV_SET = Path(__file__).resolve().parents[2] / "data" / "buyer_messages" / "dev.jsonl"

# (language, message): the buyer asks the seller to cancel, or not to ship, an order that has not arrived
REQUESTS = [
    ("en", "Hey, can you cancel order 113-2233445-6677889? Ordered by mistake."),
    ("en", "cancle my order pls"),
    ("en", "Kindly cancell this order"),
    ("en", "I need this order cancelled asap"),
    ("en", "Is it too late to cancel?"),
    ("en", "please dont ship, changed my mind"),
    ("en", "Stop the shipment, I no longer need it"),
    ("en", "Can this order be cancelled?"),
    ("en", "Please cancel this and I'll order the correct one."),
    ("en", "I'm not happy with the delay, please cancel."),
    ("en", "Hi, I placed this order by accident. Can you please not send it?"),
    ("en", "Hello,\n\nI would like to cancel my order #112-1111111-2222222.\n\nBest regards,\nJohn"),
    ("en", "CANCEL 🙏"),
    ("en", "If you can't ship by Monday, please cancel"),
    ("en", "Why is it taking so long\nPlease cancel it"),
    ("en", "I'd like to cancel 1 of the 2 items"),
    ("de", "Guten Tag, bitte stornieren Sie meine Bestellung, ich habe mich vertan."),
    ("de", "Stornierung bitte, Artikel doppelt bestellt."),
    ("de", "Ich moechte meine bestellung stornieren"),
    ("de", "Bitte die Bestellung nicht versenden, ich brauche sie nicht mehr."),
    ("de", "Kann die Bestellung noch storniert werden?"),
    ("de", "Ich möchte meine Bestellung widerrufen, sie wurde noch nicht versandt."),
    ("fr", "Bonjour, pouvez-vous annuler ma commande svp ?"),
    ("fr", "Merci d'annuler la commande, je n'en ai plus besoin."),
    ("fr", "Ne l'expédiez pas s'il vous plait, j'ai changé d'avis"),
    ("fr", "Je voudrais annulé ma commande"),
    ("it", "Potete cancellare il mio ordine? L'ho fatto per errore."),
    ("it", "Per favore non spedite l'ordine, non mi serve più."),
    ("it", "potete annulare l'ordine"),
    ("es", "Hola, quisiera cancelar mi pedido por favor."),
    ("es", "No lo envíen por favor, ya no lo necesito."),
    ("es", "Hola buenas, ya no quiero el pedido, cancélenlo"),
    ("pt", "Olá, quero cancelar o pedido, comprei errado."),
    ("pt", "Não enviem, por favor, não preciso mais."),
    ("pt", "Gostaria de solicitar o cancelamento da minha compra."),
    ("nl", "Kunt u de bestelling annuleren? Ik heb het verkeerde artikel besteld."),
    ("nl", "Niet verzenden a.u.b., ik heb het al ergens anders gekocht."),
    ("pl", "Chcę anulować zamówienie, zamówiłem przez pomyłkę."),
    ("pl", "anuluj zamowienie prosze"),
    ("pl", "Chciałabym zrezygnować z zamówienia"),
    ("sv", "Hej, kan ni avbryta min beställning?"),
    ("sv", "Jag vill avbeställa ordern, tack."),
    ("sv", "Snälla skicka inte paketet, jag har ångrat mig."),
    ("tr", "Merhaba, siparişimi iptal etmek istiyorum."),
    ("tr", "Siparisi iptal edebilir misiniz?"),
    ("tr", "Ürünü kargoya vermeyin lütfen."),
    ("ja", "申し訳ありませんが、キャンセルをお願いできますか。"),
    ("ja", "間違えて注文したので取り消してください。"),
    ("ja", "ｷｬﾝｾﾙお願いします"),
    ("ja", "注文取消希望"),  # kanji only, still Japanese
    ("zh", "不好意思，拍错了，能取消吗？"),
    ("zh", "请不要发货了。"),
    ("zh", "麻烦取消訂單"),
    ("ar", "مرحبا، أريد إلغاء طلبي من فضلك"),
    ("ar", "ممكن تلغون الطلب؟"),
    ("ar", "لا تشحنوا الطلب، لم أعد أريده"),
]

# (language, message, why it is not a request)
NEAR_MISSES = [
    ("en", "Please do not cancel, I still need the item.", "negation"),
    ("en", "I never asked to cancel this order!", "negation"),
    ("en", "Why did you cancel my order?", "seller cancelled"),
    ("en", "Has my order been cancelled?", "status question"),
    ("en", "I received a cancellation email but I didn't cancel anything.", "status"),
    ("en", "How do I cancel my Prime membership?", "other thing"),
    ("en", "Please cancel the return request, I've decided to keep it.", "other thing"),
    ("en", "Please don't send me any more messages", "other thing"),
    ("en", "If it isn't here by Friday I'll cancel.", "threat, not a request yet"),
    ("en", "Was the cancellation successful?", "status question"),
    ("en", "Can I get a refund? The item broke after one use.", "refund after delivery"),
    ("en", "Thanks, great seller!", "thanks"),
    ("en", "Can you cancel the gift wrap and ship as normal?", "other thing"),
    ("en", "Do I need to cancel the order to change the address?", "address change"),
    ("en", "Please hold the order until I'm back from vacation on the 12th", "not a cancel"),
    ("en", "My card was declined and the order got cancelled, can I reorder?", "status"),
    ("en", "I'm keeping the order, please ignore my earlier message about cancelling", "withdrawn"),
    ("de", "Bitte stornieren Sie die Bestellung nicht, ich warte gerne.", "negation"),
    ("de", "Warum wurde meine Bestellung storniert?", "seller cancelled"),
    ("de", "Wurde die Bestellung schon storniert?", "status question"),
    ("de", "Ich möchte den Newsletter abbestellen.", "other thing"),
    ("de", "Das Paket ist angekommen, aber der Artikel ist defekt.", "complaint"),
    ("fr", "N'annulez pas ma commande s'il vous plaît, je l'attends.", "negation"),
    ("fr", "Pourquoi avez-vous annulé ma commande ?", "seller cancelled"),
    ("fr", "J'ai reçu un mail d'annulation, c'est une erreur ?", "status"),
    ("it", "Per favore non annullate il mio ordine.", "negation"),
    ("it", "Il mio ordine è stato cancellato?", "status question"),
    ("it", "Vorrei disdire l'abbonamento Prime.", "other thing"),
    ("it", "Non ho mai chiesto l'annullamento!", "negation"),
    ("es", "Por favor no cancelen mi pedido, lo espero.", "negation"),
    ("es", "¿Por qué cancelaron mi pedido?", "seller cancelled"),
    ("es", "¿Cómo cancelo mi membresía Prime?", "other thing"),
    ("pt", "Não quero cancelar, só quero saber quando chega.", "negation"),
    ("pt", "Meu pedido foi cancelado?", "status question"),
    ("nl", "Ik wil de bestelling niet annuleren, wanneer wordt het geleverd?", "negation"),
    ("nl", "Hoe annuleer ik mijn Prime abonnement?", "other thing"),
    ("pl", "Dlaczego anulowaliście moje zamówienie?", "seller cancelled"),
    ("pl", "Jak anulować subskrypcję Prime?", "other thing"),
    ("sv", "Avbryt inte beställningen, jag vill ha den.", "negation"),
    ("sv", "Hur avbryter jag min prenumeration?", "other thing"),
    ("sv", "Jag har redan avbeställt via Amazon", "buyer cancelled already"),
    ("tr", "Siparişimi iptal etmeyin, bekliyorum.", "negation"),
    ("tr", "Siparişim neden iptal edildi?", "seller cancelled"),
    ("tr", "Prime üyeliğimi nasıl iptal ederim?", "other thing"),
    ("ja", "キャンセルはしないでください。", "negation"),
    ("ja", "なぜ注文がキャンセルされたのですか？", "seller cancelled"),
    ("ja", "プライム会員をキャンセルしたいです。", "other thing"),
    ("ja", "キャンセル料はかかりますか？", "asks about the fee"),
    ("zh", "请不要取消我的订单。", "negation"),
    ("zh", "订单已经取消了吗？", "status question"),
    ("zh", "怎么取消会员自动续费？", "other thing"),
    ("ar", "من فضلك لا تلغي طلبي", "negation"),
    ("ar", "لماذا تم إلغاء طلبي؟", "seller cancelled"),
    ("ar", "كيف ألغي اشتراك برايم؟", "other thing"),
]

# mixed-language messages: the greeting or sign-off is in one language, the body in another
MIXED = [
    ("de", True, "Hello, bitte die Bestellung stornieren. Danke!"),
    ("fr", False, "Hi, ne l'annulez surtout pas, merci"),
    ("en", True, "Hola, could you cancel my order please? Gracias"),
    ("ja", True, "Dear seller, 注文をキャンセルしたいです"),
    ("zh", False, "Hello, 为什么订单被取消了？"),
    ("en", False, "مرحبا, where is my parcel?"),
    ("tr", True, "Hi, lütfen siparişi iptal edin"),
]


@pytest.mark.parametrize(("language", "text"), REQUESTS)
def test_requests_are_found(language: str, text: str) -> None:
    verdict = classify_message(text)
    assert verdict.is_cancel_request, verdict.explanation
    assert verdict.language == language


@pytest.mark.parametrize(("language", "text", "why"), NEAR_MISSES)
def test_near_misses_are_not_requests(language: str, text: str, why: str) -> None:
    verdict = classify_message(text)
    assert not verdict.is_cancel_request, f"{why}: {verdict.explanation}"
    assert verdict.language == language


@pytest.mark.parametrize(("language", "expected", "text"), MIXED)
def test_mixed_language_messages(language: str, expected: bool, text: str) -> None:
    verdict = classify_message(text)
    assert (verdict.is_cancel_request, verdict.language) == (expected, language)


def test_every_supported_language_is_covered() -> None:
    assert {language for language, _ in REQUESTS} == set(SUPPORTED_LANGUAGES)
    assert {language for language, _, _ in NEAR_MISSES} == set(SUPPORTED_LANGUAGES)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Where is my parcel? It was due yesterday.", "en"),
        ("Wo bleibt mein Paket? Es sollte gestern kommen.", "de"),
        ("Où est mon colis ? Il devait arriver hier.", "fr"),
        ("Dov'è il mio pacco? Doveva arrivare ieri.", "it"),
        ("¿Dónde está mi paquete? Tenía que llegar ayer.", "es"),
        ("Cadê minha encomenda? Era para chegar ontem.", "pt"),
        ("Waar blijft mijn pakket? Het zou gisteren komen.", "nl"),
        ("Gdzie jest moja paczka? Miała dotrzeć wczoraj.", "pl"),
        ("Var är mitt paket? Det skulle komma igår.", "sv"),
        ("Kargom nerede? Dün gelmesi gerekiyordu.", "tr"),
        ("荷物はどこですか？昨日届くはずでした。", "ja"),
        ("我的包裹在哪里？昨天就应该到了。", "zh"),
        ("أين طردي؟ كان من المفترض أن يصل أمس.", "ar"),
        ("", "und"),
        ("   ", "und"),
        ("123-4567890-1234567", "und"),
        ("Где моя посылка?", "und"),  # Russian is not supported
        ("제 택배는 어디에 있나요?", "und"),  # nor Korean
    ],
)
def test_language_detection(text: str, language: str) -> None:
    assert detect_language(text) == language
    assert classify_message(text).language == language


def test_evidence_and_explanation_for_a_request() -> None:
    verdict = classify_message("Bitte stornieren Sie die Bestellung")
    assert verdict.is_cancel_request
    assert "de: 'stornieren'" in verdict.evidence
    assert verdict.explanation.endswith(".") and "stornieren" in verdict.explanation


def test_evidence_names_the_negation() -> None:
    verdict = classify_message("Bitte nicht stornieren!")
    assert not verdict.is_cancel_request
    assert any(e.startswith("negation: ") for e in verdict.evidence), verdict.evidence
    assert "negation" in verdict.explanation


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Please cancel my newsletter subscription", "cancels something else"),
        ("You cancelled my order, why?", "already cancelled or asking about it"),
        ("Should I cancel or will it arrive this week?", "not asking yet"),
        ("Waarom annuleren jullie steeds?", "asks why"),
    ],
)
def test_evidence_names_the_near_miss(text: str, label: str) -> None:
    verdict = classify_message(text)
    assert not verdict.is_cancel_request
    assert any(e.startswith(f"{label}: ") for e in verdict.evidence), verdict.evidence


def test_a_wish_phrased_with_a_participle_is_a_request() -> None:
    verdict = classify_message("I'd like this order cancelled, thanks")
    assert verdict.is_cancel_request
    assert any(e.startswith("asks to have it cancelled: ") for e in verdict.evidence)


def test_buyer_who_will_wait_is_not_a_request() -> None:
    verdict = classify_message("Cancel? No, I'll wait. Just ship it when you can.")
    assert not verdict.is_cancel_request
    assert any(e.startswith("wants the order: ") for e in verdict.evidence)


def test_plain_message_has_no_evidence() -> None:
    verdict = classify_message("When will my parcel arrive?")
    assert verdict == MessageClassification(False, "en", (), verdict.explanation)
    assert verdict.explanation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Hello \t WORLD  ", "hello world"),
        ("Hi,\r\n\r\n  please   cancel\n", "hi,\nplease cancel"),  # a line break ends a clause: kept once
        ("Bestellung STORNIEREN, Grüße", "bestellung stornieren, grusse"),
        ("annulée ça ñ ł ı İ", "annulee ca n l i i"),
        ("إلغاء أريد", "الغاء اريد"),
        ("ｷｬﾝｾﾙ　お願いします", "キャンセル お願いします"),  # half-width kana and ideographic space
        ("訂單", "订单"),
        ("ください", "ください"),  # kana voicing marks survive
    ],
)
def test_normalise(text: str, expected: str) -> None:
    assert normalise(text) == expected


def test_long_messages_stay_fast() -> None:
    started = time.perf_counter()
    for text in ("cancel " * 10_000, "キャンセル" * 10_000, "why cancel " * 5_000, "x" * 100_000):
        classify_message(text)
    assert time.perf_counter() - started < 5


def _dev_rows() -> list[dict]:
    with DEV_SET.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_dev_set_precision_and_recall() -> None:
    rows = _dev_rows()
    tp = fp = fn = 0
    for row in rows:
        got = classify_message(row["text"]).is_cancel_request
        tp += got and row["is_cancel_request"]
        fp += got and not row["is_cancel_request"]
        fn += not got and row["is_cancel_request"]
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert precision >= 0.97, f"precision {precision:.3f}"
    assert recall >= 0.92, f"recall {recall:.3f}"


def test_dev_set_language_detection() -> None:
    rows = _dev_rows()
    correct = sum(classify_message(row["text"]).language == row["language"] for row in rows)
    assert correct / len(rows) >= 0.95


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_never_raises_on_arbitrary_text(text: str) -> None:
    verdict = classify_message(text)
    assert isinstance(verdict.is_cancel_request, bool)
    assert verdict.language in (*SUPPORTED_LANGUAGES, "und")
    assert verdict.explanation
    assert detect_language(text) == verdict.language


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "cancel",
                "not",
                "don't",
                "stornieren",
                "nicht",
                "iptal",
                "etmeyin",
                "キャンセル",
                "しないで",
                "取消",
                "不要",
                "إلغاء",
                "لا",
                "why",
                "?",
                ",",
                " ",
                "order",
                "subscription",
                "was",
                "cancelled",
                "n'",
                "annulez",
                "pas",
            ]
        ),
        max_size=30,
    )
)
def test_never_raises_on_cancel_word_soup(words: list[str]) -> None:
    verdict = classify_message(" ".join(words))
    assert verdict.language in (*SUPPORTED_LANGUAGES, "und")
    assert verdict.explanation
