"""The headers lienthong writes on the event log's messages, and the msg id of an event."""

from __future__ import annotations

from plumbing.subjects import encode_key

MSG_ID = "Nats-Msg-Id"
DOSSIER_STATE = "Lienthong-Dossier"
"""Header: the dossier's state after this event (lifecycle.DossierState as JSON)."""
ORIGIN = "Lienthong-Origin"
"""Header: `province` on events that came from the province over interconnection."""
ORIGIN_MESSAGE_ID = "Lienthong-Message-Id"
"""Header: the interconnection message_id an inbound event came from."""


def msg_id(unit: str, event_id: str) -> str:
    """JetStream's Nats-Msg-Id of an event: event_ids are unique per unit, not across units.

    The id is escaped: nats-py strips a header value's surrounding whitespace and turns CR/LF
    into spaces, which would give `E` and `E ` one msg id. The escaped form survives as is, so
    it also reads back equal to what was written.
    """
    return f"{unit}:{encode_key(event_id)}"
