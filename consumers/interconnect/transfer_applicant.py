"""The applicant of a `transfer`, opened only as it is sent, only for an entitled province.

The outbox holds a transfer's applicant sealed (schemas.interconnect.TransferBody's
`sealed_applicant`), as the log does: waiting in the outbox is no way around an erasure. The
delivery worker hands each envelope through `opened` before it goes out: the applicant is
opened under the dossier's key if the registry marks the province `entitled_to_personal_data`,
and left out if it is not or the key was erased. The sealed form never leaves the gateway.
"""

from __future__ import annotations

import msgspec
from nats.aio.client import Client

from plumbing.dossier_keys import DossierKeys
from plumbing.jetstream import JetStream
from plumbing.personal_data import Purpose, may_open, open_sealed
from schemas.codec import ENCODER, decode_body
from schemas.interconnect import Envelope, EnvelopeKind, TransferBody
from schemas.registry import Unit

_ENVELOPE = msgspec.json.Decoder(Envelope)


class TransferApplicants:
    def __init__(self, client: Client, timeout: float) -> None:
        self.keys = DossierKeys(JetStream(client, timeout))

    async def opened(self, data: bytes, province: Unit) -> bytes:
        """The envelope as the province gets it. Raises KekError when the KEK cannot open the
        key, LogUnavailable when the key store cannot be read now (either way the delivery is
        retried, as for any other failure)."""
        try:
            envelope = _ENVELOPE.decode(data)
        except msgspec.DecodeError:
            return data  # not ours to judge: sent as it is, as before
        if envelope.kind is not EnvelopeKind.TRANSFER:
            return data
        body = decode_body(EnvelopeKind.TRANSFER, envelope.body)
        assert isinstance(body, TransferBody)
        if body.sealed_applicant is None:
            return data
        applicant = None
        if province.entitled_to_personal_data and may_open(None, Purpose.TRANSFER):
            key = await self.keys.get(envelope.unit, envelope.dossier_id)
            if key is not None:  # None: erased while the transfer waited
                applicant = open_sealed(
                    key, envelope.unit, envelope.dossier_id, body.sealed_applicant
                )
        body = msgspec.structs.replace(body, applicant=applicant, sealed_applicant=None)
        sent = msgspec.structs.replace(envelope, body=msgspec.Raw(ENCODER.encode(body)))
        return ENCODER.encode(sent)
