"""The province's witness copy of the seals: a JetStream mirror of ONESTOP_SEALS on the
province's own server, kept by NATS itself across a leaf node connection.

The city's and the province's servers are separate JetStream domains joined by a leaf node
(`deploy/witness/`); the province's stream mirrors the city's seals through the city's domain
API (`$JS.<city domain>.API`). Seals flow one way, the province keeps every one (deletes and
purges denied), and the province's leaf connection does not import its own domain's API, so
nobody on the city's side can reach the copy to rewrite it. `lienthong verify --witness URL`
then holds the city's log against the copy (consumers.audit.verify).
"""

from __future__ import annotations

from nats.aio.client import Client
from nats.js.api import ExternalStream, StorageType, StreamConfig, StreamSource
from nats.js.errors import NotFoundError

from plumbing.streams import SEALS_STREAM

WITNESS_STREAM = "ONESTOP_SEALS_WITNESS"
"""The copy's default name on the province's server (one per city witnessed: name each)."""


def witness_config(city_domain: str, name: str = WITNESS_STREAM) -> StreamConfig:
    """A stream on the province's server that mirrors the city's ONESTOP_SEALS."""
    return StreamConfig(
        name=name,
        description=f"lienthong witness: the seals of JetStream domain {city_domain!r}",
        mirror=StreamSource(
            name=SEALS_STREAM, external=ExternalStream(api=f"$JS.{city_domain}.API")
        ),
        storage=StorageType.FILE,
        # Evidence: nothing the mirror brought in is ever taken back through the API.
        deny_delete=True,
        deny_purge=True,
        allow_direct=True,
    )


async def keep_witness(province: Client, city_domain: str, name: str = WITNESS_STREAM) -> bool:
    """Create the witness stream on the province's server; False if it existed already (as it
    was: a mirror's source cannot be changed, so an existing one is left alone)."""
    js = province.jetstream()
    try:
        await js.stream_info(name)
    except NotFoundError:
        await js.add_stream(witness_config(city_domain, name))
        return True
    return False
