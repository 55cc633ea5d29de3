"""The value rules of redaction: patterns and pure helpers (see :mod:`dlq._redact`).

Card numbers (Luhn, issuer prefix, last four kept), ``Bearer``/``Basic``
credentials, JWTs, PEM private keys, passwords in URLs, ``key=value`` pairs and
XML elements, and the words of a key name. Each rule has a bit flag, so a
store can run only the rules that may match in an entry.
"""

from __future__ import annotations

import base64
import binascii
import re

__all__ = [
    "ALL_RULES", "AUTH", "AUTH_RE", "CARD", "CARD_RUN_RE", "FILTERED", "JWT", "JWT_RE", "PAIR",
    "PAIR_KEY_RE", "PAIR_VALUE_RE", "PEM", "PEM_RE", "SCHEMES", "URL", "URL_PASSWORD_RE", "XML",
    "XML_ELEMENT_RE", "card_mask", "card_run", "credential", "is_card", "may_hold_card", "term",
    "url_password", "words",
]

FILTERED = "[Filtered]"

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# ASCII digits only: Luhn is computed on them.
CARD_RUN_RE = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,}(?![0-9])")
_GROUPS = re.compile(r"[0-9]+")
# Bytes with every digit as "0" and spaces and dashes dropped: a card number
# leaves thirteen "0"s in a row (a cheap necessary condition for CARD_RUN_RE).
_DIGIT_MAP = bytes.maketrans(b"0123456789", b"0000000000")
_THIRTEEN = b"0" * 13
# Token68 (RFC 7235) after the scheme; a plain lower-case word ("Bearer
# authentication failed") is prose, not a credential.
AUTH_RE = re.compile(r"\b(Bearer|Basic|Token|Digest)(\s+)([A-Za-z0-9\-._~+/]{8,}=*)",
                     re.IGNORECASE)
SCHEMES = frozenset({"bearer", "basic", "token", "digest"})
JWT_RE = re.compile(r"\beyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
PEM_RE = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)", re.DOTALL)
# user:password@ in a URL (keeps the user).
URL_PASSWORD_RE = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)([^\s@/]+)(@)", re.IGNORECASE)
# key=value, key: value, "key": "value" in free text; the key is judged by
# is_secret_key in the replacement, so this only finds candidates.
PAIR_KEY_RE = re.compile(
    r"""(?<![A-Za-z0-9_.-])(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)["']?\s*[:=]\s*""")
# <password>...</password> (SOAP and XML gateways); the tag is judged by is_secret_key.
XML_ELEMENT_RE = re.compile(
    r"<(?P<tag>[A-Za-z_][A-Za-z0-9_.:-]*)(?P<attrs>[^<>]*)>(?P<value>[^<]+)</(?P=tag)>")
PAIR_VALUE_RE = re.compile(r""""[^"]*"|'[^']*'|[^\s"',;&}\]]+""")


# Value rules, as bit flags: a store first checks which can match anywhere in
# the entry (one pass over its JSON) and runs only those on each string.
PEM, JWT, AUTH, URL, PAIR, CARD, XML = 1, 2, 4, 8, 16, 32, 64
ALL_RULES = PEM | JWT | AUTH | URL | PAIR | CARD | XML


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def is_card(digits: str) -> bool:
    """Whether ``digits`` (digits only) is a payment card number."""
    # Issuers' numbers start with 2-6: epoch milliseconds (1...) and zero-padded
    # ids are not mistaken for cards.
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and _luhn(digits)


def card_mask(digits: str) -> str:
    """What a card number becomes: ``[Filtered:****1111]`` (PCI DSS allows the last four)."""
    return f"[Filtered:****{digits[-4:]}]"


def _mask_cards_in_run(run: str) -> str:
    digits = run.replace(" ", "").replace("-", "")
    if is_card(digits):
        return card_mask(digits)
    if len(digits) < 26:
        return run
    # Several numbers separated by single spaces or dashes: try each span of
    # whole groups, leftmost-longest first.
    groups = list(_GROUPS.finditer(run))
    out: list[str] = []
    pos = i = 0
    while i < len(groups):
        for j in range(len(groups) - 1, i - 1, -1):
            span = "".join(g.group() for g in groups[i:j + 1])
            if is_card(span):
                out.append(run[pos:groups[i].start()])
                out.append(card_mask(span))
                pos = groups[j].end()
                i = j
                break
        i += 1
    out.append(run[pos:])
    return "".join(out)


def may_hold_card(text: str) -> bool:
    """False when ``text`` surely holds no card number (cheap; no regex)."""
    return _THIRTEEN in text.encode(errors="surrogatepass").translate(_DIGIT_MAP, b" -")


def card_run(match: re.Match[str]) -> str:
    """Replacement for a :data:`CARD_RUN_RE` match: each card in it masked."""
    return _mask_cards_in_run(match.group())


def url_password(match: re.Match[str]) -> str:
    """Replacement for a :data:`URL_PASSWORD_RE` match: the user stays."""
    return f"{match.group(1)}{FILTERED}{match.group(3)}"


def credential(match: re.Match[str]) -> str:
    """Replacement for an :data:`AUTH_RE` match: the scheme stays, prose is kept."""
    scheme, space, token = match.groups()
    if token.isalpha() and token.islower():
        return match.group()
    if scheme.lower() == "basic" and not _is_basic(token):
        return match.group()
    return f"{scheme}{space}{FILTERED}"


def _is_basic(token: str) -> bool:
    try:
        decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return b":" in decoded


def words(key: str) -> list[str]:
    """A key's words, lower-cased (``X-Api-Key`` and ``apiKey`` give ``api``, ``key``)."""
    return [w.lower() for w in _WORDS.findall(key)]


def term(key: str) -> str:
    """A key's words joined (``API_KEY`` gives ``apikey``): how key terms are compared."""
    return "".join(words(key))
