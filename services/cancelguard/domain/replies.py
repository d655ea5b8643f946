"""Ready replies to a buyer who asked to cancel by message, in the 13 languages cancelguard reads.

Two situations (domain §7, actions.py):
- ASK_FORMAL_REQUEST: the order can still be cancelled, but only a request made through Amazon
  (Your Account > Your Orders > Request cancellation) keeps the cancel out of the seller's Cancellation Rate.
  The reply asks for that request and promises to cancel once it arrives; it never offers to cancel on the
  strength of the message alone.
- RETURN_INSTEAD: the order is shipped or a label was bought, so it cannot be cancelled any more; the buyer
  can refuse the delivery or return the item for a refund (a refund does not count in the rate).

Menu labels follow Amazon's wording in each language where it is known (en, de, fr, es are quoted in Seller
Central help); the others are faithful translations of "Your Orders" and "Request cancellation".
"""

from __future__ import annotations

import enum


class ReplyKind(enum.Enum):
    ASK_FORMAL_REQUEST = "ask_formal_request"  # informal request: ask for Your Orders > Request cancellation
    RETURN_INSTEAD = "return_instead"  # shipped or labelled: cannot cancel; refuse delivery or return it


_ASK = ReplyKind.ASK_FORMAL_REQUEST
_RETURN = ReplyKind.RETURN_INSTEAD

# "{order_id}" is replaced by the Amazon order id; nothing else in a template is a placeholder.
_TEMPLATES: dict[ReplyKind, dict[str, str]] = {
    _ASK: {
        "en": (
            "Hello, thank you for your message about order {order_id}. To cancel it, please send the "
            "cancellation request through Amazon: go to Your Account > Your Orders, select this order and "
            'choose "Request cancellation". As soon as we receive your request, we will cancel the order. '
            "Kind regards"
        ),
        "de": (
            "Hallo, vielen Dank für Ihre Nachricht zur Bestellung {order_id}. Bitte beantragen Sie die "
            "Stornierung direkt über Amazon: Gehen Sie zu „Mein Konto“ > „Meine Bestellungen“, wählen Sie "
            "diese Bestellung aus und klicken Sie auf „Stornierung anfordern“. Sobald Ihre Anfrage bei uns "
            "eingeht, stornieren wir die Bestellung. Mit freundlichen Grüßen"
        ),
        "fr": (
            "Bonjour, merci pour votre message concernant la commande {order_id}. Pour l'annuler, merci d'en "
            "faire la demande directement sur Amazon : Votre compte > Vos commandes, sélectionnez cette "
            "commande puis cliquez sur « Demander l'annulation ». Nous annulerons la commande dès réception "
            "de votre demande. Cordialement"
        ),
        "it": (
            "Buongiorno, grazie per il suo messaggio relativo all'ordine {order_id}. Per annullarlo, la "
            "preghiamo di inviare la richiesta direttamente tramite Amazon: vada su Il mio account > I miei "
            "ordini, selezioni questo ordine e scelga «Richiedi l'annullamento». Non appena riceveremo la "
            "richiesta, annulleremo l'ordine. Cordiali saluti"
        ),
        "es": (
            "Hola, gracias por su mensaje sobre el pedido {order_id}. Para cancelarlo, le rogamos que "
            "solicite la cancelación directamente a través de Amazon: vaya a Mi cuenta > Mis pedidos, "
            "seleccione este pedido y elija «Solicitar cancelación». En cuanto recibamos su solicitud, "
            "cancelaremos el pedido. Un saludo"
        ),
        "nl": (
            "Hallo, bedankt voor uw bericht over bestelling {order_id}. Wilt u de annulering rechtstreeks "
            "via Amazon aanvragen? Ga naar Mijn account > Mijn bestellingen, selecteer deze bestelling en "
            "kies 'Annulering aanvragen'. Zodra we uw verzoek ontvangen, annuleren we de bestelling. "
            "Met vriendelijke groet"
        ),
        "pl": (
            "Dzień dobry, dziękujemy za wiadomość dotyczącą zamówienia {order_id}. Aby je anulować, złóż "
            "prośbę o anulowanie bezpośrednio w Amazon: przejdź do Twoje konto > Twoje zamówienia, wybierz "
            "to zamówienie i kliknij „Poproś o anulowanie”. Gdy tylko otrzymamy prośbę, anulujemy "
            "zamówienie. Pozdrawiamy"
        ),
        "sv": (
            "Hej, tack för ditt meddelande om beställning {order_id}. För att annullera den ber vi dig "
            "skicka en begäran via Amazon: gå till Ditt konto > Dina beställningar, välj den här "
            "beställningen och klicka på ”Begär annullering”. Så snart vi har fått din begäran annullerar "
            "vi beställningen. Vänliga hälsningar"
        ),
        "tr": (
            "Merhaba, {order_id} numaralı siparişinizle ilgili mesajınız için teşekkür ederiz. Siparişi "
            "iptal etmek için lütfen talebinizi doğrudan Amazon üzerinden iletin: Hesabım > Siparişlerim "
            'bölümünde bu siparişi seçin ve "İptal talep et" seçeneğine tıklayın. Talebiniz bize ulaşır '
            "ulaşmaz siparişi iptal edeceğiz. Saygılarımızla"
        ),
        "ja": (
            "お問い合わせいただきありがとうございます（注文番号：{order_id}）。ご注文のキャンセルをご希望の"
            "場合は、お手数ですがAmazonの「アカウントサービス」＞「注文履歴」から該当のご注文を選び、"
            "「キャンセルをリクエスト」からお手続きください。リクエストを確認次第、キャンセルいたします。"
            "よろしくお願いいたします。"
        ),
        "zh": (
            "您好，感谢您就订单 {order_id} 与我们联系。如需取消该订单，请通过亚马逊提交取消申请："
            "进入“我的账户”>“我的订单”，选择该订单，然后点击“申请取消”。我们收到申请后会立即为您取消订单。"
            "谢谢！"
        ),
        "ar": (
            "مرحبًا، شكرًا لرسالتك بخصوص الطلب {order_id}. لإلغاء الطلب، يُرجى إرسال طلب الإلغاء عبر أمازون: "
            'انتقل إلى حسابك > طلباتك، واختر هذا الطلب، ثم اضغط على "طلب الإلغاء". سنلغي الطلب فور '
            "استلام طلبك. مع أطيب التحيات"
        ),
        "pt": (
            "Olá, obrigado pela sua mensagem sobre o pedido {order_id}. Para cancelá-lo, pedimos que "
            "solicite o cancelamento diretamente pela Amazon: acesse Sua conta > Seus pedidos, selecione "
            'este pedido e clique em "Solicitar cancelamento". Assim que recebermos a sua solicitação, '
            "cancelaremos o pedido. Atenciosamente"
        ),
    },
    _RETURN: {
        "en": (
            "Hello, thank you for your message about order {order_id}. The order has already been shipped "
            "or is ready for shipping, so we can no longer cancel it. You can refuse the delivery, or return "
            "the item for a refund once it has arrived: go to Your Orders, select this order and choose "
            '"Return or replace items". Kind regards'
        ),
        "de": (
            "Hallo, vielen Dank für Ihre Nachricht zur Bestellung {order_id}. Die Bestellung wurde bereits "
            "versandt oder ist versandfertig, daher können wir sie leider nicht mehr stornieren. Sie können "
            "die Annahme der Sendung verweigern oder den Artikel nach Erhalt gegen Erstattung zurücksenden: "
            "Wählen Sie dazu unter „Meine Bestellungen“ diese Bestellung und „Artikel zurücksenden oder "
            "ersetzen“. Mit freundlichen Grüßen"
        ),
        "fr": (
            "Bonjour, merci pour votre message concernant la commande {order_id}. Cette commande a déjà été "
            "expédiée ou est prête à l'être : nous ne pouvons malheureusement plus l'annuler. Vous pouvez "
            "refuser le colis à la livraison, ou retourner l'article après réception pour être remboursé : "
            "dans Vos commandes, sélectionnez cette commande puis « Retourner ou remplacer des articles ». "
            "Cordialement"
        ),
        "it": (
            "Buongiorno, grazie per il suo messaggio relativo all'ordine {order_id}. L'ordine è già stato "
            "spedito o è pronto per la spedizione, quindi purtroppo non possiamo più annullarlo. Può "
            "rifiutare il pacco alla consegna oppure, dopo averlo ricevuto, restituire l'articolo e ottenere "
            "il rimborso: in I miei ordini selezioni questo ordine e scelga «Restituisci o sostituisci "
            "articoli». Cordiali saluti"
        ),
        "es": (
            "Hola, gracias por su mensaje sobre el pedido {order_id}. El pedido ya se ha enviado o está "
            "listo para enviarse, por lo que lamentablemente ya no podemos cancelarlo. Puede rechazar el "
            "paquete en la entrega o, una vez recibido, devolver el artículo para obtener el reembolso: en "
            "Mis pedidos, seleccione este pedido y elija «Devolver o sustituir productos». Un saludo"
        ),
        "nl": (
            "Hallo, bedankt voor uw bericht over bestelling {order_id}. De bestelling is al verzonden of "
            "staat klaar voor verzending, dus we kunnen haar helaas niet meer annuleren. U kunt het pakket "
            "bij aflevering weigeren, of het artikel na ontvangst retourneren en uw geld terugkrijgen: ga "
            "naar Mijn bestellingen, selecteer deze bestelling en kies 'Artikelen retourneren of vervangen'. "
            "Met vriendelijke groet"
        ),
        "pl": (
            "Dzień dobry, dziękujemy za wiadomość dotyczącą zamówienia {order_id}. Zamówienie zostało już "
            "wysłane lub jest gotowe do wysyłki, więc niestety nie możemy go już anulować. Możesz odmówić "
            "przyjęcia przesyłki albo po jej otrzymaniu zwrócić produkt i otrzymać zwrot pieniędzy: w Twoje "
            "zamówienia wybierz to zamówienie i kliknij „Zwróć lub wymień produkty”. Pozdrawiamy"
        ),
        "sv": (
            "Hej, tack för ditt meddelande om beställning {order_id}. Beställningen har redan skickats "
            "eller är klar för leverans, så tyvärr kan vi inte längre annullera den. Du kan vägra ta emot "
            "försändelsen, eller returnera varan mot återbetalning när du har fått den: gå till Dina "
            "beställningar, välj den här beställningen och klicka på ”Returnera eller byt ut varor”. "
            "Vänliga hälsningar"
        ),
        "tr": (
            "Merhaba, {order_id} numaralı siparişinizle ilgili mesajınız için teşekkür ederiz. Siparişiniz "
            "kargoya verildi veya gönderime hazır olduğu için maalesef artık iptal edemiyoruz. Teslimat "
            "sırasında paketi teslim almayı reddedebilir ya da ürünü teslim aldıktan sonra iade ederek "
            'ücretinizi geri alabilirsiniz: Siparişlerim bölümünde bu siparişi seçin ve "Ürünleri iade et '
            'veya değiştir" seçeneğine tıklayın. Saygılarımızla'
        ),
        "ja": (
            "お問い合わせいただきありがとうございます（注文番号：{order_id}）。申し訳ございませんが、"
            "ご注文の商品はすでに発送済み、または発送準備が完了しているため、キャンセルを承ることができません。"
            "お届けの際に受け取りを辞退していただくか、商品到着後に「注文履歴」から該当のご注文を選び、"
            "「商品の返品・交換」から返品のお手続きをしていただければ返金いたします。よろしくお願いいたします。"
        ),
        "zh": (
            "您好，感谢您就订单 {order_id} 与我们联系。很抱歉，该订单已经发货或已准备发货，我们无法再取消。"
            "您可以在送达时拒收包裹，或在收到商品后退货并获得退款：进入“我的订单”，选择该订单，"
            "然后点击“退货或换货”。谢谢！"
        ),
        "ar": (
            "مرحبًا، شكرًا لرسالتك بخصوص الطلب {order_id}. لقد تم شحن الطلب أو أصبح جاهزًا للشحن، لذلك "
            "لم يعد بإمكاننا إلغاؤه للأسف. يمكنك رفض استلام الشحنة عند التوصيل، أو إرجاع المنتج بعد "
            'استلامه لاسترداد المبلغ: انتقل إلى طلباتك، واختر هذا الطلب، ثم اضغط على "إرجاع المنتجات أو '
            'استبدالها". مع أطيب التحيات'
        ),
        "pt": (
            "Olá, obrigado pela sua mensagem sobre o pedido {order_id}. O pedido já foi enviado ou está "
            "pronto para envio, por isso infelizmente não podemos mais cancelá-lo. Você pode recusar a "
            "entrega ou, depois de recebê-lo, devolver o produto para obter o reembolso: acesse Seus "
            'pedidos, selecione este pedido e clique em "Devolver ou trocar produtos". Atenciosamente'
        ),
    },
}

FALLBACK_LANGUAGE = "en"


def reply_text(kind: ReplyKind, language: str, *, order_id: str) -> str:
    """The reply for `kind` in `language` (ISO 639-1; "de-DE" or "pt_BR" also work), naming `order_id`.

    An unknown or empty language gets the English text."""
    code = language.strip().replace("_", "-").split("-")[0].lower()
    templates = _TEMPLATES[kind]
    template = templates.get(code, templates[FALLBACK_LANGUAGE])
    # replace, not format: an order id is data and must not be read as a format string
    return template.replace("{order_id}", order_id)
