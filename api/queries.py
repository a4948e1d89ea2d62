"""Queries only the API needs: history, periods, leases, router health, the ETag state and
the api.php table dump. What `netstat-collect report` shares with the API (opening the
files read-only, settings, a period's usage) stays in collector/reads.py.

Read-only like everything in api/: it runs on connections from collector.reads.open_readonly.
"""

from __future__ import annotations

import ipaddress
import os
import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from collector.alerts import DELIVERY_RETRY_SECONDS
from collector.periods import parse_month, period_for_label
from collector.reads import ReadSettings, has_leases, hostname_of, iso
from collector.schema import LEASES_DB, STATS_DB, WAN, has_table, schema_version
from collector.text import log_safe


def last_run(conn: sqlite3.Connection) -> dict | None:
    """The newest committed run, and the newest one that fetched at least one endpoint."""
    if not has_table(conn, "runs"):
        return None
    row = conn.execute(
        "SELECT started_at, finished_at, endpoints_ok, endpoints_failed FROM runs "
        "ORDER BY id DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    newest_fetching = conn.execute(
        "SELECT finished_at FROM runs WHERE endpoints_ok > 0 ORDER BY id DESC LIMIT 1"
    ).fetchone()
    fetched = None if newest_fetching is None else newest_fetching[0]
    return {"started_at": row[0], "finished_at": row[1], "endpoints_ok": row[2],
            "endpoints_failed": row[3], "last_fetched_at": fetched}


# --- What changes when the collector commits ---------------------------------------------


def data_state(conn: sqlite3.Connection) -> tuple:
    """Cheap values that change with every commit the collector makes to either database.

    Read inside the same snapshot as the data they describe (see begin_snapshot),
    so an answer cached under them is exactly the answer for that state.
    """
    state: list = [schema_version(conn)]
    if has_table(conn, "runs"):
        state += conn.execute(
            "SELECT id, finished_at FROM runs ORDER BY id DESC LIMIT 1").fetchone() or (None, None)
    if has_leases(conn):
        state.append(schema_version(conn, "leases"))
        if has_table(conn, "hosts", "leases"):
            state += conn.execute("SELECT max(last_seen), count(*) FROM leases.hosts").fetchone()
        if has_table(conn, "dhcp_leases", "leases"):
            state += conn.execute("SELECT count(*) FROM leases.dhcp_leases").fetchone()
    return tuple(state)


def file_state(data_dir: Path) -> tuple:
    """Identity, size and mtime of both databases and their WAL files.

    Catches what data_state cannot see: a file replaced from a backup, or writes
    by something other than the collector. An empty or missing WAL counts as none,
    because a reader creates an empty one when the collector has removed it.
    """
    state = []
    for name in (STATS_DB, LEASES_DB):
        for suffix in ("", "-wal"):
            try:
                st = os.stat(Path(data_dir) / (name + suffix))
            except OSError:
                state.append(None)
                continue
            state.append(None if suffix and st.st_size == 0
                         else (st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(state)


# --- Time series ---------------------------------------------------------------------------


def _month_labels(first: tuple[int, int], last: tuple[int, int]) -> list[str]:
    labels = []
    year, month = first
    while (year, month) <= last:
        labels.append(f"{year:04d}-{month:02d}")
        year, month = (year, month + 1) if month < 12 else (year + 1, 1)
    return labels


def _point(label: str, start: datetime, end: datetime, rx: int, tx: int, device: str) -> dict:
    # WAN rx is the download; a device's rx (what the access point received) is its upload.
    download, upload = (rx, tx) if device == WAN else (tx, rx)
    return {"label": label, "start": start.isoformat(), "end": end.isoformat(),
            "rx_bytes": rx, "tx_bytes": tx, "download_bytes": download,
            "upload_bytes": upload, "total_bytes": rx + tx}


def daily_history(conn: sqlite3.Connection, device: str, first: date, last: date,
                  settings: ReadSettings) -> list[dict]:
    """One point per local day from first to last (inclusive), summed over routers, zeros filled."""
    sums: dict[str, tuple[int, int]] = {}
    if has_table(conn, "usage_day"):
        for day, rx, tx in conn.execute(
            "SELECT day, sum(rx_bytes), sum(tx_bytes) FROM usage_day "
            "WHERE device = ? AND day BETWEEN ? AND ? GROUP BY day",
            (device, first.isoformat(), last.isoformat()),
        ):
            sums[day] = (rx, tx)
    points = []
    zone = settings.zone
    day = first
    while day <= last:
        label = day.isoformat()
        after = day + timedelta(days=1)
        rx, tx = sums.get(label, (0, 0))
        points.append(_point(label, datetime(day.year, day.month, day.day, tzinfo=zone),
                             datetime(after.year, after.month, after.day, tzinfo=zone),
                             rx, tx, device))
        day = after
    return points


def monthly_history(conn: sqlite3.Connection, device: str, first: str, last: str,
                    settings: ReadSettings) -> list[dict]:
    """One point per billing period from label first to last, summed over routers, zeros filled."""
    labels = _month_labels(parse_month(first), parse_month(last))
    sums: dict[str, tuple[int, int]] = {}
    if has_table(conn, "usage_period"):
        for label, rx, tx in conn.execute(
            "SELECT period, sum(rx_bytes), sum(tx_bytes) FROM usage_period "
            "WHERE device = ? AND period BETWEEN ? AND ? GROUP BY period",
            (device, first, last),
        ):
            sums[label] = (rx, tx)
    points = []
    for label in labels:
        period = period_for_label(label, settings.zone, settings.month_start_day)
        rx, tx = sums.get(label, (0, 0))
        points.append(_point(label, period.start, period.end, rx, tx, device))
    return points


def known_device(conn: sqlite3.Connection, device: str) -> bool:
    """The device has traffic in some period, or a lease or a remembered name."""
    if has_table(conn, "usage_period") and conn.execute(
        "SELECT 1 FROM usage_period WHERE device = ? LIMIT 1", (device,)
    ).fetchone():
        return True
    for table, column in (("hosts", "mac"), ("dhcp_leases", "mac_address")):
        if has_table(conn, table, "leases") and conn.execute(
            f"SELECT 1 FROM leases.{table} WHERE {column} = ? LIMIT 1", (device,)
        ).fetchone():
            return True
    return False


# --- Leases and routers -----------------------------------------------------------------------


def _ip_key(ip: str | None) -> tuple:
    try:
        return (0, int(ipaddress.ip_address(ip or "")))
    except ValueError:
        return (1, ip or "")


def _local_stamp(text: str | None, zone: ZoneInfo) -> str | None:
    """The seed's `YYYY-MM-DD HH:MM:SS` local time as ISO 8601 with the zone's offset."""
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone).isoformat()
    except ValueError:
        return text


def _expiry(end: object, zone: ZoneInfo) -> str | None:
    # dnsmasq writes 0 for a lease that never expires; the Go daemon's rows may hold anything.
    if not isinstance(end, (int, float)) or isinstance(end, bool) or end <= 0:
        return None
    try:
        return iso(end, zone)
    except (OverflowError, OSError, ValueError):
        return None


def leases(conn: sqlite3.Connection, settings: ReadSettings) -> list[dict]:
    """Every current DHCP lease, by router and IP address."""
    if not has_table(conn, "dhcp_leases", "leases"):
        return []
    has_router = any(row[1] == "router" for row in
                     conn.execute("PRAGMA leases.table_info(dhcp_leases)"))
    rows = conn.execute(
        "SELECT mac_address, ip_address, hostname, client_id, lease_end_time, timestamp, "
        + ("router" if has_router else "NULL") + " FROM leases.dhcp_leases"
    ).fetchall()
    result = [
        {
            "mac": mac,
            "ip": ip or None,
            "hostname": hostname_of(host) or None,
            "client_id": client_id or None,
            "expires_at": _expiry(end, settings.zone),
            "router": router,
            "updated_at": _local_stamp(stamp, settings.zone),
        }
        for mac, ip, host, client_id, end, stamp, router in rows
    ]
    result.sort(key=lambda x: (x["router"] or "", _ip_key(x["ip"]), x["mac"] or ""))
    return result


def endpoint_ok(ok_at: float | None, error_at: float | None) -> bool:
    """The last attempt succeeded when no failure came after the last success."""
    return ok_at is not None and (error_at is None or ok_at >= error_at)


def routers(conn: sqlite3.Connection, settings: ReadSettings) -> list[dict]:
    """Per router: its last uptime reading and, per endpoint, the last success and failure."""
    zone = settings.zone
    by_router: dict[str, dict] = {}

    def entry(router: str) -> dict:
        return by_router.setdefault(router, {"router": router, "ok": True, "uptime_seconds": None,
                                             "uptime_sampled_at": None, "booted_at": None,
                                             "endpoints": []})

    if has_table(conn, "router_uptime"):
        for router, up, at in conn.execute(
            "SELECT router, uptime_seconds, sampled_at FROM router_uptime"
        ):
            e = entry(router)
            e.update(uptime_seconds=up, uptime_sampled_at=iso(at, zone), booted_at=iso(at - up, zone))
    if has_table(conn, "router_endpoints"):
        for (router, endpoint, ok_at, error, error_at, attempt_at, items, rejected) in conn.execute(
            "SELECT router, endpoint, last_ok_at, last_error, last_error_at, last_attempt_at, "
            "items, rejected FROM router_endpoints ORDER BY router, endpoint"
        ):
            ok = endpoint_ok(ok_at, error_at)
            e = entry(router)
            e["ok"] = e["ok"] and ok
            e["endpoints"].append({
                "endpoint": endpoint, "ok": ok, "last_ok_at": iso(ok_at, zone),
                # log_safe again: rows that older versions stored raw.
                "last_attempt_at": iso(attempt_at, zone),
                "last_error": log_safe(error) if error else None,
                "last_error_at": iso(error_at, zone), "items": items, "rejected": rejected,
            })
    return [by_router[k] for k in sorted(by_router)]


def alerts(conn: sqlite3.Connection, settings: ReadSettings, now: float, limit: int) -> dict:
    """The newest alerts raised, each with its delivery to every target, and per target a
    summary: what an operator checks when an expected message did not come."""
    if not has_table(conn, "alerts"):
        return {"alerts": [], "targets": []}
    zone = settings.zone
    rows = conn.execute(
        "SELECT id, kind, period, subject, threshold, raised_at, title, body FROM alerts "
        "ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    by_id: dict[int, dict] = {}
    found = []
    for alert_id, kind, period, subject, threshold, raised_at, title, body in rows:
        item = {"kind": kind, "period": period, "subject": subject, "threshold": threshold,
                "raised_at": iso(raised_at, zone), "title": title, "body": body, "deliveries": []}
        by_id[alert_id] = item
        found.append(item)
    given_up_before = now - DELIVERY_RETRY_SECONDS
    targets: dict[str, dict] = {}
    for alert_id, raised_at, label, sent_at, attempts, error, attempt_at in conn.execute(
        "SELECT d.alert, a.raised_at, d.target, d.sent_at, d.attempts, d.last_error, d.last_attempt_at "
        "FROM alert_deliveries d JOIN alerts a ON a.id = d.alert ORDER BY d.alert, d.target"
    ):
        status = ("sent" if sent_at is not None else
                  "given_up" if raised_at < given_up_before else "pending")
        summary = targets.setdefault(label, {"target": label, "sent": 0, "pending": 0, "given_up": 0,
                                             "last_error": None, "last_attempt_at": None})
        summary[status] += 1
        if attempt_at is not None and (summary["last_attempt_at"] is None
                                       or attempt_at >= summary["last_attempt_at"]):
            summary["last_attempt_at"] = attempt_at
            summary["last_error"] = log_safe(error) if error else None
        if alert_id in by_id:
            by_id[alert_id]["deliveries"].append({
                "target": label, "status": status, "sent_at": iso(sent_at, zone), "attempts": attempts,
                "last_error": log_safe(error) if error else None,
                "last_attempt_at": iso(attempt_at, zone)})
    for summary in targets.values():
        summary["last_attempt_at"] = iso(summary["last_attempt_at"], zone)
    return {"alerts": found, "targets": [targets[k] for k in sorted(targets)]}


def delivery_counts(conn: sqlite3.Connection, now: float) -> list[tuple[str, int, int, int]]:
    """(target, sent, pending, given up) deliveries per notification target, for /metrics.
    Pending: not sent and still retried; given up: not sent within the retry window."""
    if not has_table(conn, "alert_deliveries"):
        return []
    return conn.execute(
        "SELECT d.target, count(d.sent_at), "
        "sum(d.sent_at IS NULL AND a.raised_at >= ?), sum(d.sent_at IS NULL AND a.raised_at < ?) "
        "FROM alert_deliveries d JOIN alerts a ON a.id = d.alert GROUP BY d.target ORDER BY d.target",
        (now - DELIVERY_RETRY_SECONDS, now - DELIVERY_RETRY_SECONDS)).fetchall()


# --- Totals for /metrics ---------------------------------------------------------------------


def device_totals(conn: sqlite3.Connection, active: tuple[str, ...]) -> list[tuple[str, int, int]]:
    """(device, rx, tx) over every period and router, for the devices (WAN excluded) with a
    row in one of the `active` periods (the collector saw them then, with or without traffic)."""
    if not has_table(conn, "usage_period") or not active:
        return []
    marks = ", ".join("?" * len(active))
    return conn.execute(
        "SELECT device, sum(rx_bytes), sum(tx_bytes) FROM usage_period "
        f"WHERE device != ? AND device IN (SELECT device FROM usage_period WHERE period IN ({marks})) "
        "GROUP BY device ORDER BY device",
        (WAN, *active),
    ).fetchall()


def wan_totals(conn: sqlite3.Connection) -> list[tuple[str, int, int]]:
    """(router, rx, tx) of the WAN over every period, per router."""
    if not has_table(conn, "usage_period"):
        return []
    return conn.execute(
        "SELECT router, sum(rx_bytes), sum(tx_bytes) FROM usage_period WHERE device = ? "
        "GROUP BY router ORDER BY router", (WAN,)
    ).fetchall()


def period_totals(conn: sqlite3.Connection, label: str) -> list[tuple[str, int, int]]:
    """(device, rx, tx) of one period summed over routers, the WAN (main_wan) included."""
    if not has_table(conn, "usage_period"):
        return []
    return conn.execute(
        "SELECT device, sum(rx_bytes), sum(tx_bytes) FROM usage_period WHERE period = ? "
        "GROUP BY device ORDER BY device", (label,)
    ).fetchall()


def endpoint_rows(conn: sqlite3.Connection) -> list[tuple]:
    """(router, endpoint, last_ok_at, last_error_at, items, rejected) per router and endpoint."""
    if not has_table(conn, "router_endpoints"):
        return []
    return conn.execute(
        "SELECT router, endpoint, last_ok_at, last_error_at, items, rejected FROM router_endpoints "
        "ORDER BY router, endpoint"
    ).fetchall()


def boot_times(conn: sqlite3.Connection) -> list[tuple[str, float]]:
    """(router, when it booted, from its last uptime reading)."""
    if not has_table(conn, "router_uptime"):
        return []
    return conn.execute(
        "SELECT router, sampled_at - uptime_seconds FROM router_uptime ORDER BY router").fetchall()


# --- The seed's tables, as api.php read them ----------------------------------------------------


def table_rows(conn: sqlite3.Connection, table: str, schema: str) -> list[dict] | None:
    """Every row of a seed table as {column: value} in the table's column order; None if absent."""
    if not has_table(conn, table, schema):
        return None
    cursor = conn.execute(f"SELECT * FROM {schema}.{table}")
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor]
