"""Authenticated encryption of small secrets (users' own provider keys) under the studio's secret.

AES-256-GCM from `cryptography`, with the key derived from `IMAGESTUDIO_SECRET_KEY` by HKDF-SHA256
under a purpose label, so the same secret signing links never doubles as this key. Each sealed value
is bound to a context (whose secret it is, and for what), passed as associated data: a value copied
into another user's row does not open there. Sealed text: `v1.<base64url(nonce || ciphertext+tag)>`.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = "v1"
NONCE_BYTES = 12


class SealBroken(ValueError):
    """A sealed value that does not open with this secret and context (wrong secret, or tampered)."""


def derive_key(secret: str, purpose: str) -> bytes:
    if not secret:
        raise ValueError("an empty secret cannot derive a key")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"imagestudio {purpose}".encode())
    return hkdf.derive(secret.encode())


class Sealer:
    """Seals and opens strings with a key derived from `secret` for `purpose`. Holds no plaintext."""

    def __init__(self, secret: str, purpose: str) -> None:
        self._aead = AESGCM(derive_key(secret, purpose))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def seal(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return f"{VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, sealed: str, context: str) -> str:
        version, _, body = sealed.partition(".")
        if version != VERSION:
            raise SealBroken(f"unknown sealed format {version!r}")
        try:
            raw = base64.urlsafe_b64decode(body.encode())
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise SealBroken("the sealed value does not open with this secret") from None
