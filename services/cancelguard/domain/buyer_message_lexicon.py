"""Word lists and phrase patterns for `buyer_messages` (data only, no logic beyond filling templates).

Every pattern is written against NORMALISED text (see `buyer_messages.normalise`): casefolded, accents
stripped from Latin letters (ä->a, ç->c, ł->l, ı->i, ß->ss), Arabic hamza/alef forms unified (أ إ آ -> ا,
ى -> ي, ة -> ه, diacritics dropped), common traditional Chinese characters mapped to simplified, whitespace
collapsed. Japanese kana keep their voicing marks.

Rule kinds, per language:
- request:  a mention of cancelling the order, or an explicit "do not ship it" / "stop the shipment".
- negation: the buyer does NOT want to cancel ("don't cancel", "bitte nicht stornieren"). Covers the trigger.
- other:    cancelling something else (subscription, Prime, newsletter, a return). Covers the trigger.
- past:     the cancellation already happened or is being asked about ("was it cancelled?", "you
            cancelled my order", "I got a cancellation email"). Covers the trigger.
- wish:     a request phrased with a participle ("I'd like it cancelled", "kann sie storniert werden?");
            it lifts a `past` match on the same words.
- doubt:    thinking about it, or a threat, not a request yet ("should I cancel?", "if ..., I'll cancel").
- keep:     the buyer wants the order after all ("I'll wait", "just ship it"); vetoes the whole message.
A request mention counts unless a negation/other/past/doubt match overlaps it, or its clause asks "why".

Placeholders: `<T>` is the language's trigger fragment and `<P>` its participle fragment; they are filled
in by `_fill` below, so each pattern reads like the phrase it matches.
"""

from __future__ import annotations

RuleSet = dict[str, tuple[str, ...]]


def _words(text: str) -> frozenset[str]:
    """A word list written as whitespace-separated text."""
    return frozenset(text.split())


def _fill(rules: RuleSet, **parts: str) -> RuleSet:
    """Replace <NAME> placeholders with their (non-capturing) regex fragments."""
    filled: RuleSet = {}
    for kind, patterns in rules.items():
        out = []
        for pattern in patterns:
            for name, fragment in parts.items():
                pattern = pattern.replace(f"<{name}>", f"(?:{fragment})")
            out.append(pattern)
        filled[kind] = tuple(out)
    return filled


# --- English ------------------------------------------------------------------------------------------
# cancel, cancle, cancell, cansel, ... with -s/-ing/-ation/-ed endings (typos are common in short messages)
_EN_STEM = r"canc(?:ell?|le|l|al|il)|cansell?|cacnel"
_EN_T = rf"\b(?:{_EN_STEM})(?:s|ing|ling|ation|lation|ations|lations|ed|led|d)?\b"
_EN_P = rf"\b(?:{_EN_STEM})(?:ed|led|d)\b"
_EN_NEG_FILL = (
    r"want|wanna|wish|need|needs|like|intend|plan|mean|meant|ask|asked|request|requested|going|gonna|have|"
    r"has|had|to|you|u|ever|at all|them|anyone|even|really|think|try|tried|intention|of|"
    r"any|reason|the seller|seller|amazon|for|asking|trying|be|being|wanting|ask you|want you|the order|"
    r"my order|this order"
)

EN: RuleSet = _fill(
    {
        "request": (
            r"<T>",
            r"\bvoid\s+(?:this|the|my|that)\s+(?:order|purchase|transaction)\b",
            # "please don't send it" is a request; "don't send me emails" / "don't ship it to X" are not
            r"\b(?:don'?t|do not|dont)\s+(?:ship|send|dispatch|post|deliver)\b(?!\s+(?:me|us|to|yet|until|till|"
            r"before|an?|any|emails?|messages?|newsletters?|spam|invoices?|the invoice|the wrong|wrong|"
            r"it (?:yet|until|till|to|before)|them (?:yet|until|to))\b)",
            r"\b(?:please|pls|plz|kindly|can you|could you)\s+(?:please\s+)?(?:do\s+)?not\s+"
            r"(?:ship|send|dispatch|post|deliver)\b(?!\s+(?:me|us|to|yet|until|till|before|an?|any|emails?|messages?|newsletters?|spam|"
            r"invoices?)\b)",
            r"\b(?:hold|stop|halt|block|intercept)\s+(?:the\s+|my\s+|this\s+|that\s+)?(?:shipment|shipping|"
            r"delivery|dispatch|package|parcel|order)\b(?!\s+(?:to|at|until|till|and send|and ship)\b)",
            r"\bcall\s+off\s+(?:the|my|this)\s+(?:order|purchase)\b",
            r"\bwithdraw\s+(?:from\s+)?(?:the|my|this)\s+(?:order|purchase)\b",
            r"\bdon'?t\s+want\s+(?:the|this|my)\s+order\s+any\s?more\b",
        ),
        "negation": (
            rf"\b(?:don'?t|do not|dont|doesn'?t|does not|didn'?t|did not|never|not|no|won'?t|will not|wouldn'?t|"
            rf"would not|without|nobody|no one)\s+(?:(?:{_EN_NEG_FILL})\s+){{0,4}}<T>",
        ),
        "other": (
            r"<T>\s+(?:(?:my|the|your|our|this|that|a|an|me|of|from|for|to|amazon|prime|auto|automatic|"
            r"monthly|yearly|annual|free|kindle|audible|music|video|unlimited|email|e-mail|newsletter|another|"
            r"other)\s+){0,3}(?:(?:\w+\s+)?(?:subscriptions?|membership|memberships|newsletters?|mailing list|"
            r"renewal|auto-?renew\w*|trial|warranty|insurance|protection plan|contract|direct debit)|"
            r"prime(?!\s+(?:order|delivery|shipping))|audible|kindle unlimited|account|returns?|return request|"
            r"refund request|subscribe (?:&|and) save|plan|appointment|booking|reservation|credit card|card|"
            r"payment method|emails?|notifications?|alerts?|services?|gift (?:wrap\w*|message|note|receipt))\b",
            r"\b(?:subscription|membership|newsletter|prime|audible|return|renewal|trial)\s+<T>",
        ),
        "past": (
            r"<P>",
            r"\b(?:did|have|has|had)\s+(?:you|u|they|amazon|the seller|someone|somebody|anyone|it|i)\s+"
            r"(?:just\s+|already\s+|really\s+)?<T>",
            r"\b(?:got|received|receive|get|saw|see)\s+(?:a|an|the|this|that|your)\s+<T>",
            r"<T>\s+(?:email|e-mail|mail|notice|notification|confirmation|message|receipt)\b",
            r"\bthanks?(?:\s+you)?\s+(?:so much\s+|very much\s+|a lot\s+)?for\s+(?:the\s+|your\s+)?<T>",
            r"\b(?:was|is|has|did)\s+(?:the|my|your)\s+<T>\s+(?:\w+\s+)?(?:successful|processed|confirmed|complete|"
            r"completed|done|through|approved|accepted|work|go through)\b",
            r"<T>\s+(?:was|has been|is|went|got)\s+(?:confirmed|processed|successful|through|done|completed?|"
            r"approved|rejected|denied|declined)\b",
        ),
        "wish": (
            r"\b(?:like|want|wanted|need|needs|wish|please|pls|plz|kindly|get|have|getting)\s+(?:it|this|that|"
            r"them|(?:my|the|this|that)\s+(?:\w+\s+)?(?:order|purchase|item|items|one))\s+(?:to be\s+)?<P>",
            r"\b(?:can|could|may|will|would|should|must|please)\s+(?:it|this|that|they|the order|my order|"
            r"this order|the purchase|the item|the items|order)\s+(?:\w+\s+)?be\s+<P>",
            r"\b(?:to|please|pls)\s+be\s+<P>",
            r"\b(?:make sure|ensure)\s+(?:it|the order|my order|this order)\s+(?:is|gets|get)\s+<P>",
        ),
        "doubt": (
            r"\b(?:should|shall)\s+i\s+(?:just\s+)?<T>",
            r"<T>\s+(?:policy|policies|fee|fees|terms|charge|charges)\b",
            r"\b(?:do|would|will)\s+i\s+(?:need|have)\s+to\s+<T>",
            r"\b(?:thinking|think|thought|considering|consider|wondering)\s+(?:about\s+|of\s+|whether\s+to\s+|"
            r"if\s+i\s+should\s+)?<T>",
            r"\b(?:might|may)\s+(?:have\s+to\s+|need\s+to\s+|want\s+to\s+)?<T>",
            r"\bif\b[^.?!]{0,60}\b(?:i'?ll|i will|i'?m going to|i am going to|will)\s+(?:have to\s+)?<T>",
            r"\b(?:otherwise|or else|or)\s+(?:i'?ll|i will|i'?m going to|i am going to)\s+(?:have to\s+)?<T>",
        ),
        "keep": (
            r"\b(?:i'?ll|i will|i can|i'?m happy to|happy to|i don'?t mind|i'?d rather|i am happy to|"
            r"i'?m willing to|willing to|prefer to)\s+wait\b"
            r"(?!\s+for\s+(?:your|a|the|my)\s+(?:reply|answer|response|confirmation|refund|money))",
            r"\bjust\s+(?:ship|send)\s+it\b",
            r"\b(?:still|really)\s+want\s+(?:it|the order|my order|this|the item)\b(?!\s+(?:to be\s+)?canc)",
            r"\bkeep\s+(?:my|the)\s+order\b",
            r"\b(?:i'?m|i am|we'?re|we are|i'?ll be|i will be)\s+keeping\s+"
            r"(?:it|the order|my order|the item|them)\b",
            # a buyer taking back an earlier request
            r"\b(?:ignore|disregard|forget)\s+my\s+(?:earlier|previous|last|other|first)\s+(?:message|email|request)",
        ),
    },
    T=_EN_T,
    P=_EN_P,
)

# --- German ---------------------------------------------------------------------------------------------
_DE_T = (
    r"\b(?:storn\w*|stonier\w*|stroni\w*|storier\w*|gecancel(?:t|led|ed)|cancel(?:n|e|t)|annullier\w*|"
    r"abbestell\w*|zurucktreten|zurucktrete|rucktritt)\b"
)
_DE_VERB = r"\b(?:stornier\w*|storniere|annullier\w*|canceln|abbestellen)\b"
_DE_P = r"\b(?:storniert|gecancelt|gecancelled|annulliert|abbestellt)\b"

DE: RuleSet = _fill(
    {
        "request": (
            r"<T>",
            r"\bwiderrufe?n?\s+(?:hiermit\s+)?(?:meine|die|den|meinen|diese|diesen)\s+(?:bestellung|auftrag|kauf|"
            r"kaufvertrag)\b",
            r"\bich\s+widerrufe\b",
            r"\b(?:bestellung|auftrag|kauf|kaufvertrag)\s+(?:\w+\s+)?widerruf(?:en|e)\b",
            r"\b(?:vom|von dem|von meinem|von der|von meiner)\s+(?:kauf|kaufvertrag|vertrag|auftrag|"
            r"bestellung)\s+(?:\w+\s+)?zuruck\b",
            # "bitte nicht (mehr) verschicken" asks to stop the order
            r"\bnicht\s+(?:mehr\s+)?(?:versenden|verschicken|senden|schicken|liefern|ausliefern|rausschicken|"
            r"losschicken|abschicken|zustellen)\b",
            r"\b(?:versenden|verschicken|schicken|senden|liefern)\s+sie\s+(?:\w+\s+){0,3}?nicht\b",
            r"\b(?:versand|lieferung|sendung|auslieferung|bestellung|auftrag)\s+(?:bitte\s+|sofort\s+)?"
            r"(?:stoppen|anhalten|aufhalten|abbrechen|zuruckziehen|zuruckhalten)\b",
            r"\b(?:stoppen|halten)\s+sie\s+(?:bitte\s+)?(?:den|die|meine|meinen)\s+(?:versand|lieferung|sendung|"
            r"bestellung|auftrag)\b",
            r"\bziehe\s+(?:\w+\s+){0,3}(?:bestellung|auftrag)\s+zuruck\b",
        ),
        "negation": (
            r"\b(?:nicht|kein|keine|keinen|keiner|nie|niemals)\s+(?:(?:mehr|die|den|das|meine|meinen|bestellung|"
            r"auftrag|ware|es|sie|gleich|sofort|etwa|wirklich|um|eine|zu|extra|unbedingt)\s+){0,3}<T>",
            r"<V>\s+(?:(?:sie|bitte|die|den|das|meine|meinen|bestellung|auftrag|es|ihn|jetzt|doch|ich)\s+){0,3}"
            r"nicht\b",
        ),
        "other": (
            r"\b(?:newsletter\w*|abo|abos|abonnement\w*|mitgliedschaft\w*|prime\w*|e-?mails?|werbung|ruckgabe\w*|"
            r"rucksendung\w*|retoure\w*|probeabo\w*|sparabo\w*|spar-abo\w*|kundenkonto|konto|account|"
            r"benachrichtigung\w*)\s+(?:\w+\s+){0,2}<T>",
            r"<T>\s+(?:(?:des|der|den|die|das|meines|meiner|meinen|mein|meine|vom|von|ihres|ihren|ihrer)\s+){0,2}"
            r"(?:\w+\s+)?(?:newsletter\w*|abo|abos|abonnement\w*|mitgliedschaft\w*|prime\w*|ruckgabe\w*|"
            r"rucksendung\w*|retoure\w*|probeabo\w*|sparabo\w*)\b",
        ),
        "past": (
            r"<P>(?!\s+(?:haben|werden|bekommen|lassen)\b)",
            r"\bstorn\w*(?:mail|bestatigung|benachrichtigung|nachricht|email|info)\b",
            r"<T>\s+(?:hat|ist)\s+(?:\w+\s+)?(?:geklappt|funktioniert|erfolgt|durch|bestatigt|durchgegangen)\b",
            r"<T>\s+(?:\w+\s+){0,2}(?:bekommen|erhalten)\b",
            r"\bdanke\s+(?:\w+\s+){0,2}(?:fur|fuer)\s+(?:die\s+)?<T>",
        ),
        "wish": (
            r"\b(?:hatte|haette|mochte|moechte|will|wollte|wuerde|bitte|gerne|gern)\b(?:\s+\w+){0,4}\s+"
            r"<P>(?:\s+(?:haben|werden|bekommen|lassen))?(?!\s+(?:worden|wurde|ist)\b)",
            r"\b(?:kann|konnte|konnen|koennen|kannst|konnten|soll|sollte|muss|bitte)\b(?:\s+\w+){0,5}\s+<P>\s+"
            r"werden\b",
            r"<P>\s+lassen\b",
        ),
        "doubt": (
            r"\bstorn\w*(?:gebuhr|kosten)\w*",
            r"\bsoll(?:te)?\s+ich\s+(?:\w+\s+){0,3}?<T>",
            r"\buberleg\w*\s+(?:\w+\s+){0,4}?<T>",
            r"\bsonst\s+(?:\w+\s+){0,3}?<T>",
        ),
        "keep": (
            r"\b(?:warte|warten)\s+(?:gerne|gern|lieber|dann\s+eben)\b",
            r"\b(?:kann|werde)\s+(?:gerne\s+|gern\s+|ruhig\s+|auch\s+)?warten\b",
            r"\bwarte\s+ich\s+gerne?\b",
        ),
    },
    T=_DE_T,
    V=_DE_VERB,
    P=_DE_P,
)

# --- French ---------------------------------------------------------------------------------------------
_FR_T = r"\ban+ul+(?:er|ez|e|es|ee|ees|ation|ations|ons|ent|erai|erais|erait|eriez|iez|ions)\b"
_FR_P = r"\ban+ul+(?:e|ee|es|ees)\b"
_FR_AUX = r"avez|avons|ai|a|as|ont|est|sont|ete|etait|etaient|fut|sera|suis|avoir|etes"

FR: RuleSet = _fill(
    {
        "request": (
            r"<T>",
            r"\b(?:stopper|arreter|arretez|stoppez|bloquer|bloquez|suspendre|suspendez|interrompre|interrompez)"
            r"\s+(?:l'\s*|la\s+|le\s+|ma\s+|mon\s+|cette\s+|cet\s+)(?:envoi|expedition|livraison|commande|colis)\b",
            r"\bne\s+(?:l'\s*|la\s+|le\s+|les\s+|me\s+l'\s*|me\s+la\s+|me\s+le\s+)?(?:envoyez|expediez|livrez|"
            r"envoyer|expedier|livrer|postez)\s+pas\b",
            r"\bn'\s*(?:envoyez|expediez)\s+pas\b",
            r"\bne\s+pas\s+(?:l'\s*|la\s+|le\s+|les\s+|me\s+l'\s*)?(?:envoyer|expedier|livrer)\b",
        ),
        "negation": (
            r"\b(?:n'|ne\s+)\s*(?:l'|la\s+|le\s+|les\s+|me\s+|m')?\s*<T>\s+(?:pas|jamais|surtout pas)\b",
            r"\b(?:pas|jamais|aucune?|sans|ni)\b\s*(?:(?:besoin|de|d'|demande|demander|voulu|vouloir|l'intention|"
            r"intention|envie|question|la|une|d'une|pour|l'|que|vous|faut|necessaire|il)\s*){0,3}<T>",
        ),
        "other": (
            r"<T>\s*(?:(?:mon|ma|mes|le|la|les|l'|votre|vos|d'|de|du|des|un|une|cet|cette|amazon|prime)\s*){0,3}"
            r"(?:abonnement\w*|abo|inscription|newsletter|adhesion|souscription|retour|essai|"
            r"prime(?!\s+commande)|renouvellement|compte)\b",
            r"\b(?:abonnement|newsletter|retour|adhesion|inscription)\s+(?:\w+\s+)?<T>",
        ),
        "past": (
            rf"\b(?:{_FR_AUX})\s+(?:(?:bien|deja|ete|vous|me|m'|l'|la|tout|pas|ete)\s*){{0,2}}<P>",
            r"\ban+ul+(?:ee|ees)\b",
            r"\b(?:mail|e-mail|email|message|confirmation|notification|avis)\s+(?:d'|de\s+)\s*<T>",
            r"\bmerci\s+(?:pour|de)\s+l'\s*an+ul+ation\b",
            r"<T>\s+(?:a\s+(?:bien\s+)?ete|est)\s+(?:confirmee|effectuee|prise en compte|validee|acceptee|"
            r"refusee)\b",
        ),
        "wish": (r"\b(?:soit|etre|soient|sois)\s+(?:\w+\s+)?<P>",),
        "doubt": (
            r"\bfrais\s+d'\s*<T>",
            r"\b(?:dois|devrais|faut)-?\s*(?:je|il)\s+<T>",
            r"\bsinon\s+(?:\w+\s+){0,3}?<T>",
        ),
        "keep": (
            r"\bj'?\s*attendrai\b",
            r"\bje\s+(?:peux|vais|prefere)\s+attendre\b",
            r"\bj'\s*attends\s+(?:volontiers|avec plaisir|sans probleme)\b",
        ),
    },
    T=_FR_T,
    P=_FR_P,
)

# --- Italian --------------------------------------------------------------------------------------------
_IT_T = (
    r"\b(?:an+ul+(?:are|ate|a|ami|atemi|atelo|atela|ato|ata|ati|amento|amenti|arlo|arla|armi|erei|eremmo|"
    r"iamo|o|ino|ando)|cancell(?:are|ate|a|ami|atemi|atelo|atela|ato|ata|ati|azione|azioni|arlo|arla|erei|"
    r"iamo|o|ino)|disd(?:ire|ico|etta|ite|irlo|ica))\b"
)
_IT_P = r"\b(?:an+ul+|cancell)(?:ato|ata|ati|ate)\b"

IT: RuleSet = _fill(
    {
        "request": (
            r"<T>",
            r"\brevoc(?:are|ate|o|a)\s+(?:l'\s*|il\s+|questo\s+)?(?:ordine|acquisto)\b",
            r"\bnon\s+(?:me\s+lo\s+|me\s+la\s+|lo\s+|la\s+|li\s+|mi\s+|ce\s+lo\s+)?(?:spedite|spedire|spedisca|"
            r"spediscano|spedirlo|spedirla|spedirmelo|inviate|inviare|inviatelo|inviarlo|mandate|mandare|mandarlo|"
            r"mandatelo|consegnate)\b",
            r"\b(?:bloccare|bloccate|fermare|fermate|sospendere|sospendete|interrompere|interrompete|stoppare)\s+"
            r"(?:la\s+|l'\s*|il\s+|lo\s+|mio\s+|mia\s+)?(?:spedizione|ordine|invio|consegna|pacco)\b",
        ),
        "negation": (
            r"\bnon\s+(?:(?:voglio|vogliamo|desidero|ho|abbiamo|intendo|serve|e|c'e|bisogno|di|mi|lo|la|me|"
            r"ancora|mai|chiesto|richiesto|volevo|necessario|occorre|devo|dovete|si|ve|vi|l')\s*){0,4}<T>",
            r"\b(?:nessun\w*|senza)\s+<T>",
        ),
        "other": (
            r"<T>\s*(?:(?:il|lo|la|l'|mio|mia|i|gli|le|dell'|della|del|di|un|una|amazon|prime)\s*){0,3}"
            r"(?:abbonament\w*|iscrizione|newsletter|reso|prova|rinnovo|account|prime(?!\s+ordine))\b",
            r"\b(?:abbonament\w*|newsletter|reso|iscrizione)\s+(?:\S+\s+)?<T>",
        ),
        "past": (
            r"\b(?:sono|stato|stata|stati|state|ha|hanno|avete|ho|abbiamo|hai|gia|viene|venuto|venuta|risulta|"
            r"risultava)\s+(?:(?:stato|stata|stati|state|gia|mi|me|lo|la|l'|io|voi|tutto)\s*){0,2}<P>",
            r"\b(?:an+ul+|cancell)(?:ato|ata|ati)\b",
            r"\b(?:mail|email|e-mail|conferma|notifica|messaggio)\s+(?:di\s+|dell'\s*|della\s+)<T>",
        ),
        "wish": (r"\b(?:essere|sia|fosse|venga|vorrei|voglio)\s+(?:\S+\s+){0,2}?<P>",),
        "doubt": (
            r"\b(?:dovrei|devo)\s+<T>",
            r"\baltrimenti\s+(?:\w+\s+){0,2}?<T>",
        ),
        "keep": (
            r"\baspetto\s+(?:volentieri|tranquillamente|senza problemi)\b",
            r"\bposso\s+aspettare\b",
            r"\baspettero\b",
        ),
    },
    T=_IT_T,
    P=_IT_P,
)

# --- Spanish --------------------------------------------------------------------------------------------
_ES_T = (
    r"\b(?:cancel(?:ar|en|e|a|o|as|amos|ado|ada|ados|adas|aron|acion|aciones|arlo|arla|arme|armelo|armela|"
    r"ame|amelo|enlo|enla|enmelo|enmela|elo|ela|alo|ala|ando)|anul(?:ar|en|e|a|o|ado|ada|aron|acion|arlo|"
    r"arla|enlo|enla|enmelo|ame|amelo))\b"
)
_ES_P = r"\b(?:cancel|anul)(?:ado|ada|ados|adas|aron)\b"

ES: RuleSet = _fill(
    {
        "request": (
            r"<T>",
            r"\bno\s+(?:me\s+|nos\s+|se\s+)?(?:lo\s+|la\s+|los\s+|las\s+)?(?:envien|envie|envies|mande|manden|"
            r"mandes|despachen|despache|remitan)\b",
            r"\b(?:detener|detengan|deten|paren|parar|frenar|frenen|retener|retengan)\s+(?:el\s+|mi\s+|la\s+)?"
            r"(?:envio|pedido|despacho|paquete|entrega)\b",
            r"\bdesist\w*\s+(?:de\s+la\s+|de\s+mi\s+|del\s+|de\s+)(?:compra|pedido|orden)\b",
        ),
        "negation": (
            r"(?<!ya )\bno\s+(?:(?:quiero|queremos|deseo|necesito|me|lo|la|mi|el|pedido|he|hace|hay|falta|es|"
            r"necesario|pedi|solicite|voy|a|tengo|intencion|de|les|le|se|hagan|vayan|por favor|porfavor|tienen|"
            r"que|para)\s+){0,3}<T>",
            r"\b(?:sin|ningun\w*)\s+<T>",
        ),
        "other": (
            r"<T>\s+(?:(?:mi|la|el|los|las|su|de|del|un|una|amazon|prime)\s+){0,3}(?:suscripcion\w*|"
            r"subscripcion\w*|membresia|prime(?!\s+pedido)|newsletter|boletin|devolucion|prueba|cuenta|music|"
            r"renovacion|plan)\b",
        ),
        "past": (
            r"<P>",
            r"\bse\s+(?:cancelo|anulo)\b",
            r"\b(?:ya|yo)\s+(?:lo\s+|la\s+)?(?:cancele|cancelo|anule|anulo)\b",
            r"\b(?:correo|email|mail|mensaje|confirmacion|aviso|notificacion)\s+de\s+<T>",
            r"\bgracias\s+por\s+(?:la\s+)?<T>",
        ),
        "wish": (
            r"\b(?:sea|ser|este|quede|queden|sean|quiero|quisiera)\s+(?:\S+\s+){0,2}?(?:cancel|anul)"
            r"(?:ado|ada|ados|adas)\b",
        ),
        "doubt": (
            r"\b(?:deberia|debo)\s+<T>",
            r"\bsi\s+no\b[^.?!]{0,60}\b(?:cancelo|cancelare|anulo|anulare)\b",
        ),
        "keep": (
            r"\b(?:puedo|podemos)\s+esperar\b",
            r"\besperare\b",
            r"\bespero\s+(?:con gusto|sin problema|tranquil[oa])\b",
        ),
    },
    T=_ES_T,
    P=_ES_P,
)

# --- Portuguese -----------------------------------------------------------------------------------------
_PT_T = (
    r"\b(?:cancel(?:ar|em|e|a|o|amento|amentos|arem|ado|ada|ados|adas|aram|ei|ou|ando)(?:-(?:lo|la|los|las|"
    r"me))?|anul(?:ar|em|e|a|ado|ada|aram|acao|ei|ou))\b"
)
_PT_P = r"\b(?:cancel|anul)(?:ado|ada|ados|adas|aram|ei|ou)\b"

PT: RuleSet = _fill(
    {
        "request": (
            r"<T>",
            r"\bnao\s+(?:me\s+)?(?:o\s+|a\s+|os\s+|as\s+)?(?:enviem|envie|mandem|mande|despachem|despache|postem|"
            r"entreguem|expecam|expeca)\b",
            r"\b(?:parem|parar|suspendam|suspender|segurem|segurar|interrompam|interromper|bloqueiem|bloquear|"
            r"barrar|barrem)\s+(?:o\s+|a\s+|meu\s+|minha\s+)?(?:envio|encomenda|pedido|entrega|despacho|remessa)\b",
            r"\bdesist\w*\s+(?:d[ao]\s+|de\s+|dessa\s+|desta\s+|do\s+meu\s+|da\s+minha\s+)(?:compra|encomenda|"
            r"pedido)\b",
        ),
        "negation": (
            r"(?<!ja )\bnao\s+(?:(?:quero|queremos|desejo|preciso|precisa|precisam|e|me|o|a|meu|minha|pedido|"
            r"pedi|solicitei|vou|tenho|intencao|de|necessario|facam|pretendo|quis|por favor|para|que|"
            r"pra)\s+){0,3}<T>",
            r"\b(?:sem|nenhum\w*)\s+<T>",
        ),
        "other": (
            r"<T>\s+(?:(?:a|o|minha|meu|da|do|de|uma|um|amazon|prime)\s+){0,3}(?:assinatura|subscricao|"
            r"inscricao|adesao|prime(?!\s+pedido)|newsletter|devolucao|teste|conta|plano|mensalidade)\b",
        ),
        "past": (
            r"<P>",
            r"\b(?:email|e-mail|mensagem|confirmacao|aviso|notificacao)\s+de\s+<T>",
            r"\bobrigad[oa]\s+por\s+(?:o\s+)?<T>",
        ),
        "wish": (
            r"\b(?:seja|ser|esteja|fique|sejam|quero|gostaria)\s+(?:\S+\s+){0,2}?(?:cancel|anul)(?:ado|ada|ados|"
            r"adas)\b",
        ),
        "doubt": (
            r"\b(?:devo|deveria)\s+<T>",
            r"\bsenao\s+(?:\w+\s+){0,2}?<T>",
        ),
        "keep": (
            r"\b(?:posso|vou|podemos)\s+(?:esperar|aguardar)\b",
            r"\baguardo\s+(?:tranquil\w*|sem problema)\b",
        ),
    },
    T=_PT_T,
    P=_PT_P,
)

# --- Dutch ----------------------------------------------------------------------------------------------
_NL_T = (
    r"\b(?:annul(?:eren|eer|eert|eerd|eerde|eerden|ering|eringen|atie)|geannuleerd|cancel(?:en|len)|"
    r"gecanceld|gecanceled)\b"
)
_NL_P = r"\b(?:geannuleerd|gecanceld|gecanceled|annuleerde|annuleerden)\b"

NL: RuleSet = _fill(
    {
        "request": (
            r"<T>",
            r"\b(?:bestelling|order|aankoop)\s+(?:\w+\s+)?(?:intrekken|terugtrekken|ongedaan maken|stopzetten|"
            r"tegenhouden|stoppen)\b",
            r"\b(?:trek|zet)\s+(?:\w+\s+){0,2}(?:bestelling|order)\s+(?:in|stop)\b",
            r"\bniet\s+(?:meer\s+)?(?:versturen|verzenden|opsturen|sturen|leveren|verschepen|uitleveren)\b",
            r"\b(?:verstuur|verzend|stuur|lever)\s+(?:het|hem|de bestelling|deze|dit|de order|het pakket)?\s*"
            r"(?:alstublieft\s+|aub\s+|maar\s+)?niet\b",
            r"\b(?:stop|stopt|stoppen|houd|hou)\s+(?:de\s+|mijn\s+|het\s+)?(?:levering|verzending|zending|"
            r"bestelling|order|pakket)\b",
        ),
        "negation": (
            r"\b(?:niet|geen|nooit)\s+(?:(?:meer|de|mijn|bestelling|order|te|laten|worden|gevraagd|om|een|het|"
            r"hoeven|nodig)\s+){0,3}<T>",
            r"\b(?:annuleer|annuleert|annuleren)\s+(?:(?:mijn|de|het|deze|die|bestelling|order|alstublieft|aub|u|"
            r"je|maar|dan|hem|alsjeblieft)\s+){0,3}niet\b",
        ),
        "other": (
            r"\b(?:abonnement\w*|lidmaatschap\w*|prime|nieuwsbrief\w*|retour\w*|proefperiode|account)\s+"
            r"(?:\w+\s+){0,2}<T>",
            r"<T>\s+(?:(?:ik|je|u|we|mijn|de|het|van|een|uw|jouw)\s+){0,3}(?:abonnement\w*|lidmaatschap\w*|prime|nieuwsbrief\w*|"
            r"retour\w*|proefperiode)\b",
        ),
        "past": (
            r"<P>",
            r"\b(?:bedankt|dank)\s+(?:u\s+|je\s+)?voor\s+(?:de\s+|het\s+)?<T>",
        ),
        "wish": (
            r"\b(?:mag|kan|kunt|wil|wilt|zou|zouden|graag|moet|laten)\b(?:\s+\S+){0,4}\s+<P>\s+(?:worden|laten "
            r"worden|hebben)\b",
            r"\bgraag\s+(?:\S+\s+){0,3}<P>",
        ),
        "doubt": (
            r"\b(?:moet|zou)\s+ik\s+(?:\w+\s+){0,3}?<T>",
            r"\banders\s+(?:\w+\s+){0,3}?<T>",
        ),
        "keep": (
            r"\bik\s+wacht\s+(?:wel|graag|rustig|gewoon)\b",
            r"\bik\s+kan\s+(?:wel\s+|best\s+|prima\s+)?wachten\b",
        ),
    },
    T=_NL_T,
    P=_NL_P,
)

# --- Polish ---------------------------------------------------------------------------------------------
_PL_T = r"\banul(?:ow|uj|acj)\w*"
_PL_P = r"\b(?:anulowan(?:e|y|a|o|ych|ym)|anulowal\w*)\b"

PL: RuleSet = _fill(
    {
        "request": (
            r"<T>",
            r"\bz?rezygn\w*\s+z\s+(?:(?:tego|tej|mojego|mojej|calego|calej)\s+)?(?:zamowien\w*|zakup\w*|"
            r"produkt\w*|towar\w*)",
            r"\b(?:odwol|cofn|wycof)\w*\s+(?:\w+\s+)?(?:zamowien\w*|zakup\w*)",
            r"\bnie\s+(?:wysylajcie|wysylac|wysylaj|nadawajcie|nadawac|przesylajcie|przesylac|realizujcie|"
            r"realizowac)\b",
            r"\b(?:wstrzym|zatrzym)\w*\s+(?:\w+\s+)?(?:wysylk\w*|zamowien\w*|realizacj\w*|przesylk\w*|dostaw\w*)",
        ),
        "negation": (
            r"\bnie\s+(?:(?:chce|chcemy|chcialbym|chcialabym|zamierzam|musicie|trzeba|prosze|prosilem|prosilam|"
            r"prosilismy|o|mojego|zamowienia|zamowienie|ma|potrzeby|wolno|nalezy)\s+){0,3}<T>",
            r"\bbez\s+<T>",
        ),
        "other": (
            r"<T>\s+(?:(?:mojej|mojego|moja|moj|tej|tego)\s+)?(?:subskrypcj\w*|abonament\w*|prime|newsletter\w*|"
            r"zwrot\w*|konta|konto|czlonkostw\w*)",
            r"\b(?:subskrypcj\w*|abonament\w*|newsletter\w*|zwrot\w*)\s+(?:\w+\s+)?<T>",
        ),
        "past": (
            r"<P>",
            r"\bzostal\w*\s+(?:\w+\s+)?<T>",
        ),
        "wish": (
            r"\b(?:prosze|chce|chcialbym|chcialabym|moze|mozna|czy)\b(?:\s+\S+){0,3}\s+(?:zostac|byc)\s+<P>",
        ),
        "doubt": (r"\bczy\s+powinienem\s+<T>|\bczy\s+powinnam\s+<T>",),
        "keep": (
            r"\bpoczekam\b",
            r"\bzaczekam\b",
            r"\bmoge\s+(?:poczekac|zaczekac)\b",
        ),
    },
    T=_PL_T,
    P=_PL_P,
)

# --- Swedish --------------------------------------------------------------------------------------------
_SV_T = r"\b(?:avbest\w*|avbok\w*|annuller\w*|avbryt\w*|avbrot\w*|avbrut\w*)"
_SV_VERB = r"\b(?:avbryt|avbestall|avboka|annullera|avbryta|avbestalla)\b"
_SV_P = (
    r"\b(?:avbrots|avbrutits|avbruten|avbrutet|avbrutna|avbrot|avbrutit|avbestallts|avbestallt|avbestalld\w*|"
    r"avbestallde|avbokad\w*|avbokade|avbokats|avbokat|annullerad\w*|annullerats|annullerat|annullerade)\b"
)

SV: RuleSet = _fill(
    {
        "request": (
            r"<T>",
            r"\bhava\s+(?:\w+\s+)?(?:kopet|kop|ordern|bestallningen|avtalet)\b",
            r"\bangra\w*\s+(?:\w+\s+)?(?:kopet|kop|bestallning\w*|ordern|order)\b",
            r"\bstoppa\s+(?:\w+\s+)?(?:leveransen|forsandelsen|ordern|bestallningen|utskicket|paketet|leverans)\b",
            r"\b(?:skicka|posta|leverera)\s+(?:(?:den|det|dem|varan|ordern|paketet)\s+)?(?:inte|ej)\b"
            r"(?!\s+(?:hit|till)\b)",
            r"\b(?:inte|ej)\s+skicka\b",
        ),
        "negation": (
            r"\b(?:inte|ej|aldrig|ingen|inget)\s+(?:(?:att|vilja|vill|avser|tankt|tanker|har|bett|om|nagon|"
            r"behover|behov|av|for|den|det)\s+){0,3}<T>",
            r"<V>\s+(?:(?:ordern|bestallningen|den|det|min|mitt|snalla|tack)\s+){0,2}(?:inte|ej)\b",
        ),
        "other": (
            r"<T>\s+(?:(?:jag|du|ni|vi|min|mitt|mina|din|ert|er|den|det)\s+){0,2}(?:prenumeration\w*|medlemskap\w*|prime|"
            r"nyhetsbrev\w*|retur\w*|abonnemang\w*|konto\w*|provperiod\w*)",
            r"\b(?:prenumeration\w*|medlemskap\w*|nyhetsbrev\w*|abonnemang\w*)\s+(?:\w+\s+)?<T>",
        ),
        "past": (
            r"<P>",
            r"\b(?:tack)\s+for\s+(?:att\s+(?:ni\s+)?)?<T>",
        ),
        "wish": (r"\b(?:vill|kan|skulle|ska|bor|onskar)\b(?:\s+\S+){0,3}\s+(?:bli|blir|vara|fa)\s+<P>",),
        "doubt": (
            r"\b(?:ska|borde)\s+jag\s+<T>",
            r"\bannars\s+(?:\w+\s+){0,2}?<T>",
        ),
        "keep": (
            r"\b(?:jag\s+)?vantar\s+(?:garna|galant|lugnt|hellre)\b",
            r"\bkan\s+(?:garna\s+)?vanta\b",
        ),
    },
    T=_SV_T,
    V=_SV_VERB,
    P=_SV_P,
)

# --- Turkish --------------------------------------------------------------------------------------------
_TR_T = r"\biptal\w*"
# a verb with the Turkish negative suffix -me/-ma (etmeyin, etmedim, istemiyorum ...)
_TR_NEG_VERB = (
    r"\w*m[ea]y(?:in|iniz|ecegim|acagim|elim)|\w*m[ea]d(?:im|in|iniz|ik)|\w*m(?:i|u)yorum|istemiyorum|"
    r"istemedim|istemem|gerek yok|gerekmez|degil"
)

TR: RuleSet = _fill(
    {
        "request": (
            r"<T>",
            r"\b(?:siparis\w*|urun\w*|alisveris\w*|satin alma\w*)\s+(?:\w+\s+)?vazgec\w*",
            r"\bvazgectim\b",
            r"\b(?:gonder|yolla|kargola|gonderil|yollan|kargoya ver|postala)m[ea]y(?:in|iniz|elim)\b",
            r"\b(?:gonderim\w*|kargo\w*|sevkiyat\w*|siparis\w*)\s+(?:\w+\s+)?durdur\w*",
        ),
        "negation": (
            rf"<T>\s+(?:\w+\s+){{0,1}}(?:{_TR_NEG_VERB})\b",
            r"<T>\s+(?:\w+\s+){0,1}(?:etmeyin|etme)\b",
        ),
        "other": (
            r"\b(?:abonelig\w*|abonelik\w*|uyelig\w*|uyelik\w*|prime\w*|bulten\w*|iade\w*|deneme\w*|hesab\w*|"
            r"hesap\w*|e-?bulten\w*)\s+(?:\w+\s+){0,1}<T>",
            r"<T>\s+(?:\w+\s+)?(?:abonelig\w*|abonelik\w*|uyelig\w*|uyelik\w*|bulten\w*)",
        ),
        "past": (
            r"<T>\s+(?:mi\s+|mu\s+|de\s+|da\s+)?(?:edildi\w*|edilmis\w*|ettiniz\w*|etmissiniz\w*|ettim\w*|"
            r"etmisim\w*|oldu\w*|olmus\w*|ettin\w*|etti|etmis|ediliyor\w*|edilen\w*|ettiler\w*|ettigin\w*|"
            r"ettiginiz\w*)\b",
            r"<T>\s+(?:bildirim\w*|mail\w*|e-?posta\w*|mesaj\w*)",
        ),
        "wish": (),
        "doubt": (r"\byoksa\s+(?:\w+\s+){0,2}?<T>",),
        "keep": (
            r"\bbekleyebilirim\b",
            r"\bbeklerim\b",
            r"\bbekleyecegim\b",
            r"\bbeklemeye\s+razi\w*",
        ),
    },
    T=_TR_T,
)

# --- Japanese (no spaces: substring rules) --------------------------------------------------------------
_JA_T = r"キャンセル|きゃんせる|取り?消|取りやめ|取り止め|とりけし"

JA: RuleSet = _fill(
    {
        "request": (
            r"<T>",
            r"(?:発送|出荷|配送|送付|郵送)(?:を|は)?(?:しないで|しなくて|止め|とめ|停止|中止|ストップ|取りやめ|"
            r"見合わせ|控え)",
            r"送らないで",
            r"(?:注文|購入)(?:を|は)?(?:やめ|止め|取りやめ)",
        ),
        "negation": (
            r"(?:キャンセル|取り?消し?)(?:は|を|も)?(?:しないで|しません|しなくて|したくな|するつもりは(?:な|あり)|"
            r"するつもりも(?:な|あり)|する予定は(?:な|あり)|しないよう|せず|不要|結構です|いらない|は?希望して"
            r"(?:いません|いない|おりません))",
            r"取り消さな",
            r"キャンセル(?:では|じゃ)なく",
        ),
        "other": (
            r"(?:定期|サブスク|会員|プライム|メルマガ|メールマガジン|返品|購読|自動更新|お試し|ニュースレター|"
            r"アカウント)[^。！？!?\s]{0,6}?(?:キャンセル|取り?消)",
        ),
        "past": (
            r"(?:キャンセル|取り?消し?)(?:され|になっ|になり|済|となっ|となり)",
            r"キャンセルしました|取り消しました",
            r"(?:キャンセル|取り消)した(?![いくら])",
            r"キャンセル処理(?:され|が完了|済)",
            r"キャンセル(?:の)?(?:メール|通知|連絡)",
        ),
        "wish": (),
        "doubt": (
            r"キャンセル料",  # asking about the fee, not asking to cancel
            r"キャンセルしようか(?:迷|悩|検討)",
            r"キャンセルを検討",
        ),
        "keep": (
            r"楽しみに(?:待|まって)",
            r"気長に待",
            r"待ちますので",
        ),
    },
    T=_JA_T,
)

# --- Chinese (normalised to simplified; substring rules) ------------------------------------------------
_ZH_T = r"取消|撤销|退单|撤单"

ZH: RuleSet = _fill(
    {
        "request": (
            r"<T>",
            r"(?:别|不要|不用|先别|暂时别|请勿|勿)(?:再)?(?:发货|发了|寄|寄出|发出|送货|配送)(?!发票|邮件|短信|广告)",
            r"(?:停止|暂停|拦截|截住)(?:发货|配送|寄送)",
        ),
        "negation": (
            r"(?:不要|别|不用|不想|不必|无需|不需要|没有|没|不会|不是要?|不|并没有|从没|从未|未)(?:要求|申请|想要|想|"
            r"打算|帮我|给我|把订单|把我的订单)?(?:取消|撤销|退单|撤单)",
        ),
        "other": (
            r"(?:取消|撤销)[^，。！？,.!?\s]{0,4}?(?:自动续|续订|续费|订阅|会员|退货|退款申请|邮件|短信|prime|推送|"
            r"套餐|服务)",
            r"(?:自动续|续订|订阅|会员|退货)[^，。！？,.!?\s]{0,3}?(?:取消|撤销)",
        ),
        "past": (
            r"被取消|已经?取消|已被取消|(?<!帮我)(?<!请)取消了(?!吧)|取消掉了|取消成功|取消过",
            r"取消(?:的)?(?:通知|邮件|短信)",
        ),
        "wish": (),
        "doubt": (r"要不要取消|考虑取消",),
        "keep": (
            r"我(?:可以|愿意|会|能)等",
            r"慢慢等",
        ),
    },
    T=_ZH_T,
)

# --- Arabic ---------------------------------------------------------------------------------------------
# الغاء / الغي / تلغي / الغوا ...: root l-gh-y with the usual prefixes; كنسل is the colloquial loanword
_AR_T = r"\b[وفبل]{0,2}(?:ال)?[اتين]?لغ[اويى]\w*|كنسل\w*"

AR: RuleSet = _fill(
    {
        "request": (
            r"<T>",
            r"\bلا\s+(?:ت|ي)?(?:رسل|شحن|بعث|بعت)\w*",
            r"\bلا\s+(?:تقوموا|تقم)\s+ب(?:شحن|ارسال)",
            r"\b(?:اوقفوا|اوقف|ايقاف|وقف|توقيف)\s+(?:ال)?(?:شحن|ارسال|توصيل|طلب)\w*",
        ),
        "negation": (r"(?:^|\s)[وف]?(?:لا|لم|لن|ما|مو|مش|ليس|بدون|دون)\s+(?:\S+\s+){0,1}?(?:<T>)",),
        "other": (
            r"(?:<T>)\s+(?:\S+\s+){0,1}?(?:ال)?(?:اشتراك\w*|عضوي\w*|نشره|برايم|ارجاع|استرجاع)",
            r"\b(?:ال)?(?:اشتراك|عضويه)\w*\s+(?:\S+\s+)?(?:<T>)",
        ),
        "past": (
            r"\bتم\s+(?:\S+\s+)?(?:<T>)",
            r"لغيت\w*",
            r"\bملغ[يىا]\w*|\b(?:ات|ان)لغ[يىا]\w*",
            r"\b(?:رساله|ايميل|بريد|اشعار)\s+(?:\S+\s+)?\w*الغاء",
        ),
        "wish": (),
        "doubt": (),
        "keep": (r"سانتظر|ساصبر|بنتظر|يمكنني\s+الانتظار|استطيع\s+الانتظار|راح\s+انتظر",),
    },
    T=_AR_T,
)

RULES: dict[str, RuleSet] = {
    "en": EN,
    "de": DE,
    "fr": FR,
    "it": IT,
    "es": ES,
    "nl": NL,
    "pl": PL,
    "sv": SV,
    "tr": TR,
    "ja": JA,
    "zh": ZH,
    "ar": AR,
    "pt": PT,
}

# "why ...?" in the same clause as a cancel word means the buyer is asking about a cancellation, not for one.
WHY_ANYWHERE = (
    r"\b(?:why|how come|warum|wieso|weshalb|pourquoi|por que|porque\s*\?|waarom|hoezo|dlaczego|czemu|varfor|"
    r"neden|niye|nicin|لماذا|ليش|ليه)\b|なぜ|どうして|何故|なんで|为什么|为何|凭什么|怎么回事"
)
# Italian "perche" also means "because": only a clause that starts with it asks why (matched at clause starts)
WHY_CLAUSE_START = r"\W*(?:(?:ma|e|scusate|salve|ciao|buongiorno|buonasera)\W+)?(?:perche|come mai)\b"

# --- Language detection ---------------------------------------------------------------------------------
# Han characters or words used in Japanese but not in Chinese: tell kanji-only Japanese from Chinese.
JAPANESE_ONLY_HAN = r"[発届様込済払円変単]|注文|致します"

# Greetings and sign-offs say little about the language of the message body ("Hi, bitte stornieren").
GREETINGS: frozenset[str] = _words("""
hi hello hey dear sir madam thanks thank thx regards cheers hallo danke gruss grusse lg mfg bonjour bonsoir
merci salut cordialement salve ciao grazie buongiorno buonasera hola gracias saludos hej hejsan tack mvh
merhaba selam tesekkurler ola oi obrigado obrigada witam dziekuje czesc goedemiddag goedemorgen bedankt
groeten ok okay السلام عليكم مرحبا شكرا
""")

# Brand and product names that are not evidence of any language.
NEUTRAL_WORDS: frozenset[str] = _words("amazon prime audible kindle alexa echo music")

# Common words per language, normalised (accents stripped). Shared words count for each language they
# belong to, split evenly, so only distinctive words decide.
WORDS: dict[str, frozenset[str]] = {
    "en": _words("""
the a an and or but i im i'm i'd i've my me you your it its it's is are was were be been to of in on for
with at from by this that these please pls plz thanks thank hello hi hey dear order ordered orders cancel
cancelled canceled cancellation cancelling cancle cancell item items package parcel delivery deliver
delivered ship shipped shipping send sent not don't dont do does did no yes can could would will want need
like still yet when where what why how which arrive arrived refund return wrong got received have has had
just so if kindly regards kind anymore longer there here address change invoice wait waiting week weeks day
days time now asap again sorry mistake accidentally bought buy purchase same other another one two first
new possible already help know think hold stop void email subscription newsletter money back too very much
get go going make made see also about after before until instead reorder color colour size model damaged
broken fast great good nice perfect love happy ridiculous found locally there mind changed tracking moved
since monday christmas sir way ages explanation right unsubscribe keeping charged reinstate
"""),
    "de": _words("""
ich du er sie es wir ihr mein meine meinen meiner meines mir mich ihnen der die das den dem des ein eine
einen einem und oder aber nicht kein keine bitte danke vielen dank hallo guten tag abend morgen gruss
grusse bestellung bestellt bestellen storno stornieren storniert stornierung auftrag ware artikel paket
lieferung versand versenden verschicken geliefert zuruck ist sind war wurde worden haben habe hat hatte
mochte moechte wurde kann konnen konnten wann wo warum wie was noch schon mehr sehr gerne gern mit von vom
zu zum zur auf fur bei nach aus im am um dass wenn ob sofort leider doppelt falsch falscher rechnung
schicken senden erhalten bekommen angekommen kommt beschadigt schnelle frage fragen nur auch so jetzt heute
woanders gunstiger gefunden brauche dringend farbe andern lieber schwarz widerrufe kauf zurucktreten wieder
mal ihre versendet gekauft geht gibt canceln moglich mail abbestellen newsletter zuruckschicken
"""),
    "fr": _words("""
je j tu il elle nous vous ils le la les l un une des du de d et ou mais ne n pas plus mon ma mes votre vos
ce cette est suis ai avez a merci bonjour bonsoir salut svp stp s plait commande annuler annulez annulation
annule annulee colis livraison envoi expedition article produit recu pourquoi comment quand que qui quoi
pour avec sans sur dans par voudrais veux souhaite pouvez pourriez possible deux fois erreur trompe besoin
suivi bouge retourner remboursement facture adresse modifier parfait tout rien encore deja ete raison
abonnement attendrai surtout cordialement madame monsieur c qu ca tres bien aussi oui non modele commandee
stopper demande demander correspond bouge
"""),
    "it": _words("""
io tu lui lei noi voi loro il lo la i gli le l un una uno di del della dell dei da dal in nel nella con su
per tra e ed o ma non mi ti ci vi si ne mio mia miei mie vostro che chi come quando dove perche cosa ordine
ordini ordinato annullare annullate annullamento cancellare spedizione spedire spedite pacco consegna
articolo prodotto grazie salve buongiorno buonasera ciao cordiali saluti vorrei voglio posso potete
possibile ho ha hanno sono stato stata gia ancora piu molto tutto niente nulla favore gentilmente chiedo
richiedo sbaglio prezzo migliore trovato arrivato ricevuto danneggiato rimborso fattura colore cambiare
indirizzo abbonamento motivo aspetto volentieri ottimo spiegate anche oggi subito stesso inviarmi trova n
annullatemi annulare disattivo
"""),
    "es": _words("""
yo tu el ella nosotros usted ustedes la los las un una unos de del al en con por para sin sobre y o pero no
si me te se le lo nos les mi mis su sus que como cuando donde porque pedido pedi pedidos cancelar cancelen
cancelacion anular anulen envio envien paquete producto articulo gracias hola buenos dias buenas tardes
noches favor porfavor porfa quiero quisiera gustaria necesito puede pueden puedo es esta estan estoy he ha
han ya todavia muy mucho muchas todo nada solicito equivocado talla tienda otra compre compra llego roto
reembolso factura direccion cambiar seguimiento actualiza devolver perfecto urgente demasiado tarda avisar
paso suscripcion cuenta veo ayuda saludos hoy semana cancelaron cancelo gusto lo
"""),
    "pt": _words("""
eu voce voces ele ela nos o a os as um uma de do da dos das em no na nas com por para pra sem e ou mas nao
sim me te se lhe meu minha meus minhas seu sua que como quando onde porque pedido encomenda cancelar
cancelem cancelamento envio enviem produto obrigado obrigada ola oi bom boa dia tarde noite favor quero
gostaria preciso pode podem posso esta estou foi tenho tem ja ainda muito tudo nada solicito errado comprei
duplicado da chegou certo quebrado veio reembolso nota fiscal endereco alterar entrega rastreio atualiza
devolver serviu assinatura urgente desisti aviso tambem isso esse essa aqui agora hoje semana cancelaram
cancela compra espero
"""),
    "nl": _words("""
ik jij je u hij zij ze wij we het de een en of maar niet geen mijn uw jouw dit dat deze die is zijn ben was
heb heeft hebben wil wilt kan kunt kunnen zou mag graag bedankt dank dankjewel hallo goedemiddag goedemorgen
goedenavond groet groeten alstublieft aub bestelling bestellingen besteld order annuleren annuleer
geannuleerd annulering pakket levering verzending versturen verzonden ontvangen artikel product waarom
wanneer waar hoe wat nog al ook meer heel veel te van voor met op aan in bij naar per ongeluk keer twee lang
duurt wacht wel niks niets aangekomen nakijken beschadigd retourneren afleveradres wijzigen abonnement
factuur krijgen lidmaatschap zeg worden dus even gewoon alles goed alsjeblieft cancelen zou willen
"""),
    "pl": _words("""
ja ty on ona my wy oni mnie mi moje moj moja mojego mojej twoje to ten ta te jest sa byl bylo i a ale lub
albo czy nie tak prosze dziekuje dzieki dzien dobry witam czesc pozdrawiam zamowienie zamowienia zamowieniu
zamowilem zamowilam anulowac anulowanie anuluj anulujcie paczka paczki przesylka wysylka wysylke dostawa
dostawy towar produkt kiedy gdzie dlaczego jak co juz jeszcze bardzo z ze w we na do od o po za dla przez
chcialbym chcialabym chce moge mozna nr numer pomylilam pomylilem kolor znalazlem taniej rezygnuje zakupu
przyjdzie dotarl idealnym stanie uszkodzony zwrocic zmienic adres faktura fakture vat zostalo zostal
wyslane anulowane powodu bez subskrypcji poczekam go jej sie anulacje anulowaliscie zamowien
"""),
    "sv": _words("""
jag du han hon vi ni de den det en ett och eller men inte ej min mitt mina din er ert ar var har hade vill
kan skulle ska tack hej hejsan mvh vanliga halsningar vanligen snalla bestallning bestallningen ordern
order avbestall avbryta avboka paket paketet leverans leveransen varan varor skicka skickat nar varfor hur
vad som att pa i med for till av om fran redan fortfarande nu mycket kopt kopet annat hall behover trasig
returnera pengarna tillbaka skadad kvitto byta farg fint skick kom fram allt prenumeration avslutar vantar
garna hava innan stoppa gar fa avbestalla avbrots avbrutits anna
"""),
    "tr": _words("""
ben sen o biz siz onlar bu su bir ve veya ama degil icin ile gibi mi mu ne neden nasil nerede zaman lutfen
tesekkur tesekkurler sagol merhaba iyi gunler selam siparis siparisim siparisimi siparisi iptal urun urunu
kargo kargoya paket paketim gonder istiyorum istemiyorum edebilir misiniz edin etmek ederim artik
yanlislikla iki tane aldim yerden baska cok gec kaldi mumkun bekleyebilirim sadece durumunu soruyorum gelir
sorunsuz geldi hasarli iade teslimat adresini degistirebilir fatura gonderebilir abonelik talep ediyorum
olarak hemen daha var yok evet hayir iptalini edelim ettiniz edildi etmeyin
"""),
}

# Stems for inflected languages (Turkish, Polish, ...): a word starting with one counts for the language.
STEMS: dict[str, tuple[str, ...]] = {
    "tr": (
        "siparis",
        "iptal",
        "urun",
        "tesekkur",
        "gonder",
        "istiyor",
        "istemiyor",
        "edebilir",
        "kargo",
        "lutfen",
        "teslim",
        "degistir",
        "abonelig",
        "yanlis",
        "mumkun",
        "bekle",
        "ediyor",
        "ederim",
    ),
    "pl": (
        "zamowien",
        "anul",
        "prosz",
        "dziek",
        "wysyl",
        "przesyl",
        "paczk",
        "rezygn",
        "dostaw",
        "zwrot",
        "subskryp",
        "chcial",
        "zostal",
    ),
    "de": ("bestell", "storn", "liefer", "versand", "versend", "verschick", "rechnung", "gruss", "grusse"),
    "nl": ("bestelling", "annuleer", "annuler", "geannuleerd", "verzend", "verstuur", "alstubl"),
    "sv": ("bestalln", "avbest", "avbok", "avbryt", "leverans", "prenumer", "skick"),
    "fr": ("command", "annul", "livr", "expedi", "rembours"),
    "it": ("ordin", "annull", "cancell", "spedi", "consegn", "rimbors", "abbonament"),
    "es": ("pedid", "suscrip", "envi", "devolu"),
    "pt": ("encomend", "cancelament", "assinatur", "devoluc", "obrigad"),
    "en": ("cancel", "order", "ship", "deliver", "refund", "subscri"),
}

# Letters that point to a language, looked up in the original (accented) text.
CHAR_HINTS: dict[str, tuple[str, ...]] = {
    "ğ": ("tr",),
    "ş": ("tr",),
    "ı": ("tr",),
    "İ": ("tr",),
    "ą": ("pl",),
    "ę": ("pl",),
    "ł": ("pl",),
    "ś": ("pl",),
    "ź": ("pl",),
    "ż": ("pl",),
    "ć": ("pl",),
    "ń": ("pl",),
    "ß": ("de",),
    "ü": ("de", "tr"),
    "ä": ("de", "sv"),
    "ö": ("de", "sv", "tr"),
    "å": ("sv",),
    "ñ": ("es",),
    "¿": ("es",),
    "¡": ("es",),
    "ã": ("pt",),
    "õ": ("pt",),
    "ç": ("fr", "pt", "tr"),
    "ê": ("fr", "pt"),
    "â": ("fr", "pt"),
    "ô": ("fr", "pt"),
    "è": ("fr", "it"),
    "à": ("fr", "it", "pt"),
    "ù": ("fr", "it"),
    "œ": ("fr",),
    "î": ("fr",),
    "û": ("fr",),
    "ë": ("fr", "nl"),
    "ï": ("fr", "nl"),
    "ò": ("it",),
    "ì": ("it",),
    "á": ("es", "pt"),
    "í": ("es", "pt"),
    "ó": ("es", "pt", "pl"),
    "ú": ("es", "pt"),
    "é": ("fr", "es", "pt", "it"),
}
