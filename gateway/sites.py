"""Ward sites: a unit whose entities are written on its own nats-server, in its own office.

A site's server is a leaf node of the city's with its own JetStream domain (`site-<code>`), so it
keeps a complete event log, event-id index and inbound records of its own, and the gateway there
answers the ward's system by the contract whether or not the city is reachable. Exactly one
gateway writes each unit's entities (`Writer`): the site's for its units, the city's for the
rest. A request that reaches a gateway that does not write the unit is relayed to the one that
does (`onestop.site.<site>.submit.<unit>`, `onestop.site.<site>.inbound.<unit>`, subscribed only
by that site's gateway, across the leaf connection), or answered `unavailable` (safe to retry)
when it cannot be reached: nothing is ever written on the wrong side.

The city takes the site's events in with a JetStream mirror of the site's log across the leaf
connection (gateway.site_catchup), and appends them to its own log through its gateway's
intake, in order, once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import nats.errors
from nats.aio.client import Client

from gateway.refusals import Malformed, Unavailable
from gateway.submit import event_id_of, split_submission
from plumbing.sites import ask_site
from schemas.codec import ENCODER
from schemas.registry import Registry

SITE_PREFIX = "onestop.site"
RELAY_TIMEOUT = 30.0
"""A relayed batch of 1,000 events may take the site a while; a resend is always safe."""

Handler = Callable[[str, bytes], Awaitable[bytes]]


def relay_subject(site: str, kind: str, unit: str) -> str:
    """Where the site's gateway takes requests relayed to it (`kind`: submit or inbound)."""
    return f"{SITE_PREFIX}.{site}.{kind}.{unit}"


class Writer:
    """Which gateway writes which unit's entities: the city's (`site` None) or a site's."""

    def __init__(self, registry: Registry, site: str | None = None) -> None:
        if site is not None and (site not in registry or not registry[site].site):
            raise ValueError(f"unit {site} is not marked as a site in the registry")
        self.registry = registry
        self.site = site

    def writes(self, unit: str) -> bool:
        """Whether this gateway writes the unit (an unknown unit: the city's, which refuses it)."""
        owner = self.registry.site_of(unit) if unit in self.registry else None
        return owner == self.site

    def route(self, client: Client, kind: str, handle: Handler) -> Handler:
        """`handle` for the units written here; a relay to the writing site, else `unavailable`."""

        async def routed(unit: str, payload: bytes) -> bytes:
            if self.writes(unit):
                return await handle(unit, payload)
            owner = self.registry.site_of(unit)
            if self.site is None and owner is not None:
                subject = relay_subject(owner, kind, unit)
                try:
                    reply = await ask_site(client, owner, subject, payload, RELAY_TIMEOUT)
                    return reply.data
                except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                    cut_off = Unavailable(
                        f"the site of unit {unit} ({owner}) is not reachable now (its link to "
                        "the city is down); retry, nothing was stored"
                    )
                    return unreachable(kind, payload, cut_off)
            where = f"site {owner}" if owner is not None else "the city's gateway"
            elsewhere = Unavailable(f"unit {unit} is written by {where}, not here; retry")
            return unreachable(kind, payload, elsewhere)

        return routed


def unreachable(kind: str, payload: bytes, refusal: Unavailable) -> bytes:
    """The `unavailable` answer, in the shape of the request's reply (one per submitted event)."""
    if kind != "submit":
        return ENCODER.encode(refusal.reply(None))
    try:
        items, is_batch = split_submission(payload)
    except Malformed:  # one answer for the whole submission, as the gateway gives
        return ENCODER.encode(refusal.reply(None))
    replies = [refusal.reply(event_id_of(item)) for item in items]
    return ENCODER.encode(replies if is_batch else replies[0])
