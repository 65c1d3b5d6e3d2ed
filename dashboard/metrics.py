"""/metrics in Prometheus' text format: the deployment's JetStream state (dashboard.operations),
read afresh at each scrape, and the submissions this process served (gateway.metrics).

The state is read once per scrape, then handed to a collector: prometheus-client's collectors
are synchronous, and the reading is asynchronous (NATS requests).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dashboard.operations import Operations
from gateway import metrics as gateway_metrics


class OperationsCollector(Collector):
    def __init__(self, operations: Operations, browsers: int) -> None:
        self.operations = operations
        self.browsers = browsers

    def collect(self) -> Iterator[Metric]:
        o = self.operations
        yield GaugeMetricFamily(
            "lienthong_log_last_sequence", "Last sequence of the event log", o.log_last_seq
        )
        lag = GaugeMetricFamily(
            "lienthong_projector_lag_sequences",
            "Events in the log the report projector has not applied yet (-1: it never ran)",
        )
        lag.add_metric([], o.projector.sequences if o.projector.known else -1)
        yield lag
        yield GaugeMetricFamily(
            "lienthong_projector_lag_seconds",
            "How long the oldest event the projector has not applied has waited",
            o.projector.seconds,
        )
        pending = GaugeMetricFamily(
            "lienthong_outbox_pending_messages",
            "Interconnection messages owed to the province, per unit",
            labels=["unit"],
        )
        parked = GaugeMetricFamily(
            "lienthong_outbox_parked_dossiers",
            "Dossiers whose delivery is parked, waiting for an operator, per unit",
            labels=["unit"],
        )
        oldest = GaugeMetricFamily(
            "lienthong_outbox_oldest_pending_seconds",
            "Age of the oldest message owed to the province, per unit",
            labels=["unit"],
        )
        for row in o.outbox:
            pending.add_metric([row.unit], row.pending)
            parked.add_metric([row.unit], row.parked)
            oldest.add_metric([row.unit], (o.read_at - row.oldest_stored_at).total_seconds())
        yield pending
        yield parked
        yield oldest
        yield GaugeMetricFamily(
            "lienthong_seal_lag_sequences",
            "Events stored after the last seal (not vouched for yet)",
            o.seals.behind,
        )
        if o.seals.sealed_at is not None:
            yield GaugeMetricFamily(
                "lienthong_seal_age_seconds",
                "Time since the last seal",
                (o.read_at - o.seals.sealed_at).total_seconds(),
            )
        if (v := o.verification) is not None:
            yield GaugeMetricFamily(
                "lienthong_verify_intact",
                "1 if the last `lienthong verify` found the log intact, 0 if altered",
                1 if v.intact else 0,
            )
            yield GaugeMetricFamily(
                "lienthong_verify_age_seconds",
                "Time since the last `lienthong verify` was recorded",
                (o.read_at - v.at).total_seconds(),
            )
        yield from self._sites()
        holders = GaugeMetricFamily(
            "lienthong_lease_holder",
            "1 for the process (host:pid:id) holding each once-per-deployment role's lease; "
            'holder="" when nobody holds it',
            labels=["role", "holder"],
        )
        for role, holder in o.leases.items():
            holders.add_metric([role, holder or ""], 1 if holder else 0)
        yield holders
        yield GaugeMetricFamily(
            "lienthong_dashboard_browsers", "Open pages following live revisions", self.browsers
        )

    def _sites(self) -> Iterator[Metric]:
        o = self.operations
        behind = GaugeMetricFamily(
            "lienthong_site_events_behind",
            "Events of a ward site the city's log has not taken in yet (while its link is down: "
            "at least this many, as of the last contact)",
            labels=["site"],
        )
        since = GaugeMetricFamily(
            "lienthong_site_behind_seconds",
            "How long a ward site has been behind: since the first event not taken in was "
            "stored at the site, or its link went down (0 when caught up)",
            labels=["site"],
        )
        linked = GaugeMetricFamily(
            "lienthong_site_link_up",
            "1 while the city reaches the ward site's server over its leaf connection, else 0",
            labels=["site"],
        )
        for lag in o.sites:
            behind.add_metric([lag.site], lag.held)
            waited = (o.read_at - lag.since).total_seconds() if lag.since is not None else 0.0
            since.add_metric([lag.site], max(0.0, waited))
            linked.add_metric([lag.site], 1 if lag.link == "up" else 0)
        yield behind
        yield since
        yield linked


def exposition(operations: Operations, browsers: int) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OperationsCollector(operations, browsers))
    return generate_latest(gateway_metrics.REGISTRY) + generate_latest(registry)
