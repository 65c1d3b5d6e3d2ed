"""How far behind each ward site the city is: its link, the events it holds that the city's log
has not, and since when (`lienthong status`, and the reports' `pending_sites`).

All of it is read at the city: the site's own log's last sequence, asked across the leaf
connection through the site's JetStream domain API (no answer: the link is down), the mirror
(what has come over; its own source info when the site does not answer) and the catch-up's
checkpoint (how much of it is in the city's log; mirror sequences are the site's). While the
link is down the city cannot know what the site took since, so the count is what was known at
the last contact: at least that.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.js.errors import BucketNotFoundError, NotFoundError

from plumbing.sites import (
    SITES_BUCKET,
    Checkpoint,
    ask_site,
    mirror_name,
    read_checkpoint,
    site_domain,
)
from plumbing.streams import EVENTS_STREAM
from schemas.registry import Registry

PROBE_TIMEOUT = 1.0
"""How long the city waits for the site's JetStream API to answer before calling the link down
(with the leaf connection down there is no route at all: 'no responders', at once)."""


class SiteLag(msgspec.Struct, frozen=True, kw_only=True):
    site: str
    link: str
    """`up`, `down`, or `never` (the city has not heard from the site yet)."""
    held: int
    """Events of the site not in the city's log (at least: while down, as of the last contact)."""
    since: datetime | None
    """Since when: the stored time at the site of the first of them; else when the link went
    down; None when caught up and linked."""
    refused: int = 0
    """Events the city's log refused (the site and the city disagree; see the logs)."""

    @property
    def caught_up(self) -> bool:
        return self.link == "up" and self.held == 0


async def site_last_seq(client: Client, site: str) -> int | None:
    """The last sequence of the site's own log, asked of its server across the leaf connection;
    None when it does not answer (the link is down)."""
    subject = f"$JS.{site_domain(site)}.API.STREAM.INFO.{EVENTS_STREAM}"
    try:
        reply = await ask_site(client, site, subject, b"", PROBE_TIMEOUT)
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
        return None
    info = _STREAM_INFO.decode(reply.data)
    return info.state.last_seq if info.state is not None else None


class _State(msgspec.Struct):
    last_seq: int = 0


class _StreamInfo(msgspec.Struct):
    state: _State | None = None


_STREAM_INFO = msgspec.json.Decoder(_StreamInfo)


async def site_lags(client: Client, registry: Registry) -> list[SiteLag]:
    js = client.jetstream()
    try:
        kv = await js.key_value(SITES_BUCKET)
    except (BucketNotFoundError, NotFoundError):
        kv = None
    now = datetime.now(UTC)
    lags = []
    for site in registry.sites():
        checkpoint = await read_checkpoint(kv, site) if kv is not None else Checkpoint()
        try:
            info = await js.stream_info(mirror_name(site))
        except NotFoundError:
            info = None
        mirrored = info.state.last_seq if info is not None else 0
        source = info.mirror if info is not None else None
        at_site = await site_last_seq(client, site)
        if at_site is not None:
            link, known = "up", at_site
        else:
            # Down: what the site holds is known as of the mirror's last contact only.
            heard = source is not None and source.active is not None and source.active >= 0
            link = "down" if heard else "never"
            known = mirrored + ((source.lag or 0) if source is not None else 0)
        held = max(known - checkpoint.mirror_seq, 0)
        since: datetime | None = None
        if mirrored > checkpoint.mirror_seq:
            since = (await js.get_msg(mirror_name(site), checkpoint.mirror_seq + 1)).time
        elif link == "down" and source is not None and source.active is not None:
            since = now - timedelta(microseconds=source.active / 1000)
        elif held:
            since = checkpoint.at
        lags.append(
            SiteLag(site=site, link=link, held=held, since=since, refused=checkpoint.refused)
        )
    return lags


def sites_table(lags: list[SiteLag], registry: Registry, now: datetime) -> str:
    if not lags:
        return ""
    header = f"{'site':<6} {'name':<28} {'link':<6} {'held':>7}  since"
    lines = ["Ward sites (events the city's log has not yet):", header, "-" * (len(header) + 20)]
    for lag in lags:
        name = registry[lag.site].name
        since = "-"
        if lag.since is not None:
            minutes = int((now - lag.since).total_seconds() // 60)
            since = f"{lag.since.astimezone(now.tzinfo):%Y-%m-%d %H:%M} ({minutes} min)"
        held = f"≥{lag.held}" if lag.link != "up" else str(lag.held)
        refused = f"  {lag.refused} refused" if lag.refused else ""
        lines.append(f"{lag.site:<6} {name[:28]:<28} {lag.link:<6} {held:>7}  {since}{refused}")
    return "\n".join(lines) + "\n"
