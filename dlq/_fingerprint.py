"""Failure fingerprints: which entries are "the same failure" (failure groups).

An entry's fingerprint hashes its domain, failure type, error code and its
error message with the parts that differ between occurrences of one failure
(numbers, UUIDs, hex strings, ids with digits, times, IP and e-mail
addresses, quoted values) replaced by placeholders. Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["FINGERPRINT_LENGTH", "MESSAGE_TEMPLATE_LENGTH", "fingerprint", "is_fingerprint",
           "normalize_message"]

FINGERPRINT_LENGTH = 16
# Only the start of a message decides its group: stack traces and payload dumps
# that follow a message would otherwise split one failure into many groups.
MESSAGE_TEMPLATE_LENGTH = 300

# Order matters: the wider patterns run first, so a UUID does not become
# five <n>/<hex> pieces and a timestamp does not become six numbers.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
     "<uuid>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
                r"(?:Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}\b"), "<date>"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\b0[xX][0-9a-fA-F]+\b"), "<hex>"),
    # Hex runs (hashes, trace ids, object ids): at least 8 characters with a digit.
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<hex>"),
    # Ids that mix letters and digits (ord_8f3k2, txn-000123, ABC123): the whole token.
    (re.compile(r"\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9]+(?:[_-][A-Za-z0-9]+)+\b"), "<id>"),
    (re.compile(r"\b(?=[A-Za-z]*\d)(?=\d*[A-Za-z])[A-Za-z0-9]{6,}\b"), "<id>"),
    (re.compile(r"[-+]?\d+(?:[.,]\d+)*"), "<n>"),
    (re.compile(r"'[^'\n]{0,200}'"), "'<v>'"),
    (re.compile(r'"[^"\n]{0,200}"'), '"<v>"'),
    (re.compile(r"\s+"), " "),
)
_FINGERPRINT = re.compile(rf"^[0-9a-f]{{{FINGERPRINT_LENGTH}}}$")


def normalize_message(message: str | None) -> str:
    """The error message with what varies between occurrences replaced by placeholders.

    Examples:
        ``"order 12345 timed out after 30s"`` -> ``"order <n> timed out after <n>s"``;
        ``"card 4f1c...-uuid declined"`` -> ``"card <uuid> declined"``.

    Args:
        message: The entry's error message (None is the empty message).

    Returns:
        The template, stripped and at most :data:`MESSAGE_TEMPLATE_LENGTH` characters.
    """
    text = (message or "")[: MESSAGE_TEMPLATE_LENGTH * 4]
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return text.strip()[:MESSAGE_TEMPLATE_LENGTH]


def fingerprint(domain: str, failure_type: str, error_code: str | None,
                error_message: str | None) -> str:
    """The failure group of an entry: 16 hex characters.

    Args:
        domain: The entry's domain.
        failure_type: Its failure type.
        error_code: Its error code (None is the empty code).
        error_message: Its error message, normalised by :func:`normalize_message`.
    """
    key = "\x1f".join((domain, failure_type, error_code or "", normalize_message(error_message)))
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:FINGERPRINT_LENGTH]


def is_fingerprint(value: object) -> bool:
    """Whether ``value`` has the shape of a fingerprint (16 lowercase hex characters)."""
    return isinstance(value, str) and bool(_FINGERPRINT.match(value))
