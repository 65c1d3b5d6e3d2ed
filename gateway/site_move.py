"""Moving a ward between the city's gateway and a site of its own, losing nothing, doubling
nothing (deploy/site/README.md says the steps).

To a site: its history is copied from the city's log into the site's, through the site's own
intake, in log order: the site then knows every dossier's state and every event_id, so the
ward's system goes on exactly where it was (a resend of an old event is a duplicate). The city's
catch-up later reads those copies back from the site's mirror: its event-id index has them
all, so they are duplicates there and appended nowhere. Copying twice is harmless for the same
reason.

Back to the city: nothing is copied. The city's log took every site event in through its
intake, so once the city has caught up with the site (`lienthong status`), unmarking the site
in the registry hands the ward back to the city's gateway with its history and event ids.
"""

from __future__ import annotations

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from gateway.event_index import EventIndex
from gateway.event_log import EventLog
from gateway.intake import Candidate, Intake
from gateway.site_catchup import candidate
from plumbing.jetstream import Delivery, JetStream
from plumbing.replay import replay
from plumbing.settings import StreamSettings
from plumbing.streams import provision
from schemas.registry import Registry
from schemas.replies import Accepted

BATCH = 500


class Copied(msgspec.Struct, frozen=True, kw_only=True):
    stored: int
    duplicates: int
    refused: int


async def seed_site(
    city_client: Client,
    site_client: Client,
    registry: Registry,
    site: str,
    streams: StreamSettings,
    timeout: float,
) -> Copied:
    """Copy the events of the site's units from the city's log into the site's log."""
    history: list[Candidate] = []

    def take(_: Delivery, msg: Msg) -> bool:
        unit = msg.subject.split(".")[2]
        if unit in registry and registry.site_of(unit) == site:
            history.append(candidate(msg))
        return True

    await replay(city_client, take)
    await provision(site_client, streams)
    js = JetStream(site_client, timeout)
    intake = Intake(EventLog(js), EventIndex(js))
    stored = duplicates = refused = 0
    for start in range(0, len(history), BATCH):
        for reply in await intake.record(history[start : start + BATCH]):
            if not isinstance(reply, Accepted):
                refused += 1
            elif reply.duplicate:
                duplicates += 1
            else:
                stored += 1
    return Copied(stored=stored, duplicates=duplicates, refused=refused)
