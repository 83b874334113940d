"""Sealed secrets open only with the same secret, purpose and context, and never when altered."""

from __future__ import annotations

import base64

import pytest

from imagestudio.kit.sealing import SealBroken, Sealer

SECRET = "a-studio-secret-0123456789"


def test_a_sealed_value_opens_with_its_secret_and_context() -> None:
    sealed = Sealer(SECRET, "keys").seal("sk-plaintext", "user/openai")
    assert "sk-plaintext" not in sealed and sealed.startswith("v1.")
    assert Sealer(SECRET, "keys").open(sealed, "user/openai") == "sk-plaintext"
    # A fresh nonce each time: the same plaintext never seals the same way twice.
    assert Sealer(SECRET, "keys").seal("sk-plaintext", "user/openai") != sealed


@pytest.mark.parametrize(
    ("secret", "purpose", "context"),
    [
        ("another-secret-000000000000", "keys", "user/openai"),
        (SECRET, "links", "user/openai"),
        (SECRET, "keys", "other/openai"),
    ],
)
def test_another_secret_purpose_or_context_does_not_open_it(secret: str, purpose: str, context: str) -> None:
    sealed = Sealer(SECRET, "keys").seal("sk-plaintext", "user/openai")
    with pytest.raises(SealBroken):
        Sealer(secret, purpose).open(sealed, context)


def test_altered_or_malformed_values_do_not_open() -> None:
    sealer = Sealer(SECRET, "keys")
    sealed = sealer.seal("sk-plaintext", "ctx")
    raw = bytearray(base64.urlsafe_b64decode(sealed[3:]))
    raw[-1] ^= 1
    for bad in ("v1." + base64.urlsafe_b64encode(bytes(raw)).decode(), "v2." + sealed[3:], "v1.!!!", "v1.", "plain"):
        with pytest.raises(SealBroken):
            sealer.open(bad, "ctx")


def test_an_empty_secret_is_refused_and_nothing_shows_in_a_repr() -> None:
    with pytest.raises(ValueError):
        Sealer("", "keys")
    assert SECRET not in repr(Sealer(SECRET, "keys"))
