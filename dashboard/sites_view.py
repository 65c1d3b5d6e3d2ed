"""The ward sites as the page's interconnection panel shows them: each site's link, the events
the city's log has not taken in yet and since when, and one line that says it all (never a
blank: no sites, all caught up, or how many are behind)."""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec

from consumers.sites.status import SiteLag
from dashboard.views import unit_name
from schemas.registry import Registry


class SitesState(enum.StrEnum):
    NONE = "none"
    """The registry has no ward sites."""
    CAUGHT_UP = "caught_up"
    BEHIND = "behind"


class SiteRow(msgspec.Struct, frozen=True, kw_only=True):
    site: str
    name: str
    link: str
    """`up`, `down`, or `never` (the city has not heard from the site yet)."""
    behind: int
    """Events of the site not in the city's log yet."""
    at_least: bool
    """While the link is not up, `behind` is what was known at the last contact: at least."""
    since: datetime | None
    refused: int
    caught_up: bool


class SitesSummary(msgspec.Struct, frozen=True, kw_only=True):
    state: SitesState
    text: str
    """Vietnamese, then English, as the page's other headings."""


def site_rows(registry: Registry, lags: list[SiteLag]) -> list[SiteRow]:
    return [
        SiteRow(
            site=lag.site,
            name=unit_name(registry, lag.site),
            link=lag.link,
            behind=lag.held,
            at_least=lag.link != "up",
            since=lag.since,
            refused=lag.refused,
            caught_up=lag.caught_up,
        )
        for lag in lags
    ]


def summary(lags: list[SiteLag]) -> SitesSummary:
    if not lags:
        return SitesSummary(state=SitesState.NONE, text="Không có điểm phường, xã nào / no sites")
    behind = sum(not lag.caught_up for lag in lags)
    if behind == 0:
        return SitesSummary(state=SitesState.CAUGHT_UP, text="Tất cả đã cập nhật / all caught up")
    plural = "site" if behind == 1 else "sites"
    return SitesSummary(
        state=SitesState.BEHIND, text=f"{behind} điểm chưa cập nhật / {behind} {plural} behind"
    )
