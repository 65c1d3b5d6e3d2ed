"""The command line of ward sites: `lienthong site init`, `lienthong site seed`, and what
`lienthong serve --site U` / `--leaf-listen` add to the embedded nats-server."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import msgspec

from lienthong import environment
from lienthong.command_errors import CommandError
from lienthong.parties import site_gateway_party
from lienthong.session import connected
from plumbing.sites import SiteServer, site_domain
from schemas.registry import Registry

CITY_LEAF_ENV = "LIENTHONG_CITY_LEAF"
"""The city's leaf-node URL(s), comma-separated, for a site's embedded server."""
LEAF_CREDS_ENV = "LIENTHONG_LEAF_CREDS"
"""The site's credentials file for its leaf connection to the city (issue 10's parties)."""


class SiteError(ValueError):
    """A bad site option: said in one line, exit code 2."""


def check_site(registry: Registry, code: str) -> None:
    if code not in registry:
        raise SiteError(f"unit {code} is not in the registry (give the right --registry)")
    if not registry[code].site:
        raise SiteError(
            f'unit {code} is not marked as a site: set "site": true on it in the registry '
            "(the city's and the site's), see deploy/site/"
        )


def site_server(args: argparse.Namespace, registry: Registry) -> SiteServer:
    """The site's server from `--city-leaf` / $LIENTHONG_CITY_LEAF and the other options."""
    check_site(registry, args.site)
    leaf = environment.leaf_settings()
    urls = args.city_leaf or ""
    leaf_urls = tuple(u.strip() for u in urls.split(",") if u.strip()) or leaf.city_leaf
    if not leaf_urls:
        raise SiteError(
            "give the city's leaf-node URL: --city-leaf nats-leaf://HOST:7422 "
            f"(or ${CITY_LEAF_ENV})"
        )
    creds = args.leaf_creds or leaf.leaf_creds
    return SiteServer(
        code=args.site,
        city_leaf_urls=leaf_urls,
        leaf_credentials=Path(creds) if creds else None,
        **({"listen": args.listen} if getattr(args, "listen", None) else {}),
        **({"store_dir": args.store} if getattr(args, "store", None) else {}),
    )


class Embedded(msgspec.Struct, frozen=True, kw_only=True):
    """What `serve` gives its embedded nats-server besides the store and the port."""

    name: str = "lienthong-embedded"
    domain: str | None = None
    extra_config: str = ""


class SecureServer(msgspec.Struct, frozen=True, kw_only=True):
    """`serve --security DIR`: the configuration its embedded server runs and who it is."""

    config_file: Path
    creds: Path


def secure_server(args: argparse.Namespace, registry: Registry) -> SecureServer:
    """The city's `nats-server.conf` as the gateway party, or with `--site U` the site's
    `leaf/U.conf` as the site's own gateway party (its domain, its leaf connection and its
    users are in that file, as `security init` wrote it). A leaf option beside `--security`
    would be ignored by that file: refused, in one line, rather than ignored in silence."""
    folder: Path = args.security
    leaf = environment.leaf_settings()
    given = [
        name
        for name, value in (
            ("--city-leaf", args.city_leaf),
            ("--leaf-creds", args.leaf_creds),
            ("--leaf-listen", args.leaf_listen),
            (f"${CITY_LEAF_ENV}", leaf.city_leaf),
            (f"${LEAF_CREDS_ENV}", leaf.leaf_creds),
        )
        if value
    ]
    if given:
        raise SiteError(
            f"{given[0]} does not go with --security: {folder}'s configurations name the leaf "
            "connections (run `lienthong security init` again with --host / --leaf-port)"
        )
    if args.site is None:
        config, party = folder / "nats-server.conf", "gateway"
    else:
        check_site(registry, args.site)
        config, party = folder / "leaf" / f"{args.site}.conf", site_gateway_party(args.site)
    if not config.exists():
        raise SiteError(f"{config} not found: run `lienthong security init {folder}`")
    return SecureServer(config_file=config, creds=args.creds or folder / "creds" / f"{party}.nk")


def embedded_options(args: argparse.Namespace, registry: Registry, *, embedded: bool) -> Embedded:
    """Checks `--site`; for an embedded server (no URL given), its leaf and domain options."""
    if args.site is not None:
        if not embedded:
            check_site(registry, args.site)  # its own server is configured by site init
            return Embedded()
        site = site_server(args, registry)
        return Embedded(
            name=f"site-{site.code}", domain=site_domain(site.code), extra_config=site.leaf_block()
        )
    if args.leaf_listen:
        # The city's server: its wards' sites connect here as leaf nodes.
        return Embedded(extra_config=f"leafnodes {{ listen: {args.leaf_listen} }}\n")
    return Embedded()


def cmd_site_init(args: argparse.Namespace) -> int:
    try:
        registry = Registry.load(args.registry)
        config = site_server(args, registry).config()
    except ValueError as e:
        raise CommandError(str(e)) from e
    if args.output is None:
        sys.stdout.write(config)
    else:
        args.output.write_text(config)
        print(f"wrote the nats-server configuration of site {args.site} to {args.output}")
    return 0


def cmd_site_seed(args: argparse.Namespace) -> int:
    """Moving a ward to its site: copy its history from the city's log into the site's."""
    from gateway.site_move import Copied, seed_site

    try:
        registry = Registry.load(args.registry)
        check_site(registry, args.site)
    except ValueError as e:
        raise CommandError(str(e)) from e
    city = environment.nats_settings(args.city_url)
    site = environment.nats_settings(args.nats_url)
    if not city.servers or not site.servers:
        raise CommandError("give both --city-url (the city's server) and --nats-url (the site's)")

    async def seed() -> Copied:
        # No server, no right: said in one line, naming the server or the party.
        async with connected(city) as city_client, connected(site) as site_client:
            return await seed_site(
                city_client,
                site_client,
                registry,
                args.site,
                environment.stream_settings(),
                site.request_timeout,
            )

    copied = asyncio.run(seed())
    print(
        f"site {args.site}: {copied.stored} events copied from the city's log, "
        f"{copied.duplicates} were there already, {copied.refused} refused"
    )
    return 0 if copied.refused == 0 else 1


def add_site_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--site",
        help="run as the ward site of this unit: an embedded nats-server that is a leaf node of "
        "the city's with its own JetStream domain, and the gateway for the unit and those below",
    )
    serve.add_argument("--city-leaf", help=f"the city's leaf-node URL(s) (${CITY_LEAF_ENV})")
    serve.add_argument("--leaf-creds", help=f"credentials for the leaf link (${LEAF_CREDS_ENV})")
    serve.add_argument(
        "--leaf-listen",
        help="the city's embedded server accepts ward sites' leaf nodes here (HOST:PORT)",
    )


def add_site_commands(sub: argparse._SubParsersAction[Any]) -> None:
    site = sub.add_parser("site", help="ward sites: a leaf node per ward, working offline")
    commands = site.add_subparsers(dest="site_command", required=True)
    init = commands.add_parser("init", help="write a ward site's nats-server configuration")
    init.add_argument("site", help='the site\'s unit code (marked "site": true in the registry)')
    init.add_argument("--city-leaf", help=f"the city's leaf-node URL(s) (${CITY_LEAF_ENV})")
    init.add_argument("--leaf-creds", help=f"credentials for the leaf link (${LEAF_CREDS_ENV})")
    init.add_argument("--listen", help="where the ward's systems connect (default 127.0.0.1:4222)")
    init.add_argument("--store", type=Path, help="JetStream store directory")
    init.add_argument("--registry", type=Path, help="unit registry JSON (default: Quy Nhơn)")
    init.add_argument("--output", type=Path, help="write here (default: stdout)")
    init.set_defaults(run=cmd_site_init)
    seed = commands.add_parser(
        "seed", help="moving a ward to its site: copy its history from the city's log"
    )
    seed.add_argument("site")
    seed.add_argument("--city-url", required=True, help="the city's server")
    seed.add_argument("--nats-url", required=True, help="the site's server")
    seed.add_argument("--registry", type=Path, help="unit registry JSON (default: Quy Nhơn)")
    seed.set_defaults(run=cmd_site_seed)
