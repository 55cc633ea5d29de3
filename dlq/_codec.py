"""The Temporal payload codec that encrypts every payload with the key ring.

Each payload is serialized whole (metadata and data) and sealed with
AES-256-GCM under the ring's current key; the result is a payload whose
metadata says ``binary/encrypted`` and names the key id, so a payload
written under an older key still decodes while that key is in the ring, and
one whose key is gone fails with :class:`~dlq.DLQKeyError` naming it.

:func:`encryption_hooks` is one of the project's built-in
:class:`~dlq.TemporalHooks` (see ``dlq._connect.BUILTIN_HOOKS``), so every
client, worker and history replayer the DLQ builds gets the codec when
``DLQ_ENCRYPTION_KEYS`` is set. Failure messages and stack traces are moved
into an encoded (so encrypted) attribute too: a replay handler's exception
text may quote the data it choked on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from dlq._connect import TemporalHooks
from dlq._keys import KeyRing

__all__ = ["ENCODING", "KEY_ID_KEY", "EncryptionCodec", "encryption_hooks"]

ENCODING = b"binary/encrypted"
KEY_ID_KEY = "encryption-key-id"
# Binds the ciphertext to its use: a sealed SQL value or outbox record cannot
# be passed off as a Temporal payload.
_AAD = b"dlq:temporal-payload"


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM encryption of whole payloads with a :class:`KeyRing`.

    Args:
        ring: The key ring; its current key encrypts, any of its keys decrypts.
    """

    def __init__(self, ring: KeyRing) -> None:
        super().__init__()
        self.ring = ring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encrypt each payload with the current key."""
        out = []
        for payload in payloads:
            key_id, sealed = self.ring.seal(payload.SerializeToString(), aad=_AAD)
            out.append(Payload(metadata={"encoding": ENCODING,
                                         KEY_ID_KEY: key_id.encode()}, data=sealed))
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decrypt encrypted payloads; others (written before encryption was on) pass through.

        Raises:
            DLQKeyError: A payload's key is not in the ring (the message names it).
        """
        out = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                out.append(payload)
                continue
            key_id = payload.metadata.get(KEY_ID_KEY, b"").decode(errors="replace")
            decoded = Payload()
            decoded.ParseFromString(self.ring.open(key_id, payload.data, aad=_AAD))
            out.append(decoded)
        return out


class _ChainedCodec(PayloadCodec):
    """A codec a user's hooks set, then encryption last (compress before encrypting)."""

    def __init__(self, first: PayloadCodec, last: PayloadCodec) -> None:
        super().__init__()
        self.first, self.last = first, last

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await self.last.encode(await self.first.encode(payloads))

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await self.first.decode(await self.last.decode(payloads))


def with_encryption(converter: DataConverter, ring: KeyRing) -> DataConverter:
    """``converter`` with the encryption codec (after any codec it has) and encoded failures."""
    codec: PayloadCodec = EncryptionCodec(ring)
    if converter.payload_codec is not None:
        codec = _ChainedCodec(converter.payload_codec, codec)
    return dataclasses.replace(converter, payload_codec=codec,
                               failure_converter_class=DefaultFailureConverterWithEncodedAttributes)


def encryption_hooks(ring: KeyRing) -> TemporalHooks:
    """The hooks that give a client, worker or replayer the encryption codec."""
    return TemporalHooks(data_converter=lambda converter: with_encryption(converter, ring))

