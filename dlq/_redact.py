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

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dlq._redact_rules import (
    ALL_RULES,
    AUTH,
    AUTH_RE,
    CARD,
    CARD_RUN_RE,
    FILTERED,
    JWT,
    JWT_RE,
    PAIR,
    PAIR_KEY_RE,
    PAIR_VALUE_RE,
    PEM,
    PEM_RE,
    SCHEMES,
    URL,
    URL_PASSWORD_RE,
    XML,
    XML_ELEMENT_RE,
    card_mask,
    card_run,
    credential,
    is_card,
    may_hold_card,
    term,
    url_password,
    words,
)

__all__ = ["ALL_RULES", "DEFAULT_KEYS", "FILTERED", "Redactor", "default_redactor",
           "parse_redact_allow", "redact_command_text", "redact_text"]

# In the spirit of Sentry's default denylist, plus PCI's card data. A key
# matches when one run of its words spells a term (see Redactor.is_secret_key).
DEFAULT_KEYS: tuple[str, ...] = (
    "password", "passwd", "pwd", "passphrase", "secret", "api_key", "apikey", "access_token",
    "refresh_token", "id_token", "auth", "authorization", "credentials", "credential", "cookie",
    "set_cookie", "session", "sessionid", "session_id", "csrf", "csrftoken", "xsrf",
    "private_key", "privatekey", "token", "cvv", "cvv2", "cvc", "card_number", "pan",
    "client_secret", "signature", "mysql_pwd", "phpsessid", "connect.sid",
)

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
        self._terms = frozenset(t for t in (term(k) for k in (*keys, *extra_keys)) if t)
        self._max_words = max((len(words(k)) for k in (*keys, *extra_keys)), default=1)
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
        parts = words(key)
        for i in range(len(parts)):
            joined = ""
            for j in range(i, min(len(parts), i + self._max_words + 2)):
                joined += parts[j]
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
        if may_hold_card(text):
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
            out = PEM_RE.sub(FILTERED, out)
        if rules & JWT and "eyJ" in out:
            out = JWT_RE.sub(FILTERED, out)
        if rules & AUTH:
            low = out.lower()
            if "bearer" in low or "basic" in low or "token" in low or "digest" in low:
                out = AUTH_RE.sub(credential, out)
        if rules & URL and "://" in out and "@" in out:
            out = URL_PASSWORD_RE.sub(url_password, out)
        if rules & PAIR and ("=" in out or ":" in out):
            out = self._pairs(out)
        if rules & XML and "</" in out:
            out = XML_ELEMENT_RE.sub(self._element, out)
        if rules & CARD and len(out) >= 13 and may_hold_card(out):
            out = CARD_RUN_RE.sub(card_run, out)
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
        for match in PAIR_KEY_RE.finditer(text):
            if match.start() < pos or not self.is_secret_key(match.group("key")):
                continue
            value = PAIR_VALUE_RE.match(text, match.end())
            if value is None:
                continue
            bare = value.group().strip("\"'")
            # "Authorization: Bearer <token>": the credential rule filtered the token.
            if bare in ("", FILTERED) or bare.lower() in SCHEMES:
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
            if is_card(digits):
                paths.append(".".join(path))
                return card_mask(digits)
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


def redact_command_text(cmd: Any, redactor: Redactor | None = None) -> Any:
    """An operator command's input with secrets in its ``reason`` and ``notes`` replaced.

    The same model back when nothing matched (value rules only: pure, so the
    entry workflow can apply it too and replay recomputes the same).
    """
    redactor = redactor or default_redactor()
    changed = {}
    for field in ("reason", "notes"):
        value = getattr(cmd, field, None)
        if isinstance(value, str) and value and (clean := redactor.text(value)) != value:
            changed[field] = clean
    return cmd.model_copy(update=changed) if changed else cmd


def redact_text(value: str, redactor: Redactor | None = None) -> str:
    """``value`` with the value rules applied (for log lines and error texts)."""
    return (redactor or default_redactor()).text(value)
