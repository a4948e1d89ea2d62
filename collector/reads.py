"""Read-only queries over the two databases, shared by the API and `netstat-collect report`.

Opens files with `mode=ro` URIs, so nothing here can create, write or migrate a
database, and imports nothing from the collector's write path.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from collector.accounting import WAN, Period, period_containing, period_for_label

STATS_DB = "network_stats.db"
LEASES_DB = "dhcp_leases.db"
# A reader waits this long for a writer's commit instead of failing with "database is locked".
BUSY_TIMEOUT_SECONDS = 10


class DataUnavailable(Exception):
    """A database is missing or unreadable; the message names the file and the problem."""


@dataclass(frozen=True)
class ReadSettings:
    zone: ZoneInfo
    month_start_day: int


def _uri(path: Path) -> str:
    return f"file:{path}?mode=ro"


def open_readonly(data_dir: Path) -> sqlite3.Connection:
    """network_stats.db read-only, with dhcp_leases.db attached as `leases` when present."""
    stats = data_dir / STATS_DB
    if not stats.exists():
        raise DataUnavailable(f"{stats}: no such database (has the collector run yet?)")
    try:
        conn = sqlite3.connect(_uri(stats), uri=True, timeout=BUSY_TIMEOUT_SECONDS,
                               check_same_thread=False)
        conn.execute("PRAGMA query_only = ON")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as e:
        raise DataUnavailable(f"{stats}: cannot read database: {e}") from None
    leases = data_dir / LEASES_DB
    if leases.exists():
        try:
            conn.execute("ATTACH DATABASE ? AS leases", (_uri(leases),))
            conn.execute("SELECT count(*) FROM leases.sqlite_master").fetchone()
        except sqlite3.Error as e:
            conn.close()
            raise DataUnavailable(f"{leases}: cannot read database: {e}") from None
    return conn


def has_leases(conn: sqlite3.Connection) -> bool:
    return any(row[1] == "leases" for row in conn.execute("PRAGMA database_list"))


def _has_table(conn: sqlite3.Connection, table: str, schema: str = "main") -> bool:
    return conn.execute(
        f"SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone() is not None


def read_settings(conn: sqlite3.Connection) -> ReadSettings:
    """The zone and period start day the collector last ran with (stored in meta)."""
    values = dict(conn.execute("SELECT key, value FROM meta")) if _has_table(conn, "meta") else {}
    try:
        zone = ZoneInfo(values.get("timezone") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    day = values.get("month_start_day", "1")
    return ReadSettings(zone, int(day) if day.isdigit() else 1)


def iso(at: float | None, zone: ZoneInfo) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, zone).isoformat(timespec="seconds")


def resolve_period(settings: ReadSettings, label: str | None, now: float) -> Period:
    """The period with that label, or the current one; ValueError on a bad label."""
    if label is None:
        return period_containing(now, settings.zone, settings.month_start_day)
    return period_for_label(label, settings.zone, settings.month_start_day)


def _names(conn: sqlite3.Connection) -> dict[str, tuple[str, str]]:
    """mac -> (hostname, ip): the current lease first, else the last name remembered."""
    if not has_leases(conn):
        return {}
    names: dict[str, tuple[str, str]] = {}
    if _has_table(conn, "hosts", "leases"):
        for mac, host, ip in conn.execute("SELECT mac, hostname, ip FROM leases.hosts"):
            names[mac] = (host or "", ip or "")
    if _has_table(conn, "dhcp_leases", "leases"):
        for mac, host, ip in conn.execute(
            "SELECT mac_address, hostname, ip_address FROM leases.dhcp_leases"
        ):
            known = names.get(mac, ("", ""))
            host = "" if host in (None, "*", "Unknown") else host
            names[mac] = (host or known[0], ip or known[1])
    return names


def usage(conn: sqlite3.Connection, period: Period, settings: ReadSettings) -> dict:
    """One period's WAN total and per-device totals: the /api/v1/usage object."""
    zone = settings.zone
    rows = conn.execute(
        "SELECT device, sum(rx_bytes), sum(tx_bytes), max(last_seen), group_concat(router, '\x1f') "
        "FROM usage_period WHERE period = ? GROUP BY device",
        (period.label,),
    ).fetchall() if _has_table(conn, "usage_period") else []
    names = _names(conn)
    wan = {"rx_bytes": 0, "tx_bytes": 0}
    clients = []
    for device, rx, tx, seen, routers in rows:
        if device == WAN:
            wan = {"rx_bytes": rx, "tx_bytes": tx}
            continue
        hostname, ip = names.get(device, ("", ""))
        clients.append({
            "mac": device,
            "hostname": hostname or None,
            "ip": ip or None,
            "rx_bytes": rx,
            "tx_bytes": tx,
            # The access point's rx is what the device sent: its upload.
            "download_bytes": tx,
            "upload_bytes": rx,
            "total_bytes": rx + tx,
            "last_seen": iso(seen, zone),
            "routers": sorted(set(routers.split("\x1f"))),
        })
    clients.sort(key=lambda c: (-c["total_bytes"], c["mac"]))
    wan.update(download_bytes=wan["rx_bytes"], upload_bytes=wan["tx_bytes"])
    return {
        "period": {"label": period.label, "start": period.start.isoformat(),
                   "end": period.end.isoformat()},
        "wan": wan,
        "clients": clients,
        "updated_at": iso(last_run_at(conn), zone),
    }


def last_run_at(conn: sqlite3.Connection) -> float | None:
    if not _has_table(conn, "runs"):
        return None
    return conn.execute("SELECT max(finished_at) FROM runs").fetchone()[0]


def periods(conn: sqlite3.Connection) -> list[dict]:
    """The periods that have data, newest first, with the bounds they were recorded with."""
    if not _has_table(conn, "usage_period"):
        return []
    return [
        {"label": label, "start": start, "end": end}
        for label, start, end in conn.execute(
            'SELECT p.label, p.start, p."end" FROM periods p '
            "WHERE EXISTS (SELECT 1 FROM usage_period u WHERE u.period = p.label) "
            "ORDER BY p.label DESC"
        )
    ]
