"""Who may do what on NATS: the parties of a deployment and the least rights of each role.

One table, pure (a registry in, parties with their permissions out), used by `lienthong security
init` to write the server's authorization and `parties.json`, and by the tests that hold every
right and every refusal against a real nats-server. A later role is one more entry in `Role`
and one more function here (as the ward sites' leaf connections and the dashboard were).

The permissions are NATS subject permissions of static NKey users in one account (see the
README's "Security" section for why): publishing to a JetStream API subject is the right to make
that API call, so "read-only" means being allowed the info, direct-get and ephemeral-consumer
subjects of a stream and none that change it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from pathlib import Path

import msgspec

from consumers.audit.verifications import BUCKET as VERIFICATIONS_BUCKET
from gateway.sites import SITE_PREFIX
from plumbing.lease import LEASES_BUCKET
from plumbing.sites import SITES_BUCKET, mirror_name, site_domain
from plumbing.streams import (
    DISCLOSURES_PREFIX,
    ERASURES_PREFIX,
    EVENTS_STREAM,
    KEYS_PREFIX,
    KEYS_STREAM,
    OPERATIONS_PREFIX,
    OUTBOX_STREAM,
    REPORTS_STREAM,
    SEALS_STREAM,
    SEALS_SUBJECT,
)
from plumbing.subjects import INBOUND_PREFIX, REPORTS_PREFIX, SUBMIT_PREFIX
from schemas.registry import Level, Registry

API = "$JS.API"

DURABLE_CONSUMERS = ("reports-projector", "interconnect-outbox", "interconnect-delivery")
"""The gateway's own durable consumers (their default names): only the gateway deletes them."""

DELIVERIES_BUCKET = "ONESTOP_DELIVERIES"
PARTIES_FILE = "parties.json"


class PartiesError(ValueError):
    """A parties file that cannot be read, or a party that is not in it."""


class Role(enum.StrEnum):
    UNIT = "unit"
    PROVINCE = "province"
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    GATEWAY = "gateway"
    ADMIN = "admin"
    SITE = "site"
    """A ward's or commune's own nats-server, a leaf node of the city's (its leaf connection)."""
    DASHBOARD = "dashboard"
    """The read-only web dashboard (#14): reads what it shows, changes nothing."""
    SITE_GATEWAY = "site-gateway"
    """The gateway on a ward's own server (`serve --site`), known to that server only."""


class Permissions(msgspec.Struct, frozen=True, kw_only=True):
    """NATS permissions of one user: subjects it may publish to and subscribe to."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    publish_deny: tuple[str, ...] = ()
    allow_responses: bool = False
    """May answer requests it received (on their reply subjects, once each) and nothing else."""


class PartyTls(msgspec.Struct, frozen=True, kw_only=True):
    """With `security init --tls`: the CA to verify the server with, and the client
    certificate the party presents (the server accepts only its own CA's). Relative to the
    folder of `parties.json`."""

    ca: str
    cert: str
    key: str


class Party(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One entry of `parties.json`."""

    name: str
    role: Role
    credentials: str
    """The party's NKey seed file (a site's: its leaf connection's password file), relative
    to the folder `parties.json` is in."""
    permissions: Permissions
    public_key: str | None = None
    """The NKey the server knows the party by (a site has a password instead)."""
    unit: str | None = None
    inbox_prefix: str | None = None
    """The `inbox_prefix` its client must connect with: replies to it arrive only there."""
    tls: PartyTls | None = None


class PartiesFile(msgspec.Struct, frozen=True, kw_only=True):
    parties: tuple[Party, ...]


def inbox_prefix(party: str) -> str:
    return f"_INBOX_{party}"


def _inbox(party: str) -> str:
    return f"{inbox_prefix(party)}.>"


def _read_stream(stream: str) -> list[str]:
    """Info, direct gets and ephemeral consumers of one stream.

    `$JS.API.CONSUMER.CREATE.<stream>` with no further token is the ephemeral form: the server
    refuses a durable name on it, so this grants no durable consumer. `$JS.FC.<stream>.>` is
    where an ordered consumer answers the server's flow control."""
    return [
        f"{API}.STREAM.INFO.{stream}",
        f"{API}.DIRECT.GET.{stream}",
        f"{API}.DIRECT.GET.{stream}.>",
        f"{API}.CONSUMER.CREATE.{stream}",
        f"{API}.CONSUMER.INFO.{stream}.*",
        f"$JS.FC.{stream}.>",
    ]


def _below(registry: Registry, code: str) -> list[str]:
    """The unit and every unit below it, depth first."""
    found = [code]
    for child in registry.children(code):
        found += _below(registry, child)
    return found


def unit_permissions(registry: Registry, unit: str, party: str) -> Permissions:
    reports = [
        f"{API}.DIRECT.GET.{REPORTS_STREAM}.{REPORTS_PREFIX}.{u}.*" for u in _below(registry, unit)
    ]
    return Permissions(publish=(f"{SUBMIT_PREFIX}.{unit}", *reports), subscribe=(_inbox(party),))


def province_permissions(registry: Registry, province: str, party: str) -> Permissions:
    """Direct gets of its own units' reports only; its ordered consumers on ONESTOP_REPORTS
    see the whole stream (a consumer's filter is in the request's body, which no permission
    reads), so a deployment serves one province."""
    below = _below(registry, province)
    units = [u for u in below if u != province]
    return Permissions(
        publish=(
            f"{API}.INFO",
            f"{API}.STREAM.NAMES",
            f"{API}.STREAM.INFO.{REPORTS_STREAM}",
            *(f"{API}.DIRECT.GET.{REPORTS_STREAM}.{REPORTS_PREFIX}.{u}.*" for u in below),
            f"{API}.CONSUMER.CREATE.{REPORTS_STREAM}",
            f"{API}.CONSUMER.INFO.{REPORTS_STREAM}.*",
            f"$JS.FC.{REPORTS_STREAM}.>",
            *_read_stream(SEALS_STREAM),
            *(f"{INBOUND_PREFIX}.{u}" for u in units),
        ),
        subscribe=(_inbox(party), f"province.{province}.inbox.>"),
        allow_responses=True,
    )


def operator_permissions(party: str) -> Permissions:
    """Read-only on every stream and bucket (buckets are streams `KV_<b>` and `OBJ_<b>`)."""
    return Permissions(
        publish=(
            f"{API}.INFO",
            f"{API}.STREAM.NAMES",
            f"{API}.STREAM.LIST",
            f"{API}.STREAM.INFO.*",
            f"{API}.DIRECT.GET.>",
            f"{API}.STREAM.MSG.GET.*",
            f"{API}.CONSUMER.CREATE.*",
            f"{API}.CONSUMER.INFO.*.*",
            f"{API}.CONSUMER.NAMES.*",
            f"{API}.CONSUMER.LIST.*",
            # Its own replays' ephemeral consumers; never the gateway's durable ones (below).
            f"{API}.CONSUMER.DELETE.*.*",
            "$JS.FC.>",
            "$SYS.REQ.USER.INFO",
            # #13: `status` asks each ward site's log how far it is, across its leaf.
            SITE_LOG_INFO,
        ),
        publish_deny=(
            *(f"{API}.CONSUMER.DELETE.*.{d}" for d in DURABLE_CONSUMERS),
            # #11: the wrapped dossier keys are the supervisor's to read (and erase), not its.
            f"{API}.DIRECT.GET.{KEYS_STREAM}.>",
            f"{API}.STREAM.MSG.GET.{KEYS_STREAM}",
        ),
        subscribe=(_inbox(party),),
    )


def supervisor_permissions(party: str) -> Permissions:
    """The operator's, plus what `resume-delivery` writes (a delivery record back to pending,
    and the record of the action itself), and #11's personal data: reading a dossier's key for
    `history --show-personal-data` (recording the disclosure) and `erase` (recording the
    erasure, the key's tombstone, the erasing delete)."""
    base = operator_permissions(party)
    return msgspec.structs.replace(
        base,
        publish=(
            *base.publish,
            f"$KV.{DELIVERIES_BUCKET}.>",
            f"{OPERATIONS_PREFIX}.>",
            f"{KEYS_PREFIX}.>",
            f"{ERASURES_PREFIX}.>",
            f"{DISCLOSURES_PREFIX}.>",
            f"{API}.STREAM.MSG.DELETE.{KEYS_STREAM}",
        ),
        publish_deny=tuple(f"{API}.CONSUMER.DELETE.*.{d}" for d in DURABLE_CONSUMERS),
    )


def gateway_permissions(party: str) -> Permissions:
    """What `serve` needs for every role: its streams, consumers and buckets (the whole
    JetStream API but deleting a stream), the submit and inbound subjects it serves, the
    province's inbox it requests on, and (#13) the requests it relays to the ward sites and
    the sites' logs' info its projector asks for `pending_sites`."""
    return Permissions(
        publish=(
            f"{API}.>",
            "$JS.ACK.>",
            "$JS.FC.>",
            "$KV.>",
            "$O.>",
            "$SYS.REQ.USER.INFO",
            "onestop.events.>",
            "onestop.eventids.>",
            "onestop.reports.>",
            "onestop.outbox.>",
            "onestop.seals",
            f"{OPERATIONS_PREFIX}.>",
            # #11: each dossier's key, made by the intake as its applicant is sealed.
            f"{KEYS_PREFIX}.>",
            # #13: requests relayed to the ward site that writes their unit.
            f"{SITE_PREFIX}.>",
            SITE_LOG_INFO,
            "province.*.inbox.>",
        ),
        publish_deny=(f"{API}.STREAM.DELETE.>",),
        subscribe=(_inbox(party), f"{SUBMIT_PREFIX}.*", f"{INBOUND_PREFIX}.*"),
        allow_responses=True,
    )


SITE_LOG_INFO = f"$JS.*.API.STREAM.INFO.{EVENTS_STREAM}"
"""A ward site's log's info through its domain API (`lienthong status`, `pending_sites`)."""

SITE_GATEWAY_DOES_NOT = (
    "onestop.reports.>",
    "onestop.outbox.>",
    "onestop.seals",
    f"{OPERATIONS_PREFIX}.>",
    f"{SITE_PREFIX}.>",
    SITE_LOG_INFO,
    "province.*.inbox.>",
)
"""What the city's gateway publishes and a site's does not: a site runs its gateway only (the
city projects, forwards and seals its events), and relays nothing (it writes only its units)."""


def site_gateway_permissions(site: str, party: str) -> Permissions:
    """The gateway of a ward site, on the site's own server: the city's gateway's rights there
    but what only the city does, and serving only the relays addressed to its own site."""
    city = gateway_permissions(party)
    return msgspec.structs.replace(
        city,
        publish=tuple(s for s in city.publish if s not in SITE_GATEWAY_DOES_NOT),
        subscribe=(*city.subscribe, f"{SITE_PREFIX}.{site}.>"),
    )


CITY_INBOXES = (inbox_prefix("gateway"), inbox_prefix("operator"), inbox_prefix("dashboard"))
"""Whose requests a site answers across its leaf: the city's gateway (relays, and its
projector's look at the site's log), the operator (`lienthong status`) and the dashboard (its
panel of sites behind), each on the lane of its inbox for that site (plumbing.sites.ask_site)."""


def site_permissions(unit: str) -> Permissions:
    """What crosses a ward site's leaf connection, as the city's server holds it (a leaf user's
    `publish` is what the site may send into the city's servers, its `subscribe` what the city's
    servers send to the site):

    - to the site: the requests the city's gateway relays for its units, and its own domain's
      JetStream API for what the city's mirror of its log and the lag probes ask (creating,
      reading and removing the mirror's consumer, the log's info), and the mirror's answers
      to the consumer's flow control; no other API call, so nobody at the city manages,
      purges or deletes a site's streams, and no other unit's relays or domain;
    - to the city: the mirror's deliveries, the answers to those API calls (`$JSC.R.*`, the
      server's own reply subjects), and replies on its own lane of the inboxes of the city's
      parties whose requests it answers (an answer crosses only where the requester's server
      told the site it is listening, and it tells only of subjects the site may publish to:
      `allow_responses` alone carries no such interest, so the lane is a right of its own).

    Nothing else: not a unit's submissions (the site's own gateway answers those), not any
    stream's subjects, not the city's JetStream API (the leaf connection of a JetStream domain
    denies `$JS.API.>` both ways)."""
    api = f"$JS.{site_domain(unit)}.API"
    return Permissions(
        publish=("$JS.M.*", "$JSC.R.*", *(f"{i}.{site_domain(unit)}.>" for i in CITY_INBOXES)),
        subscribe=(
            f"{SITE_PREFIX}.{unit}.>",
            f"{api}.CONSUMER.CREATE.{EVENTS_STREAM}",
            f"{api}.CONSUMER.CREATE.{EVENTS_STREAM}.>",
            f"{api}.CONSUMER.INFO.{EVENTS_STREAM}.*",
            f"{api}.CONSUMER.DELETE.{EVENTS_STREAM}.*",
            f"{api}.STREAM.INFO.{EVENTS_STREAM}",
            # Flow control of the mirror's consumer: nats-server's first form, and the one
            # with domain and account hash (the `js_ack_fc_v2` feature flag).
            f"$JS.FC.{EVENTS_STREAM}.>",
            f"$JS.FC.{site_domain(unit)}.*.{EVENTS_STREAM}.>",
        ),
    )


PROJECTOR_CONSUMER = DURABLE_CONSUMERS[0]


def _read_bucket(bucket: str) -> list[str]:
    """A KV bucket's info and its keys' reads (buckets are streams `KV_<b>`): a get is a message
    get by subject in the request's body (the buckets allow no direct gets), which no
    permission can narrow to some keys."""
    return [
        f"{API}.STREAM.INFO.KV_{bucket}",
        f"{API}.STREAM.MSG.GET.KV_{bucket}",
        f"{API}.DIRECT.GET.KV_{bucket}.$KV.{bucket}.>",
    ]


def dashboard_permissions(registry: Registry, party: str) -> Permissions:
    """Only what the dashboard reads, and only by reading: every report and its revisions (one
    ordered consumer), the log's and the outbox's info, the projector's consumer's info and the
    time of its oldest unapplied event (a direct get by sequence), the last seal, the leases, the
    outbound delivery records, the last `verify`, and each ward site's mirror, checkpoint and
    log's info. No write, delete, purge or update; nothing of ONESTOP_KEYS, the erasures, the
    disclosures or the operators' actions; no durable consumer (the ephemeral form only)."""
    sites = registry.sites()
    return Permissions(
        publish=(
            *_read_stream(REPORTS_STREAM),
            f"{API}.STREAM.INFO.{EVENTS_STREAM}",
            f"{API}.CONSUMER.INFO.{EVENTS_STREAM}.{PROJECTOR_CONSUMER}",
            f"{API}.DIRECT.GET.{EVENTS_STREAM}",
            f"{API}.DIRECT.GET.{SEALS_STREAM}.{SEALS_SUBJECT}",
            f"{API}.STREAM.INFO.{OUTBOX_STREAM}",
            f"{API}.DIRECT.GET.{OUTBOX_STREAM}",
            *_read_bucket(DELIVERIES_BUCKET),
            *_read_bucket(LEASES_BUCKET),
            *_read_bucket(VERIFICATIONS_BUCKET),
            *_read_bucket(SITES_BUCKET),
            *(f"{API}.STREAM.INFO.{mirror_name(s)}" for s in sites),
            *(f"{API}.STREAM.MSG.GET.{mirror_name(s)}" for s in sites),
            *(f"$JS.{site_domain(s)}.API.STREAM.INFO.{EVENTS_STREAM}" for s in sites),
        ),
        subscribe=(_inbox(party),),
    )


def admin_permissions() -> Permissions:
    """Provisioning and upgrades: everything. Kept apart from the running gateway's key."""
    return Permissions(publish=(">",), subscribe=(">",))


def unit_party(unit: str) -> str:
    return f"unit-{unit}"


def province_party(province: str) -> str:
    return f"province-{province}"


class Grant(msgspec.Struct, frozen=True, kw_only=True):
    """A party before its key: who it is and what it may do."""

    name: str
    role: Role
    permissions: Permissions
    unit: str | None = None
    private_inbox: bool = True


def grants(registry: Registry) -> list[Grant]:
    """Every party of a deployment with the registry's units, in a stable order."""
    found: list[Grant] = [
        Grant(name="admin", role=Role.ADMIN, permissions=admin_permissions(), private_inbox=False),
        Grant(name="gateway", role=Role.GATEWAY, permissions=gateway_permissions("gateway")),
        Grant(name="operator", role=Role.OPERATOR, permissions=operator_permissions("operator")),
        Grant(
            name="supervisor",
            role=Role.SUPERVISOR,
            permissions=supervisor_permissions("supervisor"),
        ),
        Grant(
            name="dashboard",
            role=Role.DASHBOARD,
            permissions=dashboard_permissions(registry, "dashboard"),
        ),
    ]
    for code in registry.codes():
        level = registry[code].level
        if level is Level.PROVINCE:
            name = province_party(code)
            found.append(
                Grant(
                    name=name,
                    role=Role.PROVINCE,
                    unit=code,
                    permissions=province_permissions(registry, code, name),
                )
            )
        else:
            name = unit_party(code)
            found.append(
                Grant(
                    name=name,
                    role=Role.UNIT,
                    unit=code,
                    permissions=unit_permissions(registry, code, name),
                )
            )
    for code in registry.codes():
        if registry[code].level in (Level.WARD, Level.COMMUNE):
            found.append(
                Grant(
                    name=site_party(code),
                    role=Role.SITE,
                    unit=code,
                    permissions=site_permissions(code),
                    private_inbox=False,
                )
            )
            gateway = site_gateway_party(code)
            found.append(
                Grant(
                    name=gateway,
                    role=Role.SITE_GATEWAY,
                    unit=code,
                    permissions=site_gateway_permissions(code, gateway),
                )
            )
    return found


def site_party(unit: str) -> str:
    return f"site-{unit}"


def site_gateway_party(unit: str) -> str:
    return f"site-gateway-{unit}"


def site_server_parties(registry: Registry, site: str, parties: Iterable[Party]) -> list[Party]:
    """Who a ward site's own server knows: its gateway, the desks of its units, and the city's
    operator, supervisor and admin (an erasure of a site's applicant is run at the site). Not
    the city's gateway nor any other site's: a key taken from a ward's machine opens nothing
    at the city, and the city's gateway key never has to leave the city."""
    units = set(_below(registry, site))
    return [
        p
        for p in parties
        if (p.role is Role.SITE_GATEWAY and p.unit == site)
        or (p.role is Role.UNIT and p.unit in units)
        or p.role in (Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN)
    ]


def by_name(parties: Iterable[Party]) -> dict[str, Party]:
    return {p.name: p for p in parties}


def load_parties(folder: Path) -> list[Party]:
    path = folder / PARTIES_FILE
    if not path.exists():
        return []
    try:
        return list(msgspec.json.decode(path.read_bytes(), type=PartiesFile).parties)
    except msgspec.DecodeError as e:
        raise PartiesError(f"{path} is not a parties file: {e}") from e


class FoundParty(msgspec.Struct, frozen=True, kw_only=True):
    """A party and the folder its `parties.json` is in (its paths are relative to it)."""

    party: Party
    folder: Path

    def path(self, relative: str) -> Path:
        return self.folder / relative


def find_party(creds: Path) -> FoundParty | None:
    """The party whose credential file `creds` is, from the parties.json of its folder (or the
    folder above it, where `security init` puts it): so `--creds FILE` alone tells a command
    its name, its inbox prefix and (with TLS) its CA and client certificate."""
    creds = creds.resolve()
    for folder in (creds.parent, creds.parent.parent):
        try:
            parties = load_parties(folder)
        except (PartiesError, OSError):
            continue
        for party in parties:
            if (folder / party.credentials).resolve() == creds:
                return FoundParty(party=party, folder=folder)
    return None
