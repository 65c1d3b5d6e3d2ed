"""`lienthong security init`: keys, server configurations and parties.json for a deployment.

Everything is written into one folder (mode 0700), so an operator reviews and ships one thing:

    nats-server.conf      one server, runnable as it is (`nats-server -c DIR/nats-server.conf`)
    authorization.conf    every party's NKey and permissions, included by each configuration
    cluster/node-N.conf   a cluster's nodes, routes authenticated by a generated password
    leaf/<unit>.conf      each ward's and commune's own server (plumbing.sites.SiteServer), a
                          leaf node of the city's; its leaf connection is the site party (a
                          generated password), held to that site's rights
    leaf/<unit>-authorization.conf   who that server knows: its own gateway party, its units'
                          desks, the operator, supervisor and admin (never the city's gateway)
    creds/<party>.nk      one NKey seed per party (0600), as every official NATS client takes it
    creds/site-<unit>.password   a site's leaf connection password (0600)
    parties.json          who each party is, its file, its inbox prefix, its permissions
    secrets.json          the generated route password (0600), kept across runs
    tls/                  with --tls: the CA, the server's certificate, one client certificate
                          per party (the server accepts only certificates of this CA)

Running it again keeps every key and password: parties new to the registry get new keys,
`rotate` replaces the named parties' keys only.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import msgspec
import nkeys

from lienthong import certificates
from lienthong.parties import (
    PARTIES_FILE,
    Grant,
    PartiesError,
    PartiesFile,
    Party,
    PartyTls,
    Permissions,
    Role,
    by_name,
    grants,
    inbox_prefix,
    load_parties,
    site_server_parties,
)
from plumbing.sites import LeafTls, SiteServer
from schemas.registry import Registry

SECRETS_FILE = "secrets.json"
AUTHORIZATION_FILE = "authorization.conf"
SERVER_FILE = "nats-server.conf"
CLUSTER_NODES = ("nats-1", "nats-2", "nats-3")
"""The nodes' host names when `--host` does not name at least two."""


class SecurityError(PartiesError):
    """Bad input to `security init` (an unknown party to rotate, an unreadable folder)."""


class Secrets(msgspec.Struct, kw_only=True):
    route_user: str = "route"
    route_password: str = ""


class Layout(msgspec.Struct, frozen=True, kw_only=True):
    """Where the generated server listens."""

    hosts: tuple[str, ...] = ()
    """Names clients use for the server (certificate names; cluster nodes when two or more)."""
    listen_host: str = "0.0.0.0"
    """Where the one server of nats-server.conf listens (127.0.0.1 for a trial on one machine)."""
    port: int = 4222
    """Its client port; -1 picks a free one (nats-server's own convention)."""
    leaf_port: int = 7422
    cluster_port: int = 6222
    site_port: int = 4222
    """Where a ward's own server listens for its desks (on its own machine, loopback)."""
    tls: bool = False
    store_dir: Path | None = None
    """Where each server keeps JetStream's files (a node's in `<store_dir>/node-N`); default
    `DIR/data`."""


class InitResult(msgspec.Struct, frozen=True, kw_only=True):
    added: tuple[str, ...]
    kept: tuple[str, ...]
    rotated: tuple[str, ...]


def _private(path: Path, text: str) -> None:
    """Write a file only its owner can read, never readable by others even for a moment."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)


def _new_seed() -> str:
    seed: bytes = nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER)
    return seed.decode()


def public_key(seed: str) -> str:
    key: bytes = nkeys.from_seed(bytearray(seed.strip().encode())).public_key
    return key.decode()


def init(
    folder: Path, registry: Registry, layout: Layout, rotate: tuple[str, ...] = ()
) -> InitResult:
    """Write (or bring up to date) everything in `folder`; see the module docstring."""
    folder = folder.resolve()
    wanted = grants(registry)
    unknown = sorted(set(rotate) - {g.name for g in wanted})
    if unknown:
        raise SecurityError(f"no party {', '.join(unknown)} to rotate (see {PARTIES_FILE})")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    before = by_name(load_parties(folder))
    parties: list[Party] = []
    added: list[str] = []
    kept: list[str] = []
    rotated: list[str] = []
    if layout.tls:
        tls = folder / "tls"
        certificates.make_ca(tls)
        certificates.make_server_cert(tls, [*layout.hosts, "localhost", "127.0.0.1"])
    for grant in wanted:
        parties.append(_party(folder, grant, grant.name in rotate, layout.tls))
        (rotated if grant.name in rotate else kept if grant.name in before else added).append(
            grant.name
        )
    # Parties of an earlier, larger registry stay: removing a desk's key is a deliberate act.
    parties += [p for name, p in before.items() if name not in {g.name for g in wanted}]
    chosen = _secrets(folder)
    # A site's gateway is known to its own server only (below), never to the city's.
    city_parties = [p for p in parties if p.role is not Role.SITE_GATEWAY]
    _private(folder / AUTHORIZATION_FILE, authorization_block(folder, city_parties))
    _private(folder / SERVER_FILE, server_config(folder, layout, chosen))
    hosts = layout.hosts if len(layout.hosts) >= 2 else CLUSTER_NODES
    for n in range(1, len(hosts) + 1):
        _private(
            folder / "cluster" / f"node-{n}.conf", node_config(folder, layout, chosen, hosts, n)
        )
    for party in parties:
        if party.role is Role.SITE and party.unit is not None and party.unit in registry:
            users = site_server_parties(registry, party.unit, parties)
            _private(
                folder / "leaf" / site_authorization_file(party.unit),
                authorization_block(folder, users),
            )
            _private(folder / "leaf" / f"{party.unit}.conf", ward_config(folder, layout, party))
    document = msgspec.json.format(msgspec.json.encode(PartiesFile(parties=tuple(parties))))
    (folder / PARTIES_FILE).write_bytes(document + b"\n")
    return InitResult(added=tuple(added), kept=tuple(kept), rotated=tuple(rotated))


def _party(folder: Path, grant: Grant, rotate: bool, tls: bool) -> Party:
    site = grant.role is Role.SITE
    relative = f"creds/{grant.name}.password" if site else f"creds/{grant.name}.nk"
    path = folder / relative
    if rotate or not path.exists():
        # The seed alone, no newline: nats-py before 2.16 reads the whole file as the seed.
        _private(path, secrets.token_urlsafe(32) if site else _new_seed())
    client_tls = None
    # A site's gateway connects to its own server on the ward's loopback only (see ward_config).
    if tls and grant.role is not Role.SITE_GATEWAY:
        cert, key = certificates.make_client_cert(folder / "tls", grant.name, renew=rotate)
        client_tls = PartyTls(
            ca="tls/ca.pem",
            cert=str(cert.relative_to(folder)),
            key=str(key.relative_to(folder)),
        )
    return Party(
        tls=client_tls,
        name=grant.name,
        role=grant.role,
        unit=grant.unit,
        credentials=relative,
        public_key=None if site else public_key(path.read_text()),
        inbox_prefix=inbox_prefix(grant.name) if grant.private_inbox else None,
        permissions=grant.permissions,
    )


def _secrets(folder: Path) -> Secrets:
    path = folder / SECRETS_FILE
    chosen = msgspec.json.decode(path.read_bytes(), type=Secrets) if path.exists() else Secrets()
    chosen.route_password = chosen.route_password or secrets.token_urlsafe(32)
    _private(path, msgspec.json.format(msgspec.json.encode(chosen).decode()) + "\n")
    return chosen


def _q(text: str) -> str:
    """A quoted string of the NATS configuration format (JSON's quoting is a subset of it)."""
    return json.dumps(text)


def _list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(_q(i) for i in items) + "]"


def _permissions(p: Permissions) -> str:
    publish = f"allow: {_list(p.publish)}" + (
        f", deny: {_list(p.publish_deny)}" if p.publish_deny else ""
    )
    parts = [f"publish: {{ {publish} }}", f"subscribe: {{ allow: {_list(p.subscribe)} }}"]
    if p.allow_responses:
        parts.append("allow_responses: true")
    return "{ " + ", ".join(parts) + " }"


def authorization_block(folder: Path, parties: list[Party]) -> str:
    """Every party as a static NKey user with its permissions (a site: a user with a password,
    which leaf connections authenticate as); no user means no anonymous access (nats-server
    refuses a connection that presents no key of the list)."""
    lines = [
        "# Written by `lienthong security init`; every party's key and rights (parties.json).",
        "authorization {",
        "  users = [",
    ]
    for p in parties:
        lines.append(f"    # {p.name} ({p.role.value})")
        rights = _permissions(p.permissions)
        if p.public_key is None:
            password = (folder / p.credentials).read_text().strip()
            who = f"user: {_q(p.name)}, password: {_q(password)}"
        else:
            who = f"nkey: {_q(p.public_key)}"
        lines.append(f"    {{ {who}, permissions: {rights} }}")
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


def _store(folder: Path, layout: Layout, name: str) -> Path:
    return (layout.store_dir or folder / "data") / name


def _tls_block(folder: Path, *, verify: bool = False, indent: str = "") -> str:
    tls = folder / "tls"
    inner = (
        f"cert_file: {_q(str(tls / 'server.pem'))}, key_file: {_q(str(tls / 'server-key.pem'))}, "
        f"ca_file: {_q(str(tls / 'ca.pem'))}" + (", verify: true" if verify else "")
    )
    return f"{indent}tls {{ {inner} }}\n"


def _leaf_listener(folder: Path, layout: Layout, host: str = "0.0.0.0") -> str:
    """No authorization block of its own: a leaf connection authenticates as one of the users
    above (a site) and is held to that user's permissions."""
    tls = _tls_block(folder, verify=True, indent="  ") if layout.tls else ""
    return f"leafnodes {{\n  listen: {host}:{layout.leaf_port}\n{tls}}}\n"


def server_config(folder: Path, layout: Layout, chosen: Secrets) -> str:
    return (
        "# One lienthong nats-server, least privilege for every party (lienthong security init).\n"
        'server_name: "lienthong"\n'
        f"listen: {layout.listen_host}:{layout.port}\n"
        "max_payload: 8MB\n"
        f"jetstream {{ store_dir: {_q(str(_store(folder, layout, 'lienthong')))} }}\n"
        f"include {AUTHORIZATION_FILE}\n"
        + (_tls_block(folder, verify=True) if layout.tls else "")
        + _leaf_listener(folder, layout, layout.listen_host)
    )


def node_config(
    folder: Path, layout: Layout, chosen: Secrets, hosts: tuple[str, ...], n: int
) -> str:
    route = f"{chosen.route_user}:{chosen.route_password}"
    routes = ", ".join(
        _q(f"nats-route://{route}@{host}:{layout.cluster_port}")
        for i, host in enumerate(hosts, 1)
        if i != n
    )
    cluster_tls = _tls_block(folder, verify=True, indent="  ") if layout.tls else ""
    return (
        f"# Node {n} of {len(hosts)} ({hosts[n - 1]}); routes authenticated by a generated "
        "password\n"
        f'server_name: "lienthong-{n}"\n'
        f"listen: 0.0.0.0:{layout.port}\n"
        "max_payload: 8MB\n"
        f"jetstream {{ store_dir: {_q(str(_store(folder, layout, f'node-{n}')))} }}\n"
        f"include ../{AUTHORIZATION_FILE}\n"
        + (_tls_block(folder, verify=True) if layout.tls else "")
        + "cluster {\n"
        '  name: "lienthong"\n'
        f"  listen: 0.0.0.0:{layout.cluster_port}\n"
        f"  authorization {{ user: {_q(chosen.route_user)}, "
        f"password: {_q(chosen.route_password)} }}\n"
        f"  routes: [{routes}]\n"
        f"{cluster_tls}"
        "}\n" + _leaf_listener(folder, layout)
    )


def site_authorization_file(unit: str) -> str:
    return f"{unit}-{AUTHORIZATION_FILE}"


def ward_config(folder: Path, layout: Layout, site: Party) -> str:
    """A site's own nats-server, as `lienthong site init` writes one (one way to write it,
    `SiteServer`): the stream subjects kept off its leaf connection, whose user is the site
    party; its desks and its own gateway connect to it on the ward's loopback with their own
    keys (its own authorization file)."""
    assert site.unit is not None
    password = (folder / site.credentials).read_text().strip()
    hubs = layout.hosts or ("127.0.0.1",)
    urls = [f"nats-leaf://{site.name}:{password}@{hub}:{layout.leaf_port}" for hub in hubs]
    tls = site.tls
    return SiteServer(
        code=site.unit,
        city_leaf_urls=tuple(urls),
        listen=f"127.0.0.1:{layout.site_port}",
        store_dir=_store(folder, layout, f"site-{site.unit}"),
        leaf_tls=None
        if tls is None
        else LeafTls(ca=folder / tls.ca, cert=folder / tls.cert, key=folder / tls.key),
        authorization=site_authorization_file(site.unit),
    ).config()
