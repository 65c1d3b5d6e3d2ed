"""Whether a message of the event log was written by the gateway, judged from what it stores.

The gateway appends each event on its entity's subject (`onestop.events.<unit>.<entity>.<key>`)
with `Nats-Msg-Id` = `<unit>:<key of event_id>` (gateway.event_log.msg_id). Anything published
to the stream around the gateway (by whoever holds the rights) misses one of those, unless made
to look the part; so a message that does not is evidence that the log was written to behind the
gateway's back. A message in the gateway's form that this version cannot read (an event type of
a newer version) is reported as unreadable, not as tampering.
"""

from __future__ import annotations

import msgspec
from nats.aio.msg import Msg

from plumbing.headers import MSG_ID, msg_id
from plumbing.subjects import EVENTS_PREFIX, event_subject
from schemas.events import Event


class _Head(msgspec.Struct):
    """The two fields every event has that say who wrote it, readable from any version's."""

    unit: str
    event_id: str


_HEAD = msgspec.json.Decoder(_Head)


def not_the_gateways(msg: Msg, event: Event | None) -> str | None:
    """Why `msg` (holding `event`, None if unreadable) was not written by the gateway, or None."""
    headers = msg.headers or {}
    if event is None:
        try:
            head = _HEAD.decode(msg.data)
        except msgspec.DecodeError:
            return "not an event in any version's form: not written by the gateway"
        if not msg.subject.startswith(f"{EVENTS_PREFIX}.{head.unit}."):
            return f"its subject is not one of unit {head.unit}'s: not written by the gateway"
        unit, event_id = head.unit, head.event_id
    else:
        if msg.subject != event_subject(event.unit, event.entity, event.entity_id):
            return "its subject is not its entity's: not written by the gateway"
        unit, event_id = event.unit, event.event_id
    if headers.get(MSG_ID) != msg_id(unit, event_id):
        return "its Nats-Msg-Id is not the gateway's for its event_id: not written by the gateway"
    return None
