"""Redaction of secrets at capture, before anything is written anywhere.

A DLQ keeps the forensic context of failed payments, webhooks and API calls,
so secrets pile up in it. :class:`Redactor` replaces them with ``[Filtered]``
before an entry reaches the outbox, Temporal, SQL or a log line:

- **by key** (case-insensitive, anywhere in the data dicts): a value whose key
  names a secret (``password``, ``api_key``, ``Authorization``...), judged on
  the key's words so ``db_password`` and ``X-Api-Key`` match but ``author``
  does not;
- **by value** (in every string, and in the free-text fields): card numbers
  (13-19 digits passing Luhn; the last four are kept), ``Bearer``/``Basic``
  credentials, JWT-shaped strings, PEM private keys, ``secret=...`` pairs in
  text and passwords in URLs;
- an **allow list** per domain of dotted paths that stay as they are (values a
  replay handler truly needs).

The redactor reports the dotted paths it changed (``redacted_paths``), so an
operator knows why a field reads ``[Filtered]``. It is pure (no I/O).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["DEFAULT_KEYS", "FILTERED", "Redactor", "default_redactor", "parse_redact_allow",
           "redact_text"]

FILTERED = "[Filtered]"
# In the spirit of Sentry's default denylist, plus PCI's card data. A key
# matches when one run of its words spells a term (see Redactor.is_secret_key).
DEFAULT_KEYS: tuple[str, ...] = (
    "password", "passwd", "pwd", "passphrase", "secret", "api_key", "apikey", "access_token",
    "refresh_token", "id_token", "auth", "authorization", "credentials", "credential", "cookie",
    "set_cookie", "session", "sessionid", "session_id", "csrf", "csrftoken", "xsrf",
    "private_key", "privatekey", "token", "cvv", "cvv2", "cvc", "card_number", "pan",
    "client_secret", "signature", "mysql_pwd", "phpsessid", "connect.sid",
)

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# ASCII digits only: Luhn is computed on them.
_CARD_RUN = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,}(?![0-9])")
_GROUPS = re.compile(r"[0-9]+")
# Bytes with every digit as "0" and spaces and dashes dropped: a card number
# leaves thirteen "0"s in a row (a cheap necessary condition for _CARD_RUN).
_DIGIT_MAP = bytes.maketrans(b"0123456789", b"0000000000")
_THIRTEEN = b"0" * 13
# Token68 (RFC 7235) after the scheme; a plain lower-case word ("Bearer
# authentication failed") is prose, not a credential.
_AUTH = re.compile(r"\b(Bearer|Basic|Token|Digest)(\s+)([A-Za-z0-9\-._~+/]{8,}=*)",
                   re.IGNORECASE)
_SCHEMES = frozenset({"bearer", "basic", "token", "digest"})
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)",
                  re.DOTALL)
# user:password@ in a URL (keeps the user).
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)([^\s@/]+)(@)", re.IGNORECASE)
# key=value, key: value, "key": "value" in free text; the key is judged by
# is_secret_key in the replacement, so this only finds candidates.
_PAIR_KEY = re.compile(r"""(?<![A-Za-z0-9_.-])(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)["']?\s*[:=]\s*""")
# <password>...</password> (SOAP and XML gateways); the tag is judged by is_secret_key.
_XML_ELEMENT = re.compile(r"<(?P<tag>[A-Za-z_][A-Za-z0-9_.:-]*)(?P<attrs>[^<>]*)>(?P<value>[^<]+)"
                          r"</(?P=tag)>")
_PAIR_VALUE = re.compile(r""""[^"]*"|'[^']*'|[^\s"',;&}\]]+""")


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


def _is_card(digits: str) -> bool:
    # Issuers' numbers start with 2-6: epoch milliseconds (1...) and zero-padded
    # ids are not mistaken for cards.
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and _luhn(digits)


def _card_mask(digits: str) -> str:
    return f"[Filtered:****{digits[-4:]}]"


def _mask_cards_in_run(run: str) -> str:
    digits = run.replace(" ", "").replace("-", "")
    if _is_card(digits):
        return _card_mask(digits)
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
            if _is_card(span):
                out.append(run[pos:groups[i].start()])
                out.append(_card_mask(span))
                pos = groups[j].end()
                i = j
                break
        i += 1
    out.append(run[pos:])
    return "".join(out)


def _may_hold_card(text: str) -> bool:
    return _THIRTEEN in text.encode(errors="surrogatepass").translate(_DIGIT_MAP, b" -")


def _card_run(match: re.Match[str]) -> str:
    return _mask_cards_in_run(match.group())


def _url_password(match: re.Match[str]) -> str:
    return f"{match.group(1)}{FILTERED}{match.group(3)}"


def _credential(match: re.Match[str]) -> str:
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


def _words(key: str) -> list[str]:
    return [w.lower() for w in _WORDS.findall(key)]


def _term(key: str) -> str:
    return "".join(_words(key))


class Redactor:
    """Replaces secrets with ``[Filtered]`` and reports where.

    Args:
        keys: The key terms (matched case-insensitively, ignoring ``_``, ``-``,
            ``.`` and camel case); :data:`DEFAULT_KEYS` by default.
        extra_keys: More terms (``DLQ_REDACT_KEYS``).
        allow: Domain -> dotted paths that stay unredacted (``DLQ_REDACT_ALLOW``);
            ``*`` as a domain applies to every domain, ``*`` as a path segment
            matches any one key or list index.
        enabled: False turns every rule off (``DLQ_REDACT_ENABLED``).
    """

    def __init__(self, *, keys: Iterable[str] = DEFAULT_KEYS, extra_keys: Iterable[str] = (),
                 allow: Mapping[str, Sequence[str]] | None = None, enabled: bool = True) -> None:
        self.enabled = enabled
        self._terms = frozenset(t for t in (_term(k) for k in (*keys, *extra_keys)) if t)
        self._max_words = max((len(_words(k)) for k in (*keys, *extra_keys)), default=1)
        self._allow = {domain: tuple(tuple(p.split(".")) for p in paths)
                       for domain, paths in (allow or {}).items()}
        self._keys: dict[str, bool] = {}

    def is_secret_key(self, key: str) -> bool:
        """Whether a value under ``key`` is a secret (one run of its words spells a term)."""
        known = self._keys.get(key)
        if known is None:
            known = self._is_secret_key(key)
            if len(self._keys) < 65536:  # data may use unbounded key sets (ids as keys)
                self._keys[key] = known
        return known

    def _is_secret_key(self, key: str) -> bool:
        words = _words(key)
        for i in range(len(words)):
            joined = ""
            for j in range(i, min(len(words), i + self._max_words + 2)):
                joined += words[j]
                if joined in self._terms:
                    return True
        return False

    # --- text -----------------------------------------------------------------------

    def rules_for(self, text: str) -> int:
        """The value rules that may match somewhere in ``text`` (a superset; cheap)."""
        low = text.lower()
        rules = 0
        if "PRIVATE KEY-----" in text:
            rules |= PEM
        if "eyJ" in text:
            rules |= JWT
        if "bearer" in low or "basic" in low or "token" in low or "digest" in low:
            rules |= AUTH
        if "://" in text and "@" in text:
            rules |= URL
        if "=" in text or ":" in text:
            rules |= PAIR
        if "</" in text:
            rules |= XML
        if _may_hold_card(text):
            rules |= CARD
        return rules

    def text(self, value: str, rules: int = ALL_RULES) -> str:
        """``value`` with the value rules applied (cards, credentials, JWTs, PEM keys, pairs).

        Args:
            value: Any text.
            rules: Only these rules (flags from :meth:`rules_for`); all by default.
        """
        # Every store runs this on every string: cheap substring checks decide
        # which of the (slower) patterns can match at all.
        if not self.enabled or not rules or len(value) < 5:
            return value
        out = value
        if rules & PEM and "PRIVATE KEY-----" in out:
            out = _PEM.sub(FILTERED, out)
        if rules & JWT and "eyJ" in out:
            out = _JWT.sub(FILTERED, out)
        if rules & AUTH:
            low = out.lower()
            if "bearer" in low or "basic" in low or "token" in low or "digest" in low:
                out = _AUTH.sub(_credential, out)
        if rules & URL and "://" in out and "@" in out:
            out = _URL_PASSWORD.sub(_url_password, out)
        if rules & PAIR and ("=" in out or ":" in out):
            out = self._pairs(out)
        if rules & XML and "</" in out:
            out = _XML_ELEMENT.sub(self._element, out)
        if rules & CARD and len(out) >= 13 and _may_hold_card(out):
            out = _CARD_RUN.sub(_card_run, out)
        return out

    def _element(self, match: re.Match[str]) -> str:
        tag = match.group("tag")
        # A namespace prefix (<ns:password>) does not make a key ordinary.
        if not self.is_secret_key(tag.rsplit(":", 1)[-1]) or match.group("value") == FILTERED:
            return match.group()
        return f"<{tag}{match.group('attrs')}>{FILTERED}</{tag}>"

    def _pairs(self, text: str) -> str:
        # A key's value may itself look like a key ("failed: password=x"), so
        # the scan resumes after each separator, not after each value.
        out: list[str] = []
        pos = 0
        for match in _PAIR_KEY.finditer(text):
            if match.start() < pos or not self.is_secret_key(match.group("key")):
                continue
            value = _PAIR_VALUE.match(text, match.end())
            if value is None:
                continue
            bare = value.group().strip("\"'")
            # "Authorization: Bearer <token>": the credential rule filtered the token.
            if bare in ("", FILTERED) or bare.lower() in _SCHEMES:
                continue
            quote = value.group()[0] if value.group()[0] in "\"'" else ""
            out.append(text[pos:match.end()])
            out.append(f"{quote}{FILTERED}{quote}")
            pos = value.end()
        if not out:
            return text
        out.append(text[pos:])
        return "".join(out)

    # --- data -----------------------------------------------------------------------

    def data(self, value: Any, *, field: str, domain: str = "",
             paths: list[str] | None = None, rules: int | None = None) -> Any:
        """A copy of JSON data ``value`` with secrets replaced.

        Args:
            value: Plain JSON data (dicts, lists, strings, numbers...).
            field: The field's name, the first segment of every path.
            domain: The entry's domain (chooses the allow list).
            paths: Dotted paths of the values replaced are appended here.
            rules: The value rules to run (from :meth:`rules_for` on the
                whole entry); found from ``value`` itself if None.
        """
        if not self.enabled:
            return value
        if rules is None:
            rules = self.rules_for(json.dumps(value, ensure_ascii=False, default=str))
        allow = self._allow_for(domain)
        found = paths if paths is not None else []
        if not allow:
            return self._plain(value, [field], found, rules)
        return self._walk(value, (field,), allow, False, found, rules)

    def _plain(self, value: Any, path: list[str], paths: list[str], rules: int) -> Any:
        """:meth:`_walk` without an allow list (the common case), tuned: it sees every node."""
        kind = type(value)
        if kind is dict:
            items: Iterable[tuple[Any, Any]] = value.items()
            out: Any = {}
        elif kind is list:
            items = enumerate(value)
            out = [None] * len(value)
        else:
            return self._scalar(value, path, paths, rules)
        for key, item in items:
            name = key if type(key) is str else str(key)
            if kind is dict and item is not None and item != "" and self.is_secret_key(name):
                out[key] = FILTERED
                paths.append(".".join((*path, name)))
            elif type(item) is str:
                new = self.text(item, rules)
                if new != item:
                    paths.append(".".join((*path, name)))
                out[key] = new
            else:
                path.append(name)
                out[key] = self._plain(item, path, paths, rules)
                path.pop()
        return out

    def _scalar(self, value: Any, path: Sequence[str], paths: list[str], rules: int) -> Any:
        if isinstance(value, str):
            new = self.text(value, rules)
            if new != value:
                paths.append(".".join(path))
            return new
        if (rules & CARD and isinstance(value, int) and not isinstance(value, bool)
                and value > 10**12):
            digits = str(value)
            if _is_card(digits):
                paths.append(".".join(path))
                return _card_mask(digits)
        return value

    def _allow_for(self, domain: str) -> tuple[tuple[str, ...], ...]:
        return (*self._allow.get(domain, ()), *self._allow.get("*", ()))

    def _walk(self, value: Any, path: tuple[str, ...], allow: tuple[tuple[str, ...], ...],
              forced: bool, paths: list[str], rules: int) -> Any:
        """``forced``: under a secret key that has an allowed path below it."""
        if allow:
            below = False
            for rule in allow:
                if len(rule) <= len(path) and _matches(rule, path[:len(rule)]):
                    return value  # allowed: the whole subtree stays
                if len(rule) > len(path) and _matches(rule[:len(path)], path):
                    below = True
        else:
            below = False
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                sub = (*path, str(key))
                if not forced and item not in (None, "") and self.is_secret_key(str(key)):
                    if allow and any(_matches(r[:len(sub)], sub[:len(r)]) for r in allow):
                        # An allowed path at or below it: only that stays.
                        out[key] = self._walk(item, sub, allow, True, paths, rules)
                    else:
                        out[key] = FILTERED
                        paths.append(".".join(sub))
                else:
                    out[key] = self._walk(item, sub, allow, forced, paths, rules)
            return out
        if isinstance(value, list):
            return [self._walk(item, (*path, str(i)), allow, forced, paths, rules)
                    for i, item in enumerate(value)]
        if forced and not below and value not in (None, "") and not isinstance(value, bool):
            paths.append(".".join(path))
            return FILTERED
        return self._scalar(value, path, paths, rules)

    def fields(self, values: dict[str, Any], *, data_fields: Sequence[str],
               text_fields: Sequence[str]) -> list[str]:
        """Redact an entry's fields in place; returns the dotted paths replaced.

        Args:
            values: The entry's fields (``domain`` chooses the allow list).
            data_fields: The JSON dict fields (key and value rules).
            text_fields: The free-text fields (value rules; a field on the
                allow list stays as it is).
        """
        paths: list[str] = []
        if not self.enabled:
            return paths
        domain = values.get("domain") or ""
        # One pass over the whole entry decides which value rules can match at
        # all. The separators are control characters, which JSON escapes inside
        # strings: a ":" or "=" left in the text is the data's own.
        rules = self.rules_for(json.dumps([values[name] for name in data_fields],
                                          ensure_ascii=False, default=str,
                                          separators=("\x1e", "\x1f")))
        for name in data_fields:
            values[name] = self.data(values[name], field=name, domain=domain, paths=paths,
                                     rules=rules)
        allow = self._allow_for(domain)
        for name in text_fields:
            text = values.get(name)
            if text and not any(_matches(rule, (name,)) for rule in allow if len(rule) == 1):
                new = self.text(text)
                if new != text:
                    values[name] = new
                    paths.append(name)
        return paths


def _matches(rule: Sequence[str], path: Sequence[str]) -> bool:
    return len(rule) == len(path) and all(r in ("*", p) for r, p in zip(rule, path, strict=True))


def parse_redact_allow(value: Any) -> dict[str, tuple[str, ...]]:
    """Parse ``DLQ_REDACT_ALLOW``: JSON (or a dict) of domain -> list of dotted paths.

    Raises:
        ValueError: Naming the setting and what is wrong.
    """
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(f"DLQ_REDACT_ALLOW must be JSON (domain -> list of dotted "
                             f"paths): {err}") from None
    if not isinstance(value, Mapping):
        raise ValueError(f"DLQ_REDACT_ALLOW must map domains to lists of dotted paths, "
                         f"got {type(value).__name__}")
    parsed: dict[str, tuple[str, ...]] = {}
    for domain, paths in value.items():
        if not isinstance(domain, str) or not domain:
            raise ValueError(f"DLQ_REDACT_ALLOW: domain {domain!r} must be a non-empty string")
        if isinstance(paths, str) or not isinstance(paths, Sequence):
            raise ValueError(f"DLQ_REDACT_ALLOW[{domain!r}] must be a list of dotted paths")
        for path in paths:
            if not isinstance(path, str) or not path or "" in path.split("."):
                raise ValueError(f"DLQ_REDACT_ALLOW[{domain!r}]: {path!r} is not a dotted "
                                 "path such as 'request_data.card.number'")
        parsed[domain] = tuple(paths)
    return parsed


@functools.cache
def default_redactor() -> Redactor:
    """A redactor with the default rules (for places without a configuration)."""
    return Redactor()


def redact_text(value: str, redactor: Redactor | None = None) -> str:
    """``value`` with the value rules applied (for log lines and error texts)."""
    return (redactor or default_redactor()).text(value)
