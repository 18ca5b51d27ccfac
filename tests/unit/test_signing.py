"""Release signatures: Ed25519 keys, verification, clear refusals."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dragonball.release import signing


def test_a_signature_verifies_with_its_key_and_fails_with_another():
    private_pem, public_pem = signing.new_key_pair()
    key = signing.load_private(private_pem, "k")
    public = signing.load_public(public_pem, "p")
    signature = key.sign(b"manifest")
    signing.verify(public, signature, b"manifest", "m")
    with pytest.raises(signing.SignatureError, match="does not match"):
        signing.verify(public, signature, b"manifest!", "m")
    other = signing.load_public(signing.new_key_pair()[1], "o")
    with pytest.raises(signing.SignatureError, match=signing.fingerprint(other)):
        signing.verify(other, signature, b"manifest", "m")


def test_keys_that_are_not_ed25519_or_not_pem_are_refused():
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    with pytest.raises(signing.KeyInvalid, match="not an Ed25519"):
        signing.load_private(ec_pem, "ec.key")
    with pytest.raises(signing.KeyInvalid, match="keygen"):
        signing.load_private(b"junk", "junk.key")
    with pytest.raises(signing.KeyInvalid, match="not a PEM public key"):
        signing.load_public(b"junk", "junk.pub")
