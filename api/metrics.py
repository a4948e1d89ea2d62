"""GET /metrics: the databases in Prometheus's text format, rendered by prometheus_client.

The only module importing prometheus_client (`run-once` never loads it). Each scrape
reads one snapshot of the databases (the request's read transaction, api.db), builds
a `Snapshot` from it, and renders it through a `CollectorRegistry` made for that
scrape alone: no global registry, so gunicorn's workers share nothing and no process
metrics are mixed in. The rendered text is cached like the JSON answers (api.answers),
under the files' and the last run's state and the current period's label, so a scrape
between two collector runs costs a few stat() calls and one small query.

Every byte counter is a sum over `usage_period`, which only ever grows: our counters
never go down (router reboots, counter wrap and re-association are already accounted
for), so `increase()` over any range is exact up to Prometheus's extrapolation.
A device's series are exposed while the collector saw it (associated, traffic or not)
in the current or the previous billing period: that bounds the series by the devices
of two months, not by every (randomised) MAC ever seen. A device that comes back later
reappears with its all-time total, so `increase()` stays right across the gap.

When the statistics database is missing, unreadable, or not at this reader's schema
version (the Go daemon's file before the first run, or a newer collector's), the
answer is a 503 whose body says `netstat_up 0`, with the reason in a comment.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from flask import Blueprint, Response
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import CollectorRegistry

from api import answers, db, queries
from collector import reads
from collector.errors import DataUnavailable
from collector.periods import Period, period_containing
from collector.schema import LEASES_DB, SCHEMA_VERSION, STATS_DB, WAN, has_table, schema_version
from collector.text import printable

bp = Blueprint("metrics", __name__)

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
PREFIX = "netstat"
# Tables /metrics reads; without them the file is not one the collector has migrated.
NEEDED_TABLES = ("usage_period", "periods", "runs", "router_endpoints", "router_uptime", "meta")


@dataclass
class Snapshot:
    """Everything one scrape exposes, read in one snapshot of the databases."""

    period: Period
    cap_bytes: int | None
    # device -> (rx, tx) over all periods and routers; the access point's rx is the upload.
    devices: list[tuple[str, int, int]]
    names: dict[str, tuple[str, str]]  # mac -> (hostname, ip)
    labels: dict[str, tuple[str, str]]  # mac -> (name, owner) from the configuration
    wan_by_router: list[tuple[str, int, int]]  # WAN rx is the download
    current: list[tuple[str, int, int]]  # this period, main_wan included
    last_run: dict | None
    endpoints: list[tuple]  # (router, endpoint, last_ok_at, last_error_at, items, rejected)
    boots: list[tuple[str, float]]  # (router, when it booted)
    # (target, sent, pending, given up) per notification target
    deliveries: list[tuple[str, int, int, int]] = field(default_factory=list)


def check_schema(conn: sqlite3.Connection) -> None:
    """DataUnavailable unless both files are at this reader's schema version (leases optional)."""
    version = schema_version(conn)
    missing = [t for t in NEEDED_TABLES if not has_table(conn, t)]
    if version != SCHEMA_VERSION or missing:
        raise DataUnavailable(
            f"{db.data_dir() / STATS_DB}: schema version {version}, tables missing: "
            f"{', '.join(missing) or 'none'}; this reader needs version {SCHEMA_VERSION} "
            f"(a run of `netstat-collect run-once` migrates the file)")
    if reads.has_leases(conn) and schema_version(conn, "leases") != SCHEMA_VERSION:
        raise DataUnavailable(
            f"{db.data_dir() / LEASES_DB}: schema version {schema_version(conn, 'leases')}; "
            f"this reader needs version {SCHEMA_VERSION} (a run of `netstat-collect run-once` "
            f"migrates the file)")


def read_snapshot(conn: sqlite3.Connection, period: Period, settings: reads.ReadSettings,
                  now: float | None = None) -> Snapshot:
    now = time.time() if now is None else now
    previous = period_containing(period.start.timestamp() - 1, settings.zone, settings.month_start_day)
    return Snapshot(
        period=period,
        cap_bytes=settings.monthly_cap_bytes,
        devices=queries.device_totals(conn, (period.label, previous.label)),
        names=reads.device_names(conn),
        labels=reads.device_labels(conn),
        wan_by_router=queries.wan_totals(conn),
        current=queries.period_totals(conn, period.label),
        last_run=queries.last_run(conn),
        endpoints=queries.endpoint_rows(conn),
        boots=queries.boot_times(conn),
        deliveries=queries.delivery_counts(conn, now),
    )


def _name(name: str) -> str:
    return f"{PREFIX}_{name}"


class SnapshotCollector:
    """A prometheus_client collector over one Snapshot (or none: the databases are unavailable)."""

    def __init__(self, snapshot: Snapshot | None):
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(_name("up"), "1 when the databases are readable and migrated, else 0 "
                                            "(and the answer is a 503)")
        up.add_metric([], 0 if self.snapshot is None else 1)
        yield up
        if self.snapshot is not None:
            yield from self._bytes(self.snapshot)
            yield from self._period(self.snapshot)
            yield from self._health(self.snapshot)

    def _bytes(self, s: Snapshot) -> Iterator[Metric]:
        device = CounterMetricFamily(
            _name("device_bytes"),
            "Bytes a device moved, all routers summed, since the collector first saw it "
            "(download: sent to it; upload: sent by it)",
            labels=["mac", "direction"])
        # One info metric per device with every label that describes it: one join brings the
        # hostname, the configured name and the owner to any series (`sum by (owner)`).
        info = InfoMetricFamily(_name("device"), "A device's last known DHCP hostname and IP, and its "
                                                 "name and owner from the configuration (empty when "
                                                 "unknown or not set)",
                                labels=["mac"])
        for mac, rx, tx in s.devices:
            # The access point's rx is what the device sent: its upload.
            device.add_metric([mac, "download"], tx)
            device.add_metric([mac, "upload"], rx)
            hostname, ip = s.names.get(mac, ("", ""))
            name, owner = s.labels.get(mac, ("", ""))
            info.add_metric([mac], {"hostname": hostname, "ip": ip, "name": name, "owner": owner})
        yield device
        yield info
        wan = CounterMetricFamily(_name("wan_bytes"), "Bytes through the WAN, all routers summed",
                                  labels=["direction"])
        by_router = CounterMetricFamily(_name("router_wan_bytes"), "Bytes through one router's WAN",
                                        labels=["router", "direction"])
        # The WAN's rx is the download; main_wan is the sum of every router's WAN.
        download = upload = 0
        for router, rx, tx in s.wan_by_router:
            by_router.add_metric([router, "download"], rx)
            by_router.add_metric([router, "upload"], tx)
            download, upload = download + rx, upload + tx
        wan.add_metric(["download"], download)
        wan.add_metric(["upload"], upload)
        yield wan
        yield by_router

    def _period(self, s: Snapshot) -> Iterator[Metric]:
        start = GaugeMetricFamily(_name("period_start_timestamp_seconds"),
                                  "When the current billing period started (unix time)")
        start.add_metric([], s.period.start.timestamp())
        end = GaugeMetricFamily(_name("period_end_timestamp_seconds"),
                                "When the current billing period ends (unix time, exclusive)")
        end.add_metric([], s.period.end.timestamp())
        yield start
        yield end
        if s.cap_bytes is not None:
            cap = GaugeMetricFamily(_name("period_cap_bytes"),
                                    "The ISP's allowance per billing period (settings.monthly_cap_gib)")
            cap.add_metric([], s.cap_bytes)
            yield cap
        device = GaugeMetricFamily(_name("device_period_bytes"),
                                   "Bytes a device moved in the current billing period, all routers "
                                   "summed", labels=["mac", "direction"])
        wan = GaugeMetricFamily(_name("wan_period_bytes"),
                                "Bytes through the WAN in the current billing period, all routers "
                                "summed", labels=["direction"])
        wan_rx = wan_tx = 0
        for mac, rx, tx in s.current:
            if mac == WAN:
                wan_rx, wan_tx = rx, tx
            else:
                device.add_metric([mac, "download"], tx)
                device.add_metric([mac, "upload"], rx)
        wan.add_metric(["download"], wan_rx)
        wan.add_metric(["upload"], wan_tx)
        yield device
        yield wan

    def _health(self, s: Snapshot) -> Iterator[Metric]:
        run = s.last_run
        if run is not None:
            at = GaugeMetricFamily(_name("last_run_timestamp_seconds"),
                                   "When the last committed collector run finished (unix time)")
            at.add_metric([], run["finished_at"])
            took = GaugeMetricFamily(_name("last_run_duration_seconds"),
                                     "How long the last committed collector run took")
            took.add_metric([], max(run["finished_at"] - run["started_at"], 0.0))
            endpoints = GaugeMetricFamily(_name("last_run_endpoints"),
                                          "Endpoints the last run fetched (ok) or failed",
                                          labels=["result"])
            endpoints.add_metric(["ok"], run["endpoints_ok"])
            endpoints.add_metric(["failed"], run["endpoints_failed"])
            yield from (at, took, endpoints)
            if run["last_fetched_at"] is not None:
                fetched = GaugeMetricFamily(
                    _name("last_fetch_timestamp_seconds"),
                    "When the last run that fetched at least one endpoint finished (unix time); "
                    "/healthz's basis")
                fetched.add_metric([], run["last_fetched_at"])
                yield fetched
        labels = ["router", "endpoint"]
        up = GaugeMetricFamily(_name("router_endpoint_up"),
                               "1 when the endpoint's last fetch succeeded, else 0", labels=labels)
        success = GaugeMetricFamily(_name("router_endpoint_last_success_timestamp_seconds"),
                                    "When the endpoint last answered usably (unix time)", labels=labels)
        rejected = GaugeMetricFamily(_name("router_endpoint_rejected_lines"),
                                     "Malformed lines skipped in the endpoint's last answer",
                                     labels=labels)
        items = GaugeMetricFamily(_name("router_endpoint_items"),
                                  "Stations or leases read from the endpoint's last answer",
                                  labels=labels)
        for router, endpoint, ok_at, error_at, count, bad in s.endpoints:
            key = [router, endpoint]
            up.add_metric(key, 1 if queries.endpoint_ok(ok_at, error_at) else 0)
            if ok_at is not None:
                success.add_metric(key, ok_at)
            if count is not None:
                items.add_metric(key, count)
            if bad is not None:
                rejected.add_metric(key, bad)
        yield from (up, success, rejected, items)
        boot = GaugeMetricFamily(_name("router_boot_timestamp_seconds"),
                                 "When the router last booted, from its last uptime reading (unix time)",
                                 labels=["router"])
        for router, at in s.boots:
            boot.add_metric([router], at)
        yield boot
        # Alerts that could not be delivered are retried by later runs: a count of unsent
        # that stays above 0 means a notification target is broken (see /api/v1/alerts).
        deliveries = GaugeMetricFamily(_name("alert_deliveries"),
                                       "Alert deliveries per notification target (by its label, "
                                       "`mailto #1`): sent, pending (retried by the next runs) or "
                                       "given up (not sent within 3 days)", labels=["target", "status"])
        for target, sent, pending, given_up in s.deliveries:
            deliveries.add_metric([target, "sent"], sent)
            deliveries.add_metric([target, "pending"], pending)
            deliveries.add_metric([target, "given_up"], given_up)
        yield deliveries


def render(snapshot: Snapshot | None) -> bytes:
    """The text exposition (format 0.0.4) of one snapshot, through a registry of its own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return generate_latest(registry)


@bp.get("/metrics")
def metrics() -> Response:
    try:
        conn = db.connection()
        check_schema(conn)
        settings = reads.read_settings(conn)
        period = reads.resolve_period(settings, None, db.now())
        return answers.respond(
            # Deliveries turn from pending to given up with time alone: answers are dated by the hour.
            "metrics", (period.label, int(db.now() // 3600)),
            lambda: read_snapshot(conn, period, settings, db.now()),
            encode=render, content_type=CONTENT_TYPE,
            # The current period's gauges move on at its boundary, with or without a run.
            not_before=period.start.timestamp())
    except (DataUnavailable, sqlite3.Error) as e:
        # Prometheus records the 503 as up == 0 for the target; a person or a federating
        # server reading the body sees netstat_up 0 and, in the comment, why.
        reason = printable(str(e), 2000)
        body = f"# {reason}\n".encode() + render(None)
        return Response(body, status=503, content_type=CONTENT_TYPE,
                        headers={"Cache-Control": "no-store"})
