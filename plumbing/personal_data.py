"""Sealing and opening an applicant's personal data, and comparing events that carry it.

Units submit the plain `applicant` (CONTRACT section 3); the log holds `sealed_applicant`
instead (schemas.events.SealedApplicant): AES-256-GCM under the dossier's key, with a keyed
hash (HMAC-SHA256 under a key derived from it) so a resend can be told from a conflict without
decrypting. Once the key is destroyed the ciphertext cannot be opened and the hash cannot be
recomputed, so nothing remains against which a guessed name or ID number could be tested.

Who may open: `may_open` is the one place that decides, from the party asking. Until parties
have rights of their own (NATS credentials, issue 10) every party that can read the key store
and the KEK may; the server's permissions on ONESTOP_KEYS and the KEK directory's file mode are
what refuse the others.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets

import msgspec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from plumbing.dossier_keys import context
from plumbing.key_encryption import NONCE_BYTES
from schemas.events import Applicant, DossierReceived, Event, SealedApplicant

_APPLICANT = msgspec.json.Decoder(Applicant)
_ENCODE = msgspec.json.encode
_DIGEST_LABEL = b"lienthong applicant digest v1"


class Purpose(enum.StrEnum):
    """Why personal data is opened: the only reasons there are."""

    TRANSFER = "transfer"
    """The forwarder, for a province the registry marks entitled_to_personal_data."""
    DISCLOSURE = "disclosure"
    """`lienthong history --show-personal-data`, recorded as a disclosure."""


def may_open(party: str | None, purpose: Purpose) -> bool:
    """Whether `party` may open personal data for `purpose`.

    Today every party that reached the key store may (the server's permissions and the KEK's
    file mode are the gate); with per-party credentials this is where a party's right is read.
    """
    del party, purpose
    return True


def digest(key: bytes, applicant: Applicant) -> bytes:
    digest_key = hmac.new(key, _DIGEST_LABEL, hashlib.sha256).digest()
    return hmac.new(digest_key, _ENCODE(applicant), hashlib.sha256).digest()


def seal(key: bytes, unit: str, dossier_id: str, applicant: Applicant) -> SealedApplicant:
    nonce = secrets.token_bytes(NONCE_BYTES)
    ciphertext = AESGCM(key).encrypt(nonce, _ENCODE(applicant), context(unit, dossier_id))
    return SealedApplicant(nonce=nonce, ciphertext=ciphertext, digest=digest(key, applicant))


def open_sealed(key: bytes, unit: str, dossier_id: str, sealed: SealedApplicant) -> Applicant:
    plain = AESGCM(key).decrypt(sealed.nonce, sealed.ciphertext, context(unit, dossier_id))
    return _APPLICANT.decode(plain)


def has_personal_data(event: Event) -> bool:
    return isinstance(event, DossierReceived) and (
        event.applicant is not None or event.sealed_applicant is not None
    )


def sealed_event(event: DossierReceived, key: bytes | None) -> DossierReceived:
    """The event as the log stores it: applicant sealed under `key`; without it if the key was
    erased (the event can then only be a resend, judged without the applicant)."""
    if event.applicant is None:
        return event
    sealed = seal(key, event.unit, event.dossier_id, event.applicant) if key else None
    return msgspec.structs.replace(event, applicant=None, sealed_applicant=sealed)


def comparable(event: Event, *, erased: bool) -> bytes:
    """What a resend is compared on: the event with its sealed applicant reduced to the keyed
    hash (the ciphertext differs at each sealing), or left out once the key is erased."""
    if isinstance(event, DossierReceived) and event.sealed_applicant is not None:
        kept = None if erased else SealedApplicant(nonce=b"", ciphertext=b"", digest=b"")
        if kept is not None:
            kept = msgspec.structs.replace(kept, digest=event.sealed_applicant.digest)
        event = msgspec.structs.replace(event, sealed_applicant=kept)
    return _ENCODE(event)
