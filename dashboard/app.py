"""The dashboard's ASGI application (Starlette): the page, its JSON, the downloads, the live
stream of revisions, and the operators' endpoints. Every route is a GET: nothing here changes
anything, and the NATS connection it is given needs only read rights.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from nats.aio.client import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dashboard import health, sites_view, spreadsheets, views
from dashboard.feed import ReportFeed
from dashboard.metrics import exposition
from dashboard.operations import read_operations
from dashboard.settings import DashboardSettings
from plumbing.errors import LogUnavailable
from schemas.periods import now_vn
from schemas.registry import Registry

STATIC = StaticFiles(packages=[("dashboard", "static")])
KEEPALIVE_SECONDS = 15.0
"""A comment on the event stream this often, so proxies keep an idle page's stream open."""


def _json(value: Any, status_code: int = 200) -> Response:
    return Response(msgspec.json.encode(value), status_code, media_type="application/json")


def _not_found(what: str) -> Response:
    return JSONResponse({"error": what}, 404)


def build(
    client: Client, feed: ReportFeed, registry: Registry, settings: DashboardSettings
) -> Starlette:
    def chosen(request: Request) -> tuple[str, str]:
        return request.query_params.get("unit", ""), request.query_params.get("period", "")

    async def page(request: Request) -> Response:
        response: Response = await STATIC.get_response("index.html", request.scope)
        # Only the package's own script and style run: nothing injected can load or send more.
        # (Chart.js sizes its canvases through the style API, which the policy allows.)
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'"
        )
        return response

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    async def units(request: Request) -> Response:
        return _json({"units": views.units(feed, registry), "periods": feed.periods()})

    async def report(request: Request) -> Response:
        unit, period = chosen(request)
        view = views.report_view(feed, registry, unit, period)
        if view is None:
            return _not_found(f"no report for unit {unit!r}, period {period!r}")
        return _json(view)

    async def history(request: Request) -> Response:
        unit, period = chosen(request)
        if feed.current(unit, period) is None:
            return _not_found(f"no report for unit {unit!r}, period {period!r}")
        return _json(views.history(feed, unit, period))

    async def trend(request: Request) -> Response:
        unit, _ = chosen(request)
        if not feed.periods_of(unit):
            return _not_found(f"no report for unit {unit!r}")
        return _json(views.trend(feed, registry, unit))

    async def overdue(request: Request) -> Response:
        unit, period = chosen(request)
        if unit not in registry:
            return _not_found(f"unit {unit!r} is not in the registry")
        return _json(views.overdue(feed, registry, unit, period))

    async def interconnection(request: Request) -> Response:
        try:
            o = await read_operations(client, registry)
        except LogUnavailable as e:
            return JSONResponse({"error": str(e)}, 503)
        outbox = [
            {
                "unit": r.unit,
                "name": views.unit_name(registry, r.unit),
                "pending": r.pending,
                "dossiers": r.dossiers,
                "oldest_stored_at": r.oldest_stored_at,
                "parked": r.parked,
                "last_error_at": r.last_error_at,
            }
            for r in o.outbox
        ]
        return _json(
            {
                "read_at": o.read_at,
                "outbox": outbox,
                "seals": o.seals,
                "log_last_seq": o.log_last_seq,
                "projector": o.projector,
                "leases": o.leases,
                "verification": o.verification,
                "sites": sites_view.site_rows(registry, o.sites),
                "sites_summary": sites_view.summary(o.sites),
            }
        )

    def sheet(request: Request) -> spreadsheets.Sheet | None:
        unit, period = chosen(request)
        current = feed.current(unit, period)
        if current is None:
            return None
        below = [
            (views.unit_name(registry, c), found.report)
            for c in (registry.children(unit) if unit in registry else [])
            if (found := feed.current(c, period)) is not None
        ]
        return spreadsheets.sheet(current.report, views.unit_name(registry, unit), below)

    def attachment(request: Request, suffix: str) -> dict[str, str]:
        unit, period = chosen(request)
        return {"Content-Disposition": f'attachment; filename="bao-cao-{unit}-{period}.{suffix}"'}

    async def csv(request: Request) -> Response:
        if (s := sheet(request)) is None:
            return _not_found("no such report")
        return Response(
            spreadsheets.as_csv(s),
            media_type="text/csv; charset=utf-8",
            headers=attachment(request, "csv"),
        )

    async def xlsx(request: Request) -> Response:
        if (s := sheet(request)) is None:
            return _not_found("no such report")
        return Response(
            spreadsheets.as_xlsx(s),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers=attachment(request, "xlsx"),
        )

    async def events(request: Request) -> Response:
        queue = feed.listen()

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield b"retry: 1000\n\n"
                while True:
                    try:
                        notice = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                    except TimeoutError:
                        yield b": keepalive\n\n"
                        continue
                    if notice is None:
                        return  # dropped as too slow: the browser reconnects by itself
                    yield b"event: revision\ndata: " + msgspec.json.encode(notice) + b"\n\n"
            finally:
                feed.forget(queue)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def healthz(request: Request) -> Response:
        return JSONResponse({"alive": True, "at": now_vn().isoformat(timespec="seconds")})

    async def readyz(request: Request) -> Response:
        r = await health.readiness(client, settings.ready_lag_seconds)
        return _json(r, 200 if r.ready else 503)

    async def metrics(request: Request) -> Response:
        try:
            o = await read_operations(client, registry)
        except LogUnavailable as e:
            return Response(f"# {e}\n", 503, media_type="text/plain")
        return Response(
            exposition(o, feed.browsers), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    return Starlette(
        routes=[
            Route("/", page),
            Route("/favicon.ico", no_icon),
            Route("/api/units", units),
            Route("/api/report", report),
            Route("/api/history", history),
            Route("/api/trend", trend),
            Route("/api/overdue", overdue),
            Route("/api/interconnection", interconnection),
            Route("/report.csv", csv),
            Route("/report.xlsx", xlsx),
            Route("/events", events),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Mount("/static", STATIC, name="static"),
        ]
    )
