"""Encryption at rest: the key ring of ``ENCRYPTION_KEYS`` and its AES-GCM envelopes.

``ENCRYPTION_KEYS`` is ``id:base64key,...``; the first key encrypts, every key
decrypts (so an old key keeps reading what it wrote until ``rotate-keys`` has moved
everything to the first one). Keys are 16, 24 or 32 bytes: AES-128, -192 or -256.

Every value is sealed on its own: a random 96-bit nonce, AES-GCM, and associated
data that names the format, the key id and the value's place (the assessment id and
the field, see ``at_rest``), so a value copied to another row or another column, or
relabelled with another key id, fails its tag check instead of decrypting. A
ciphertext is ``base64(nonce | ciphertext | tag)``, kept with its key id in one of
two envelopes: ``enc:v1:<kid>:<ciphertext>`` in a text column, and
``{"$enc": "v1", "kid": ..., "data": ...}`` in a JSONB one (still a JSON object, so
the columns' constraints hold).

Nothing here ever puts key material in a message: a bad setting is described by the
position of its entry, never by its text (an entry that lacks its colon is all key).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from assessment_store.errors import ConfigurationError, DecryptionError

SETTING: Final = "ASSESSMENT_STORE_ENCRYPTION_KEYS"
VERSION: Final = "v1"
TEXT_PREFIX: Final = f"enc:{VERSION}:"
JSON_MARKER: Final = "$enc"
NONCE_BYTES: Final = 12
KEY_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
KEY_SIZES: Final = {16: "AES-128", 24: "AES-192", 32: "AES-256"}
_BASE64: Final = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_TEXT_ENVELOPE: Final = re.compile(
    re.escape(TEXT_PREFIX) + r"(?P<kid>[A-Za-z0-9_-]{1,64}):(?P<data>[A-Za-z0-9+/]+={0,2})"
)
_JSON_KEYS: Final = frozenset({JSON_MARKER, "kid", "data"})
_AAD_HEAD: Final = f"assessment-store\x00{VERSION}\x00".encode()


def parse_keys(value: str) -> list[tuple[str, bytes]]:
    """The (id, key) pairs of the setting, in order; ValueError naming each bad entry
    by its position only."""
    entries = [entry.strip() for entry in value.split(",")]
    if not any(entries):
        raise ValueError(
            "must list at least one id:base64key (leave the variable unset to turn encryption off)"
        )
    keys: list[tuple[str, bytes]] = []
    problems: list[str] = []
    first_entry_of: dict[str, int] = {}
    for number, entry in enumerate(entries, start=1):
        key_id, colon, encoded = entry.partition(":")
        key_id, encoded = key_id.strip(), encoded.strip()
        if not colon:
            problems.append(f"entry {number} is not id:base64key")
            continue
        if not KEY_ID.fullmatch(key_id):
            problems.append(f"entry {number}: the key id must be 1-64 letters, digits, '_' or '-'")
            continue
        key = _decode_key(encoded)
        if key is None:
            problems.append(f"entry {number}: the key is not base64")
            continue
        if len(key) not in KEY_SIZES:
            problems.append(
                f"entry {number}: the key is {len(key)} bytes, not 16, 24 or 32 "
                "(AES-128, -192, -256)"
            )
            continue
        if key_id in first_entry_of:
            problems.append(f"entries {first_entry_of[key_id]} and {number} have the same key id")
            continue
        first_entry_of[key_id] = number
        keys.append((key_id, key))
    if problems:
        raise ValueError("; ".join(problems))
    return keys


def _decode_key(encoded: str) -> bytes | None:
    """Standard or URL-safe base64 (padding optional); None if it is neither."""
    standard = encoded.replace("-", "+").replace("_", "/")
    standard += "=" * (-len(standard) % 4)
    if not _BASE64.fullmatch(standard):
        return None
    try:
        return base64.b64decode(standard, validate=True)
    except (binascii.Error, ValueError):
        return None


class KeyRing:
    """The keys of ``ENCRYPTION_KEYS``: the first encrypts, all decrypt. Holds no key
    bytes in any attribute a repr or a log could show."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise ConfigurationError(f"{SETTING}: no keys")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys}
        self.ids: tuple[str, ...] = tuple(key_id for key_id, _ in keys)
        self.current_id: str = self.ids[0]

    @classmethod
    def from_setting(cls, value: str) -> KeyRing:
        """The ring of the setting's text; ConfigurationError naming the setting (and
        never repeating its text) when it is malformed."""
        try:
            return cls(parse_keys(value))
        except ValueError as exc:
            raise ConfigurationError(f"{SETTING}: {exc}") from None

    def __repr__(self) -> str:
        return f"KeyRing(ids={list(self.ids)!r})"

    def encrypt(self, plaintext: bytes, place: bytes) -> tuple[str, str]:
        """(the current key id, base64 of nonce|ciphertext|tag) of ``plaintext``,
        bound to ``place`` (see ``at_rest``)."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.current_id].encrypt(
            nonce, plaintext, _aad(self.current_id, place)
        )
        return self.current_id, base64.b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, key_id: str, data: str, place: bytes, *, what: str) -> bytes:
        """The plaintext of an envelope's parts; DecryptionError (saying which key, never
        any key material) when the key is not held, is the wrong one, or the value was
        altered or moved."""
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise DecryptionError(
                f"{what}: value encrypted with key {key_id!r}, which {SETTING} does not "
                f"hold (it holds {', '.join(repr(i) for i in self.ids)}); nothing was changed"
            )
        try:
            blob = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise DecryptionError(f"{what}: not a well-formed encrypted value") from None
        if len(blob) <= NONCE_BYTES + 16:
            raise DecryptionError(f"{what}: not a well-formed encrypted value")
        try:
            return cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(key_id, place))
        except InvalidTag:
            raise DecryptionError(
                f"{what}: value encrypted with key {key_id!r} does not decrypt with the key "
                f"{SETTING} holds under that id (a different key, or the value was altered "
                "or copied from another assessment or field); nothing was changed"
            ) from None


def _aad(key_id: str, place: bytes) -> bytes:
    return _AAD_HEAD + key_id.encode("ascii") + b"\x00" + place


def not_held(key_id: str, what: str) -> DecryptionError:
    """The error for an encrypted value met while encryption is off."""
    return DecryptionError(
        f"{what}: value encrypted with key {key_id!r}, but {SETTING} is not set "
        "(every process needs the same keys)"
    )


# -- the two envelopes ---------------------------------------------------------------


def text_envelope(key_id: str, data: str) -> str:
    return f"{TEXT_PREFIX}{key_id}:{data}"


def parse_text_envelope(value: str, what: str) -> tuple[str, str] | None:
    """(key id, data) of a text envelope; None for plaintext. A value that starts like
    an envelope but is not one is DecryptionError (never shown as if it were text)."""
    if not value.startswith(TEXT_PREFIX):
        return None
    match = _TEXT_ENVELOPE.fullmatch(value)
    if match is None:
        raise DecryptionError(f"{what}: not a well-formed encrypted value")
    return match["kid"], match["data"]


def json_envelope(key_id: str, data: str) -> dict[str, str]:
    return {JSON_MARKER: VERSION, "kid": key_id, "data": data}


def parse_json_envelope(value: Mapping[str, Any], what: str) -> tuple[str, str] | None:
    """(key id, data) of a JSON envelope (exactly its three keys, "$enc": "v1"); None
    for any other object, which is plaintext."""
    if JSON_MARKER not in value or value.keys() != _JSON_KEYS or value[JSON_MARKER] != VERSION:
        return None
    key_id, data = value["kid"], value["data"]
    if not (isinstance(key_id, str) and KEY_ID.fullmatch(key_id) and isinstance(data, str)):
        raise DecryptionError(f"{what}: not a well-formed encrypted value")
    return key_id, data
