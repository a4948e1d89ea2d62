"""Read-only queries over the two databases, shared by the API and `netstat-collect report`.

Opens files with `mode=ro` URIs, so nothing here can create, write or migrate a
database, and imports nothing from the collector's write path.

Both files are in WAL mode. A read-only connection still needs the `-shm` index
next to the database: it opens it read-write when it exists, and creates it (and
an empty `-wal`) when the collector's last connection has deleted them. So the
reading user needs write access to the data directory, not to the databases'
contents: the seed's group permissions (directory 775, files 664, a shared group)
give exactly that.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from collector.alerts import forecast
from collector.errors import DataUnavailable
from collector.periods import (
    Period,
    period_containing,
    period_for_label,
)
from collector.schema import (
    LEASES_DB,
    LEGACY_ROUTER,
    STATS_DB,
    WAN,
    column_names,
    has_table,
    sqlite_uri,
)

# A reader waits this long for a writer's commit instead of failing with "database is locked".
BUSY_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class ReadSettings:
    zone: ZoneInfo
    month_start_day: int
    monthly_cap_bytes: int | None = None  # settings.monthly_cap_gib of the last run


def _explain(path: Path, error: sqlite3.Error) -> str:
    """The sqlite error, plus the usual cause when a reader cannot open the WAL index."""
    message = f"{path}: cannot read database: {error}"
    shm = path.with_name(path.name + "-shm")
    if not os.access(path, os.R_OK):
        message += " (this user may not read it: the reader needs read access, e.g. mode 0664 " \
                   "and the data group)"
    elif not shm.exists() and not os.access(path.parent, os.W_OK):
        message += (f" ({shm.name} is missing and this user may not create it: the reader needs "
                    f"write access to {path.parent}, e.g. through the data group)")
    elif shm.exists() and not os.access(shm, os.W_OK):
        message += (f" ({shm.name} is not writable by this user: the reader needs write access "
                    f"to it, e.g. through the data group)")
    return message


def open_readonly(
    data_dir: Path,
    *,
    require: Iterable[str] = (STATS_DB,),
    optional: Iterable[str] = (LEASES_DB,),
) -> sqlite3.Connection:
    """A read-only connection: network_stats.db as `main`, dhcp_leases.db attached as `leases`.

    A file in `require` must exist (else DataUnavailable); one in `optional` is
    attached when present. Without network_stats.db, `main` is an empty in-memory
    database, so the leases alone can be read. Every file opened must be readable,
    else DataUnavailable. The connection is in autocommit mode: `begin_snapshot`
    pins one consistent view for a series of queries.
    """
    data_dir = Path(data_dir)
    wanted = set(require) | set(optional)
    for name in require:
        if not (data_dir / name).exists():
            raise DataUnavailable(f"{data_dir / name}: no such database (has the collector run yet?)")
    stats = data_dir / STATS_DB
    use_stats = STATS_DB in wanted and stats.exists()
    try:
        conn = sqlite3.connect(sqlite_uri(stats, mode="ro") if use_stats else "file::memory:", uri=True,
                               timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                               check_same_thread=False)
    except sqlite3.Error as e:
        raise DataUnavailable(_explain(stats, e)) from None
    try:
        conn.execute("PRAGMA query_only = ON")
        if use_stats:
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.Error as e:
                raise DataUnavailable(_explain(stats, e)) from None
        leases = data_dir / LEASES_DB
        if LEASES_DB in wanted and leases.exists():
            try:
                conn.execute("ATTACH DATABASE ? AS leases", (sqlite_uri(leases, mode="ro"),))
                conn.execute("SELECT count(*) FROM leases.sqlite_master").fetchone()
            except sqlite3.Error as e:
                raise DataUnavailable(_explain(leases, e)) from None
    except BaseException:
        conn.close()
        raise
    return conn


def begin_snapshot(conn: sqlite3.Connection) -> None:
    """Start a read transaction: every later query sees the same committed state.

    In WAL mode each database's snapshot is taken at its first read and held until
    the transaction ends (closing the connection ends it), while the collector
    keeps committing beside it.
    """
    if not conn.in_transaction:
        conn.execute("BEGIN")


def has_leases(conn: sqlite3.Connection) -> bool:
    return any(row[1] == "leases" for row in conn.execute("PRAGMA database_list"))


def read_settings(conn: sqlite3.Connection) -> ReadSettings:
    """The zone, period start day and monthly cap the collector last ran with (stored in meta)."""
    values = dict(conn.execute("SELECT key, value FROM meta")) if has_table(conn, "meta") else {}
    try:
        zone = ZoneInfo(values.get("timezone") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    day = values.get("month_start_day", "1")
    cap = values.get("monthly_cap_bytes", "")
    return ReadSettings(zone, int(day) if day.isdigit() else 1,
                        int(cap) if cap.isdigit() else None)


def iso(at: float | None, zone: ZoneInfo) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, zone).isoformat(timespec="seconds")


def resolve_period(settings: ReadSettings, label: str | None, now: float) -> Period:
    """The period with that label, or the current one; ValueError on a bad label."""
    if label is None:
        return period_containing(now, settings.zone, settings.month_start_day)
    return period_for_label(label, settings.zone, settings.month_start_day)


def device_names(conn: sqlite3.Connection) -> dict[str, tuple[str, str]]:
    """mac -> (hostname, ip): the current lease first, else the last name remembered
    (hostnames as shown: empty for none). Used by usage() and the API's /metrics."""
    if not has_leases(conn):
        return {}
    names: dict[str, tuple[str, str]] = {}
    if has_table(conn, "hosts", "leases"):
        for mac, host, ip in conn.execute("SELECT mac, hostname, ip FROM leases.hosts"):
            names[mac] = (hostname_of(host), ip or "")
    if has_table(conn, "dhcp_leases", "leases"):
        for mac, host, ip in conn.execute(
            "SELECT mac_address, hostname, ip_address FROM leases.dhcp_leases"
        ):
            known = names.get(mac, ("", ""))
            names[mac] = (hostname_of(host) or known[0], ip or known[1])
    return names


def device_labels(conn: sqlite3.Connection) -> dict[str, tuple[str, str]]:
    """mac -> (name, owner) from the configuration of the last run (empty for none).

    The collector replaces the `devices` table with every run, so a past period shows
    today's names. Files from before schema 3 have no such table: no names, no owners.
    """
    if not has_table(conn, "devices"):
        return {}
    return {mac: (name or "", owner or "")
            for mac, name, owner in conn.execute("SELECT mac, name, owner FROM devices")}


def hostname_of(host: str | None) -> str:
    """A stored hostname as shown: empty for none."""
    # dnsmasq writes `*` for "no name"; the Go daemon wrote `Unknown`.
    return "" if host in (None, "*", "Unknown") else host


def usage(conn: sqlite3.Connection, period: Period, settings: ReadSettings) -> dict:
    """One period's WAN total (with the monthly cap, if set) and per-device totals: /api/v1/usage.

    Each device has its configured `name` and `owner` (null when not set) beside the
    `hostname` DHCP gave it.
    """
    zone = settings.zone
    rows = conn.execute(
        "SELECT device, sum(rx_bytes), sum(tx_bytes), max(last_seen), group_concat(router, '\x1f') "
        "FROM usage_period WHERE period = ? GROUP BY device",
        (period.label,),
    ).fetchall() if has_table(conn, "usage_period") else []
    names = device_names(conn)
    labels = device_labels(conn)
    wan = {"rx_bytes": 0, "tx_bytes": 0}
    clients = []
    for device, rx, tx, seen, routers in rows:
        if device == WAN:
            wan = {"rx_bytes": rx, "tx_bytes": tx}
            continue
        hostname, ip = names.get(device, ("", ""))
        name, owner = labels.get(device, ("", ""))
        clients.append({
            "mac": device,
            "name": name or None,
            "owner": owner or None,
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
    # The cap is the setting the collector last ran with, for past periods too: it is the
    # ISP's allowance per period, not a record of what it was back then.
    wan.update(download_bytes=wan["rx_bytes"], upload_bytes=wan["tx_bytes"],
               total_bytes=wan["rx_bytes"] + wan["tx_bytes"], cap_bytes=settings.monthly_cap_bytes)
    last = last_run_at(conn)
    wan["forecast_bytes"], wan["forecast_note"] = _wan_forecast(conn, period, wan["total_bytes"], last)
    return {
        "period": {"label": period.label, "start": period.start.isoformat(),
                   "end": period.end.isoformat()},
        "wan": wan,
        "clients": clients,
        "updated_at": iso(last, zone),
    }


def counted_from(conn: sqlite3.Connection, period: Period) -> float | None:
    """Since when a period's bytes have been counted, for its pace: its start when the Go
    daemon's totals are in it (the daemon counted from then); else the run before the
    period's first run, whose polls its first deltas started from (`periods.counted_from`);
    else the first run in it; None when no run has counted in it."""
    if not has_table(conn, "runs"):
        return None
    if has_table(conn, "usage_period") and conn.execute(
            "SELECT 1 FROM usage_period WHERE period = ? AND router = ? LIMIT 1",
            (period.label, LEGACY_ROUTER)).fetchone() is not None:
        return period.start.timestamp()
    if has_table(conn, "periods") and "counted_from" in column_names(conn, "periods"):
        row = conn.execute("SELECT counted_from FROM periods WHERE label = ?", (period.label,)).fetchone()
        if row is not None and row[0] is not None:
            return row[0]
    start = period.start.timestamp()
    # Not recorded yet (a dry run before the period's first commit, a file from before
    # version 3): what the next commit records (storage._record_counting).
    return conn.execute(
        "SELECT coalesce((SELECT max(started_at) FROM runs WHERE started_at < ?), "
        "(SELECT min(started_at) FROM runs WHERE started_at >= ?))", (start, start)).fetchone()[0]


def _wan_forecast(conn: sqlite3.Connection, period: Period, used: int,
                  last: float | None) -> tuple[int | None, str]:
    """Where the period's WAN total ends at its pace so far, as of the last run (the alerts'
    forecast, collector/alerts.py), and how it was made or why there is none."""
    if last is None or last < period.start.timestamp():
        return None, "no run in this period yet"
    if last >= period.end.timestamp():
        return None, "the period is over"
    # Measured between the polls, as the alerts do: up to the last run's start.
    polled = conn.execute("SELECT started_at FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0]
    outlook = forecast(used, period, counted_from(conn, period), polled)
    return outlook.bytes, outlook.note


_BYTE_FIELDS = ("rx_bytes", "tx_bytes", "download_bytes", "upload_bytes", "total_bytes")


def owners(conn: sqlite3.Connection, period: Period, settings: ReadSettings) -> dict:
    """One period's totals per owner: /api/v1/owners and `report --by owner`.

    Built from usage(), so every number is one usage() shows. The WAN is not a device
    and has no owner; devices without one are one group, `owner: null`, so the groups
    always add up to the devices' total.
    """
    answer = usage(conn, period, settings)
    return {"period": answer["period"], **group_by_owner(answer["clients"]),
            "updated_at": answer["updated_at"]}


def group_by_owner(clients: list[dict]) -> dict:
    """{"owners": [...], "total": {...}} of usage() clients: per owner (None for none) the
    devices, their MACs (in the clients' order) and byte sums, biggest total first."""
    groups: dict[str | None, dict] = {}
    total = dict.fromkeys(_BYTE_FIELDS, 0)
    for client in clients:
        group = groups.get(client["owner"])
        if group is None:
            group = groups[client["owner"]] = {"owner": client["owner"], "devices": 0, "macs": [],
                                               **dict.fromkeys(_BYTE_FIELDS, 0)}
        group["devices"] += 1
        group["macs"].append(client["mac"])
        for field in _BYTE_FIELDS:
            group[field] += client[field]
            total[field] += client[field]
    # Biggest first; among equal totals by name, and "no owner" after every named owner.
    ordered = sorted(groups.values(),
                     key=lambda g: (-g["total_bytes"], g["owner"] is None, g["owner"] or ""))
    return {"owners": ordered, "total": total}


def last_run_at(conn: sqlite3.Connection) -> float | None:
    if not has_table(conn, "runs"):
        return None
    # Runs are inserted in time order: the newest by rowid is O(log n), where
    # max(finished_at) would scan a year of runs on every request.
    row = conn.execute("SELECT finished_at FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else row[0]


def periods(conn: sqlite3.Connection) -> list[dict]:
    """The periods that have data, newest first, with the bounds they were recorded with."""
    if not has_table(conn, "usage_period"):
        return []
    return [
        {"label": label, "start": start, "end": end}
        for label, start, end in conn.execute(
            'SELECT p.label, p.start, p."end" FROM periods p '
            "WHERE EXISTS (SELECT 1 FROM usage_period u WHERE u.period = p.label) "
            "ORDER BY p.label DESC"
        )
    ]
