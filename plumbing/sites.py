"""Ward sites, what every side shares about them: a site's JetStream domain, the subjects its
leaf connection keeps local, its server's configuration, and the city's mirror of its log with
the checkpoint of how far the city has taken it in."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from pathlib import Path

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import (
    ExternalStream,
    KeyValueConfig,
    StorageType,
    StreamConfig,
    StreamSource,
)
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from plumbing.streams import (
    DISCLOSURES_PREFIX,
    ERASURES_PREFIX,
    EVENT_IDS_PREFIX,
    EVENTS_STREAM,
    KEYS_PREFIX,
    OPERATIONS_PREFIX,
    OUTBOX_PREFIX,
    SEALS_SUBJECT,
)
from plumbing.subjects import EVENTS_PREFIX, REPORTS_PREFIX

KEPT_LOCAL = (
    f"{EVENTS_PREFIX}.>",
    f"{EVENT_IDS_PREFIX}.>",
    f"{OUTBOX_PREFIX}.>",
    f"{REPORTS_PREFIX}.>",
    SEALS_SUBJECT,
    f"{OPERATIONS_PREFIX}.>",
    # #11's key store and records: a site's dossier keys stay in its own office (see README).
    f"{KEYS_PREFIX}.>",
    f"{ERASURES_PREFIX}.>",
    f"{DISCLOSURES_PREFIX}.>",
    "$KV.>",
    "$O.>",
)
"""The subjects of the gateway's streams and buckets, which both sides have: the leaf
connection carries none of them either way, or a stream on one side would also store what is
published on the other (the city's log the site's appends, one site's log another's). The city
gets a site's events through the mirror, by the site's JetStream domain API only."""


def site_domain(code: str) -> str:
    """The JetStream domain of a site's server."""
    return f"site-{code}"


NO_RESPONDERS = "503"


async def ask_site(client: Client, site: str, subject: str, payload: bytes, timeout: float) -> Msg:
    """A request to a site across its leaf connection, answered on the requester's inbox lane
    for that site (`<its inbox prefix>.site-<code>.<unique>`). A site's leaf connection may
    publish on its own lane of the city parties' inboxes only (lienthong.parties.
    site_permissions), so a site answers what was asked of it and cannot put a message on the
    rest of their inboxes (other sites' answers, JetStream's replies to the city's gateway).

    Raises nats' NoRespondersError (nobody serves `subject`: the link is down) or TimeoutError."""
    unique = client.new_inbox()  # the connection's own inbox prefix, and a unique token
    prefix, token = unique.rsplit(".", 1)
    inbox = f"{prefix}.{site_domain(site)}.{token}"
    sub = await client.subscribe(inbox, max_msgs=1)
    try:
        await client.publish(subject, payload, reply=inbox)
        msg = await sub.next_msg(timeout)
    finally:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()
    if msg.headers and msg.headers.get("Status") == NO_RESPONDERS:
        raise nats.errors.NoRespondersError
    return msg


class LeafTls(msgspec.Struct, frozen=True, kw_only=True):
    """The TLS of a site's leaf connection: the CA it verifies the city's servers with, and the
    client certificate it presents (the city's leaf port accepts only its own CA's)."""

    ca: Path
    cert: Path
    key: Path


class SiteServer(msgspec.Struct, frozen=True, kw_only=True):
    """A site's nats-server, a leaf node of the city's: the one way its configuration is
    written, by `lienthong site init` and by `lienthong security init` (its `leaf/<code>.conf`)."""

    code: str
    city_leaf_urls: tuple[str, ...]
    listen: str = "127.0.0.1:4222"
    store_dir: Path = Path("/var/lib/lienthong/nats")
    leaf_credentials: Path | None = None
    """A `.creds` file for the city's leaf port; none: the URLs carry the site party's user and
    password (`security init`), or the port is open (a trial)."""
    leaf_tls: LeafTls | None = None
    authorization: str | None = None
    """The file of the site's own users (`security init`'s `leaf/<code>-authorization.conf`),
    included relative to this configuration; none: no authorization (a trial)."""
    leaf_reconnect_seconds: float = 5.0

    def config(self) -> str:
        domain = site_domain(self.code)
        return (
            f"# lienthong: the site of unit {self.code}, a leaf node of the city's servers.\n"
            "# Its own JetStream domain keeps the site's log complete while the link is down;\n"
            f"# the city mirrors it through $JS.{domain}.API when the link is up.\n"
            f'server_name: "site-{self.code}"\n'
            f"listen: {self.listen}\n"
            "max_payload: 8MB\n"
            f"jetstream {{\n  store_dir: {_q(str(self.store_dir))}\n  domain: {domain}\n}}\n"
            + (f"include {_q(self.authorization)}\n" if self.authorization else "")
            + self.leaf_block()
        )

    def leaf_block(self) -> str:
        """The part that makes a server this site's leaf (also used by the embedded server)."""
        urls = ", ".join(_q(u) for u in self.city_leaf_urls)
        creds = (
            f"\n      credentials: {_q(str(self.leaf_credentials))}"
            if self.leaf_credentials
            else ""
        )
        tls = (
            f"\n      tls {{ ca_file: {_q(str(self.leaf_tls.ca))}, "
            f"cert_file: {_q(str(self.leaf_tls.cert))}, key_file: {_q(str(self.leaf_tls.key))} }}"
            if self.leaf_tls is not None
            else ""
        )
        local = ", ".join(_q(s) for s in KEPT_LOCAL)
        return (
            "leafnodes {\n"
            f'  reconnect: "{self.leaf_reconnect_seconds:g}s"\n'
            "  remotes: [\n"
            "    {\n"
            f"      urls: [{urls}]{creds}{tls}\n"
            f"      deny_imports: [{local}]\n"
            f"      deny_exports: [{local}]\n"
            "    }\n"
            "  ]\n"
            "}\n"
        )


def _q(text: str) -> str:
    """A quoted string of the NATS configuration format (JSON's quoting is a subset of it)."""
    return json.dumps(text)


SITES_BUCKET = "ONESTOP_SITES"
"""Per site, how far the city's log has taken the site's events in (a Checkpoint)."""


def mirror_name(site: str) -> str:
    return f"ONESTOP_SITE_{site}"


def mirror_config(site: str, replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        name=mirror_name(site),
        description=f"lienthong: the event log of site {site}, mirrored from its own domain",
        mirror=StreamSource(
            name=EVENTS_STREAM, external=ExternalStream(api=f"$JS.{site_domain(site)}.API")
        ),
        storage=StorageType.FILE,
        num_replicas=replicas,
        allow_direct=True,
        # The city's copy of a site's evidence: nobody takes it back through the API.
        deny_delete=True,
        deny_purge=True,
    )


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    mirror_seq: int = 0
    """The last mirror sequence whose event is in the city's log (or was refused there)."""
    refused: int = 0
    """Events the city's log refused (a conflict: the site and the city disagree)."""
    at: datetime | None = None


_CHECKPOINT = msgspec.json.Decoder(Checkpoint)


async def sites_bucket(client: Client, replicas: int = 1) -> KeyValue:
    js = client.jetstream()
    try:
        return await js.key_value(SITES_BUCKET)
    except (BucketNotFoundError, NotFoundError):
        return await js.create_key_value(
            KeyValueConfig(
                bucket=SITES_BUCKET,
                description="lienthong: how far each site's events are in the city's log",
                storage=StorageType.FILE,
                replicas=replicas,
                history=1,
            )
        )


async def read_checkpoint(kv: KeyValue, site: str) -> Checkpoint:
    try:
        entry = await kv.get(site)
    except NotFoundError:  # KeyNotFoundError too
        return Checkpoint()
    return _CHECKPOINT.decode(entry.value) if entry.value else Checkpoint()
