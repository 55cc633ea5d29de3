"""The encryption key ring (``DLQ_ENCRYPTION_KEYS``) and AES-256-GCM sealing.

A key ring is a comma-separated list of ``key_id:base64(32 random bytes)``.
The first key encrypts everything written from now on; every key decrypts,
so adding a new key in front rotates without making old data unreadable.
Everything the DLQ encrypts (Temporal payloads, outbox records, SQL data
columns) carries the id of the key that sealed it, so a missing key is named
in the error instead of surfacing as a bare authentication failure.

Nothing here logs, and neither key material nor plaintext is ever put in an
error message or a ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dlq._errors import DLQKeyError

__all__ = ["LOCAL_KEY_FILE", "TEXT_PREFIX", "KeyRing", "generate_key", "local_key_ring",
           "parse_key_ring", "sealed_text_key_id"]

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # the GCM standard nonce
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Sealed text (outbox records): "dlqenc:v1:<key id>:<base64(nonce + ciphertext)>".
TEXT_PREFIX = "dlqenc:v1:"
ENV = "DLQ_ENCRYPTION_KEYS"
# The key ring `make run` keeps in DLQ_HOME; read when DLQ_ENCRYPTION_KEYS is unset.
LOCAL_KEY_FILE = "encryption-keys"


def _aesgcm(key: bytes) -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as err:  # pragma: no cover - depends on the install
        raise DLQKeyError(f"{ENV} is set but the 'cryptography' package is missing; install "
                          "temporal-dlq[encryption]") from err
    return AESGCM(key)


def generate_key(key_id: str | None = None) -> str:
    """A new key in the ``key_id:base64`` form of ``DLQ_ENCRYPTION_KEYS``.

    Args:
        key_id: The key's id; ``k`` and the current UTC date and time if None.

    Raises:
        ValueError: ``key_id`` is not 1-64 of letters, digits and ``._-``.
    """
    if key_id is None:
        import time

        key_id = time.strftime("k%Y%m%d%H%M%S", time.gmtime())
    if not _KEY_ID.match(key_id):
        raise ValueError(f"key id {key_id!r} must be 1-64 of letters, digits and ._-")
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


@dataclass(frozen=True)
class KeyRing:
    """Keys by id; the first one (``current``) encrypts, all of them decrypt.

    Build it with :func:`parse_key_ring`. Its ``repr`` shows the key ids only.

    Attributes:
        current: Id of the key that encrypts.
        ids: Every key id, in ring order.
    """

    current: str
    ids: tuple[str, ...]
    _keys: Mapping[str, bytes] = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ciphers", {k: _aesgcm(v) for k, v in self._keys.items()})

    def __reduce__(self) -> tuple[Any, ...]:
        # The ciphers cannot be pickled or deep-copied: rebuild them from the keys.
        return (KeyRing, (self.current, self.ids, dict(self._keys)))

    def seal(self, plaintext: bytes, *, aad: bytes | None = None) -> tuple[str, bytes]:
        """Encrypt ``plaintext`` with the current key.

        Args:
            plaintext: What to encrypt.
            aad: Associated data bound to the ciphertext (must be given again to open it).

        Returns:
            The key id and ``nonce + ciphertext``.
        """
        nonce = os.urandom(NONCE_BYTES)
        cipher = self.__dict__["_ciphers"][self.current]
        return self.current, nonce + cipher.encrypt(nonce, plaintext, aad)

    def open(self, key_id: str, sealed: bytes, *, aad: bytes | None = None) -> bytes:
        """Decrypt what :meth:`seal` returned.

        Raises:
            DLQKeyError: The key is not in the ring, or the data does not
                authenticate with it (wrong key or tampered data).
        """
        cipher = self.__dict__["_ciphers"].get(key_id)
        if cipher is None:
            raise DLQKeyError(f"data was encrypted with key {key_id!r}, which is not in {ENV} "
                              f"(ring: {', '.join(self.ids)}); add that key back to decrypt it",
                              key_id=key_id)
        from cryptography.exceptions import InvalidTag

        try:
            return bytes(cipher.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad))
        except InvalidTag:
            raise DLQKeyError(f"data sealed with key {key_id!r} does not decrypt with the key of "
                              f"that id in {ENV}: the key changed or the data was altered",
                              key_id=key_id) from None

    def seal_text(self, plaintext: str, *, aad: bytes | None = None) -> str:
        """``plaintext`` sealed into text: ``dlqenc:v1:<key id>:<base64>``."""
        key_id, sealed = self.seal(plaintext.encode(), aad=aad)
        return f"{TEXT_PREFIX}{key_id}:{base64.b64encode(sealed).decode()}"

    def open_text(self, text: str, *, aad: bytes | None = None) -> str:
        """The plaintext of :meth:`seal_text`'s output; other text is returned unchanged.

        Unsealed text passes through, so data written before encryption was
        switched on stays readable.

        Raises:
            DLQKeyError: See :meth:`open`.
        """
        if not text.startswith(TEXT_PREFIX):
            return text
        key_id, sealed = _split_sealed_text(text)
        return self.open(key_id, sealed, aad=aad).decode()

    @staticmethod
    def open_unconfigured(text: str) -> str:
        """``text`` itself when it is not sealed.

        Raises:
            DLQKeyError: It is sealed, and no key ring is configured (names the key id).
        """
        key_id = sealed_text_key_id(text)
        if key_id is None:
            return text
        raise DLQKeyError(f"data encrypted with key {key_id!r} found, but {ENV} is not set",
                          key_id=key_id)


def _split_sealed_text(text: str) -> tuple[str, bytes]:
    key_id, _, body = text[len(TEXT_PREFIX):].partition(":")
    try:
        return key_id, base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise DLQKeyError(f"sealed data of key {key_id!r} is corrupt (not base64)",
                          key_id=key_id) from None


def sealed_text_key_id(text: str) -> str | None:
    """The key id of sealed text, or None if ``text`` is not sealed."""
    return text[len(TEXT_PREFIX):].partition(":")[0] if text.startswith(TEXT_PREFIX) else None


def local_key_ring(path: str | os.PathLike[str]) -> str:
    """The key ring kept in ``path`` for a local stack, created on first use (mode 0600).

    ``make run`` calls it for ``DLQ_HOME/encryption-keys`` when
    ``DLQ_ENCRYPTION_KEYS`` is not set, so a laptop's histories, outbox and
    read model are encrypted without any setup.

    Raises:
        ValueError: The file holds no valid ring, or is readable by others.
    """
    from pathlib import Path

    file = Path(path)
    if not file.exists():
        file.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 in one step: the key is never readable by others, even briefly.
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(generate_key("local-" + secrets.token_hex(3)) + "\n")
    if file.stat().st_mode & 0o077:
        raise ValueError(f"{file} must be readable by its owner only (chmod 600 {file})")
    value = file.read_text().strip()
    try:
        parse_key_ring(value)
    except ValueError as err:
        raise ValueError(f"{file}: {err}") from None
    if not value:
        raise ValueError(f"{file} is empty; delete it to generate a new key")
    return value


def parse_key_ring(value: str | None) -> KeyRing | None:
    """Parse ``DLQ_ENCRYPTION_KEYS``; None when it is empty (encryption off).

    Raises:
        ValueError: An item is malformed, a key is not 32 bytes of base64, or
            an id repeats. The message names the item by its position and id,
            never the key material.
    """
    if not value or not value.strip():
        return None
    keys: dict[str, bytes] = {}
    ids: list[str] = []
    for position, item in enumerate(value.split(","), start=1):
        item = item.strip()
        if not item:
            raise ValueError(f"{ENV}: item {position} is empty (a stray comma?)")
        key_id, sep, material = item.partition(":")
        key_id = key_id.strip()
        if not sep:
            raise ValueError(f"{ENV}: item {position} must be key_id:base64(32 bytes); "
                             "`dlq keys generate` prints one")
        if not _KEY_ID.match(key_id):
            raise ValueError(f"{ENV}: item {position}: key id must be 1-64 of letters, digits "
                             "and ._-")
        try:
            key = base64.b64decode(material.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{ENV}: key {key_id!r} is not valid base64") from None
        if len(key) != KEY_BYTES:
            raise ValueError(f"{ENV}: key {key_id!r} must be {KEY_BYTES} bytes (AES-256), "
                             f"got {len(key)}")
        if key_id in keys:
            raise ValueError(f"{ENV}: key id {key_id!r} appears twice")
        keys[key_id] = key
        ids.append(key_id)
    return KeyRing(current=ids[0], ids=tuple(ids), _keys=keys)
