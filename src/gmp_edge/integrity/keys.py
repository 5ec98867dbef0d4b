"""The edge box's evidence signing key: Ed25519, kept beside the store.

The private key is a PKCS#8 PEM file ``<store>.evidence-key.pem`` created on first use
with mode 0600 (only the service account can read it). Its public half travels in every
evidence package; the fingerprint (SHA-256 of the 32 raw public-key bytes, hex) is what a
reviewer compares with the value recorded for the box (validation file, the box's page),
because a package signed by *some* key proves nothing about *which* box made it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gmp_edge.errors import GmpEdgeError

KEY_SUFFIX = ".evidence-key.pem"


class SigningKeyError(GmpEdgeError, RuntimeError):
    """The key file exists but is not a usable Ed25519 private key."""


def key_path_for(store_path: str | Path) -> Path:
    """Where the key of the store at ``store_path`` lives: ``<store>.evidence-key.pem``."""
    p = Path(store_path)
    return p.with_name(p.name + KEY_SUFFIX)


def _load(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(
            f"{path}: not a readable unencrypted PEM private key ({exc})"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: not an Ed25519 key ({type(key).__name__})")
    return key


def load_or_create(path: str | Path) -> Ed25519PrivateKey:
    """The signing key in ``path``; a new one is generated (mode 0600) if there is none.

    Creation is exclusive (``O_EXCL``): two processes starting together end up with the
    same key, never with one overwriting the other's.
    """
    path = Path(path)
    if path.exists():
        return _load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _load(path)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


def public_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The public key as SubjectPublicKeyInfo PEM (what ``public_key.pem`` holds)."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """SHA-256 (hex) of the 32 raw public-key bytes."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()
