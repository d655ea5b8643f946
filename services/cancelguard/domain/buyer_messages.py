"""Does a buyer's message ask the seller to cancel an order? An explainable, rule-based classifier.

Amazon's API cannot see buyer messages (domain §7). A buyer who writes "please cancel my order" instead of
using Your Orders > Request cancellation makes an *informal* request: if the seller cancels on it, the cancel
counts against the seller's Cancellation Rate. So every helpdesk message goes through `classify_message`,
and a request gets a reply asking for the formal flow (see replies.py).

How it decides (word lists and patterns live in buyer_message_lexicon.py):
1. Normalise: NFKC, casefold, strip Latin accents, unify Arabic letter forms, collapse whitespace.
2. Find request mentions in all 13 languages at once (messages mix languages): cancel words ("cancel",
   "stornieren", "annuler", "iptal", "キャンセル", "取消", "إلغاء" ...) and "do not ship it" phrases.
3. Drop a mention when a near-miss pattern covers it: negation ("bitte nicht stornieren"), another thing
   (subscription, Prime, newsletter, a return), a cancellation that already happened or is asked about
   ("was it cancelled?", "you cancelled my order"), doubt or threats ("should I cancel?"), or a "why" in the
   same clause. A participle used as a wish ("I'd like it cancelled") is still a request.
4. A message is a request when a mention survives and the buyer does not also say they will wait for it.

Pure and fast: no I/O, regexes compiled at import, no models.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from cancelguard.domain import buyer_message_lexicon as lexicon

SUPPORTED_LANGUAGES: tuple[str, ...] = (
    "en",
    "de",
    "fr",
    "it",
    "es",
    "nl",
    "pl",
    "sv",
    "tr",
    "ja",
    "zh",
    "ar",
    "pt",
)
UNDETERMINED = "und"
# The buyer's new text comes first; a longer message is mostly quoted history, which is not read.
MAX_CHARS = 5000
MAX_EVIDENCE = 8


@dataclass(frozen=True, slots=True)
class MessageClassification:
    is_cancel_request: bool
    language: str  # ISO 639-1 code from SUPPORTED_LANGUAGES, or "und" when it cannot tell
    evidence: tuple[str, ...]  # the rules/phrases that matched, e.g. ("de: 'stornieren'", "negation: '...'")
    explanation: str  # one sentence saying why


# --- normalisation --------------------------------------------------------------------------------------

_TRADITIONAL_TO_SIMPLIFIED = dict(
    zip(
        "訂單請這別發貨為麼沒幫給會無續閱員郵費經謝買錯還銷過現說時號個們達務攔暫從後嗎讓裡處煩撤",
        "订单请这别发货为么没帮给会无续阅员邮费经谢买错还销过现说时号个们达务拦暂从后吗让里处烦撤",
        strict=True,
    )
)
_CHAR_MAP = str.maketrans(
    {
        "ı": "i",
        "ł": "l",
        "ø": "o",
        "đ": "d",
        "æ": "ae",
        "œ": "oe",
        "þ": "th",
        "’": "'",
        "‘": "'",
        "`": "'",
        "´": "'",
        "ʼ": "'",
        "ـ": "",
        "ى": "ي",
        "ی": "ي",
        "ة": "ه",
        "ک": "ك",
        "ٱ": "ا",
        **_TRADITIONAL_TO_SIMPLIFIED,
    }
)
_LINE_BREAKS = re.compile(r"\s*\n\s*")
_SPACES = re.compile(r"[^\S\n]+")


# Latin accents and Arabic vowel/hamza marks go; kana voicing marks (U+3099/309A) stay
_DROP_MARKS = dict.fromkeys(
    [*range(0x0300, 0x0370), *range(0x064B, 0x0660), 0x0670, *range(0x06D6, 0x06EE)], None
)


def normalise(text: str) -> str:
    """The form every pattern is written against: casefolded, accents stripped, whitespace collapsed
    (a line break is kept as one "\n": it ends a clause)."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_CHAR_MAP)
    text = unicodedata.normalize("NFC", unicodedata.normalize("NFD", text).translate(_DROP_MARKS))
    return _SPACES.sub(" ", _LINE_BREAKS.sub("\n", text)).strip()


# --- compiled rules -------------------------------------------------------------------------------------

_BLOCKING_KINDS = ("negation", "other", "past", "doubt")
_BLOCK_LABELS = {
    "negation": "negation",
    "other": "cancels something else",
    "past": "already cancelled or asking about it",
    "doubt": "not asking yet",
    "why": "asks why",
    "keep": "wants the order",
    "wish": "asks to have it cancelled",
}


def _union(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for a rule list. The lookahead reports a match at every start position, so matches may
    overlap and none hides another (plain finditer would skip a match that starts inside an earlier one)."""
    if not patterns:
        return None
    return re.compile("(?=(" + "|".join(f"(?:{p})" for p in patterns) + "))")


_RULES: dict[str, dict[str, re.Pattern[str] | None]] = {
    language: {kind: _union(patterns) for kind, patterns in rules.items()}
    for language, rules in lexicon.RULES.items()
}
_CLAUSE_END = re.compile(r"[.!?;,:\n。！？、，；：؟،؛]")
_WHY_ANYWHERE = re.compile(lexicon.WHY_ANYWHERE)
_WHY_CLAUSE_START = re.compile(lexicon.WHY_CLAUSE_START)


@dataclass(frozen=True, slots=True)
class _Hit:
    language: str
    kind: str
    start: int
    end: int
    text: str


def _hits(text: str, languages: Iterable[str], kind: str) -> list[_Hit]:
    hits = []
    for language in languages:
        pattern = _RULES[language][kind]
        for m in pattern.finditer(text) if pattern else ():
            found = m.group(1)
            if found.strip():
                hits.append(_Hit(language, kind, m.start(1), m.end(1), found.strip()))
    return hits


class _Index:
    """Hits sorted by position, to find those overlapping a span without scanning them all."""

    def __init__(self, hits: list[_Hit]) -> None:
        self.hits = sorted(hits, key=lambda h: h.start)
        self.starts = [h.start for h in self.hits]
        self.longest = max((h.end - h.start for h in hits), default=0)

    def overlapping(self, hit: _Hit) -> list[_Hit]:
        lo = bisect.bisect_left(self.starts, hit.start - self.longest)
        hi = bisect.bisect_left(self.starts, hit.end)
        return [h for h in self.hits[lo:hi] if h.end > hit.start]


class _Clauses:
    """Clause boundaries (punctuation) and where a "why" occurs, computed once per message."""

    def __init__(self, text: str) -> None:
        self.ends = [m.start() for m in _CLAUSE_END.finditer(text)]
        spots = [(m.start(), m.group()) for m in _WHY_ANYWHERE.finditer(text)]
        for start in (0, *(end + 1 for end in self.ends)):
            m = _WHY_CLAUSE_START.match(text, start)
            if m:
                spots.append((start, m.group()))
        spots.sort()
        self.why_at = [pos for pos, _ in spots]
        self.why_text = [word.strip(" ,") for _, word in spots]

    def why(self, hit: _Hit) -> _Hit | None:
        """A "why" in the clause around the hit (from the previous to the next punctuation mark)."""
        i = bisect.bisect_right(self.ends, hit.start)
        start = self.ends[i - 1] + 1 if i else 0
        j = bisect.bisect_left(self.ends, hit.end)
        end = self.ends[j] if j < len(self.ends) else float("inf")
        k = bisect.bisect_left(self.why_at, start)
        if k < len(self.why_at) and self.why_at[k] < end:
            return _Hit(hit.language, "why", hit.start, hit.end, self.why_text[k])
        return None


def _describe(hit: _Hit) -> str:
    label = hit.language if hit.kind == "request" else _BLOCK_LABELS[hit.kind]
    return f"{label}: '{hit.text}'"


def _evidence(hits: Iterable[_Hit]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_describe(h) for h in hits))[:MAX_EVIDENCE]


def classify_message(text: str) -> MessageClassification:
    """Whether the message asks the seller to cancel (or not ship) an order, with the evidence."""
    text = text[:MAX_CHARS]
    norm = normalise(text)
    language = _detect(text, norm)
    all_requests = _hits(norm, _RULES, "request")
    if not all_requests:
        return MessageClassification(False, language, (), "No words asking to cancel or stop an order.")
    # one mention per span; where languages share a word ("cancelar"), report it under the detected one
    requests: list[_Hit] = []
    for hit in sorted(all_requests, key=lambda h: (h.start, h.language != language, h.start - h.end)):
        if not requests or hit.start >= requests[-1].end:
            requests.append(hit)
    # blockers embed their language's cancel word, so only languages with a mention can have one
    mentioned = sorted({hit.language for hit in all_requests})
    blockers = _Index([b for kind in _BLOCKING_KINDS for b in _hits(norm, mentioned, kind)])
    wishes = _Index(_hits(norm, mentioned, "wish"))
    clauses = _Clauses(norm)

    surviving: list[_Hit] = []
    reasons: list[_Hit] = []
    for hit in requests:
        rescued = wishes.overlapping(hit)
        blocked = [b for b in blockers.overlapping(hit) if not (rescued and b.kind == "past")]
        why = None if blocked else clauses.why(hit)
        if blocked:
            reasons.append(blocked[0])
        elif why:
            reasons.append(why)
        else:
            surviving.append(hit)
            reasons.extend(rescued[:1])

    if surviving:
        keep = _hits(norm, sorted({*mentioned, language} & _RULES.keys()), "keep")
        evidence = _evidence([*surviving, *keep, *reasons])
        if keep:
            return MessageClassification(
                False,
                language,
                evidence,
                f"Mentions cancelling ('{surviving[0].text}') but the buyer wants the order: "
                f"'{keep[0].text}'.",
            )
        return MessageClassification(
            True,
            language,
            evidence,
            f"Asks to cancel or stop the order: '{surviving[0].text}' ({surviving[0].language}).",
        )
    first = reasons[0]
    return MessageClassification(
        False,
        language,
        _evidence([*reasons, *requests]),
        f"Mentions cancelling but not as a request for this order ({_BLOCK_LABELS[first.kind]}: "
        f"'{first.text}').",
    )


# --- language detection ---------------------------------------------------------------------------------

_TOKEN = re.compile(r"[^\W\d_]+")
_LATIN_WORD = re.compile(r"[a-z\u00c0-\u024f\u1e00-\u1eff']+")
_ARABIC = re.compile(r"[\u0600-\u06ff\u0750-\u077f\ufb50-\ufeff]")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_JAPANESE_ONLY_HAN = re.compile(lexicon.JAPANESE_ONLY_HAN)
# scripts cancelguard does not read: Greek, Cyrillic, Hebrew, Indic, Thai, Hangul
_OTHER_SCRIPT = re.compile(
    r"[\u0370-\u052f\u0590-\u05ff\u0900-\u0dff\u0e00-\u0e7f\u1100-\u11ff\uac00-\ud7af]"
)
_WORD_LANGUAGES: dict[str, tuple[str, ...]] = {}
for _language, _words in lexicon.WORDS.items():
    for _word in _words:
        _WORD_LANGUAGES[_word] = (*_WORD_LANGUAGES.get(_word, ()), _language)
_STEM_LANGUAGES: dict[str, tuple[str, ...]] = {}
for _language, _stems in lexicon.STEMS.items():
    for _stem in _stems:
        _STEM_LANGUAGES[_stem] = (*_STEM_LANGUAGES.get(_stem, ()), _language)
_STEM_LENGTHS = sorted({len(stem) for stem in _STEM_LANGUAGES})
_HINT_CHARS = re.compile("[" + re.escape("".join(lexicon.CHAR_HINTS)) + "]")


def _stem_languages(token: str) -> tuple[str, ...]:
    found = (_STEM_LANGUAGES.get(token[:n], ()) for n in _STEM_LENGTHS if n <= len(token))
    return tuple(dict.fromkeys(lang for languages in found for lang in languages))


def _latin_language(tokens: list[str], raw: str) -> str:
    """The Latin-script language whose common words and letters the message uses most."""
    scores = dict.fromkeys(lexicon.WORDS, 0.0)
    for token in tokens:
        weight = 0.25 if token in lexicon.GREETINGS else 1.0
        languages = _WORD_LANGUAGES.get(token)
        if not languages:
            languages = _stem_languages(token)
            weight *= 0.75
        for language in languages:
            scores[language] += weight / len(languages)
    for ch in _HINT_CHARS.findall(raw):
        hinted = lexicon.CHAR_HINTS[ch]
        for language in hinted:
            scores[language] += 0.5 / len(hinted)
    best = max(scores, key=lambda lang: scores[lang])  # ties: the first in WORDS order
    return best if scores[best] >= 0.5 else UNDETERMINED


def _detect(text: str, norm: str) -> str:
    kana, han = len(_KANA.findall(norm)), len(_HAN.findall(norm))
    tokens = _TOKEN.findall(norm)
    latin = [t for t in tokens if _LATIN_WORD.fullmatch(t)]
    arabic = [t for t in tokens if _ARABIC.search(t)]

    def body(words: list[str]) -> int:
        return sum(1 for w in words if w not in lexicon.GREETINGS and w not in lexicon.NEUTRAL_WORDS)

    # rough "words" per script; a CJK character counts as half a word
    mass = {
        "latin": float(body(latin)),
        "arabic": float(body(arabic)),
        "cjk": (kana + han) / 2,
        "other": len(_OTHER_SCRIPT.findall(norm)) / 4,
    }
    if not any(mass.values()):  # only greetings: let them decide
        mass["latin"], mass["arabic"] = float(len(latin)), float(len(arabic))
    script = max(mass, key=lambda s: mass[s])
    if mass[script] == 0:
        return UNDETERMINED
    if script == "cjk":
        return "ja" if kana or _JAPANESE_ONLY_HAN.search(text) else "zh"
    if script == "arabic":
        return "ar"
    if script == "other":
        return UNDETERMINED
    return _latin_language(latin, unicodedata.normalize("NFKC", text))


def detect_language(text: str) -> str:
    """ISO 639-1 code of the message body's language (greetings weigh little), or "und"."""
    text = text[:MAX_CHARS]
    return _detect(text, normalise(text))
