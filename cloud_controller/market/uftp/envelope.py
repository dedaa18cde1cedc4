"""UFTP's SignedMessage envelope: the inner XML sealed with Ed25519 (libsodium's `crypto_sign`).

A sealed body is the 64-byte Ed25519 signature followed by the signed bytes (libsodium's
attached signature, what shapeshifter-uftp's `seal_message` makes with PyNaCl); here it is
made and opened with `cryptography`. Keys travel as base64: the public key is 32 bytes;
the private key, as the library takes it, is libsodium's 64-byte seed ‖ public key.
Keys are generated at start (`SigningKey.generate()`), never stored in the repository.
"""

from __future__ import annotations

import base64
import binascii
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cloud_controller.market.uftp.codec import DECLARATION, MAX_XML_BYTES, XmlError
from cloud_controller.market.uftp.messages import DOMAIN, Role

__all__ = ["BadSignature", "Envelope", "SigningKey", "open_envelope", "parse_envelope", "seal", "verify_key"]

SIGNATURE_BYTES = 64


class BadSignature(XmlError):
    """The body's signature does not verify under the sender's key."""


class SigningKey:
    """An Ed25519 key pair of one UFTP participant."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public_bytes = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def generate(cls) -> SigningKey:
        """A new key pair (at start; never written to the repository)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_b64(cls, private_b64: str) -> SigningKey:
        """From the library's base64 private key (64 bytes: seed ‖ public) or a bare 32-byte seed."""
        raw = base64.b64decode(private_b64, validate=True)
        if len(raw) not in (32, 64):
            raise ValueError(f"an Ed25519 private key is 32 or 64 bytes, not {len(raw)}")
        key = cls(Ed25519PrivateKey.from_private_bytes(raw[:32]))
        if len(raw) == 64 and raw[32:] != key.public_bytes:
            raise ValueError("the private key's public half does not match its seed")
        return key

    @property
    def public_b64(self) -> str:
        """The public key, base64, for the peers' configuration."""
        return base64.b64encode(self.public_bytes).decode()

    @property
    def private_b64(self) -> str:
        """The private key in libsodium's form (seed ‖ public), what shapeshifter-uftp's `signing_key` takes."""
        seed = self._private.private_bytes_raw()
        return base64.b64encode(seed + self.public_bytes).decode()

    def sign(self, data: bytes) -> bytes:
        """`crypto_sign`: signature ‖ data."""
        return self._private.sign(data) + data


def verify_key(public_b64: str) -> Ed25519PublicKey:
    """A peer's public key from base64 (ValueError when it is not 32 bytes)."""
    try:
        raw = base64.b64decode(public_b64, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not base64: {exc}") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, not {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


@dataclass(frozen=True)
class Envelope:
    """A SignedMessage as received: who claims to send it, and the sealed body."""

    sender_domain: str
    sender_role: Role
    body: bytes


def seal(inner_xml: bytes, key: SigningKey, sender_domain: str, sender_role: Role) -> bytes:
    """The SignedMessage XML carrying `inner_xml` signed by `key`."""
    body = base64.b64encode(key.sign(inner_xml)).decode()
    attrs = (
        f"SenderDomain={quoteattr(sender_domain)} SenderRole={quoteattr(sender_role)} Body={quoteattr(body)}"
    )
    return f"{DECLARATION}<SignedMessage {attrs}/>\n".encode()


def parse_envelope(data: bytes) -> Envelope:
    """The envelope's attributes (unverified), or XmlError naming what is wrong."""
    if len(data) > 2 * MAX_XML_BYTES:
        raise XmlError(f"envelope of {len(data)} bytes exceeds {2 * MAX_XML_BYTES}")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise XmlError("a DOCTYPE or entity declaration is not allowed")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise XmlError(f"not well-formed XML: {exc}") from None
    if root.tag != "SignedMessage":
        raise XmlError(f"expected <SignedMessage>, got <{root.tag}>")
    missing = [a for a in ("SenderDomain", "SenderRole", "Body") if a not in root.attrib]
    if missing:
        raise XmlError(f"SignedMessage: missing {', '.join(missing)}")
    extra = sorted(set(root.attrib) - {"SenderDomain", "SenderRole", "Body"})
    if extra or len(root):
        raise XmlError(f"SignedMessage: unexpected {', '.join(extra) or 'child element'}")
    domain, role = root.attrib["SenderDomain"], root.attrib["SenderRole"]
    if not re.fullmatch(DOMAIN.strip("^$"), domain):
        raise XmlError(f"SignedMessage@SenderDomain: {domain!r} is not a domain")
    if role not in ("DSO", "AGR"):
        raise XmlError(f"SignedMessage@SenderRole: {role!r} is not DSO or AGR")
    try:
        body = base64.b64decode(root.attrib["Body"], validate=True)
    except binascii.Error as exc:
        raise XmlError(f"SignedMessage@Body: not base64 ({exc})") from None
    return Envelope(domain, role, body)  # type: ignore[arg-type]  # role checked above


def open_envelope(env: Envelope, public: Ed25519PublicKey) -> bytes:
    """The inner XML if the body's signature verifies under `public`, else BadSignature."""
    if len(env.body) < SIGNATURE_BYTES:
        raise BadSignature(f"body of {len(env.body)} bytes is shorter than a signature")
    signature, inner = env.body[:SIGNATURE_BYTES], env.body[SIGNATURE_BYTES:]
    try:
        public.verify(signature, inner)
    except InvalidSignature:
        raise BadSignature(
            f"signature does not verify under the key of {env.sender_domain} ({env.sender_role})"
        ) from None
    return inner
