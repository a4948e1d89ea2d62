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

import ipaddress
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from collector.accounting import WAN, Period, period_containing, period_for_label
from collector.schema import sqlite_uri
from collector.text import log_safe

STATS_DB = "network_stats.db"
LEASES_DB = "dhcp_leases.db"
# A reader waits this long for a writer's commit instead of failing with "database is locked".
BUSY_TIMEOUT_SECONDS = 10
# Dates and period labels outside these years are refused: a period's end must stay a date.
MIN_YEAR = 1970
MAX_YEAR = 9998


class DataUnavailable(Exception):
    """A database is missing or unreadable; the message names the file and the problem."""


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


def _has_table(conn: sqlite3.Connection, table: str, schema: str = "main") -> bool:
    if schema == "leases" and not has_leases(conn):
        return False
    return conn.execute(
        f"SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone() is not None


def read_settings(conn: sqlite3.Connection) -> ReadSettings:
    """The zone, period start day and monthly cap the collector last ran with (stored in meta)."""
    values = dict(conn.execute("SELECT key, value FROM meta")) if _has_table(conn, "meta") else {}
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
    parse_month(label, "period")
    return period_for_label(label, settings.zone, settings.month_start_day)


def parse_month(text: str, name: str = "month") -> tuple[int, int]:
    """`YYYY-MM` -> (year, month); ValueError saying what is wrong."""
    year_text, sep, month_text = text.partition("-")
    if (sep and len(year_text) == 4 and len(month_text) == 2 and year_text.isdigit()
            and month_text.isdigit() and year_text.isascii() and month_text.isascii()):
        year, month = int(year_text), int(month_text)
        if MIN_YEAR <= year <= MAX_YEAR and 1 <= month <= 12:
            return year, month
    raise ValueError(f"{name} must be a month YYYY-MM from {MIN_YEAR}-01 to {MAX_YEAR}-12, "
                     f"got {text!r}")


def parse_day(text: str, name: str = "day") -> date:
    """`YYYY-MM-DD` -> date; ValueError saying what is wrong."""
    parts = text.split("-")
    if (len(parts) == 3 and [len(p) for p in parts] == [4, 2, 2]
            and all(p.isdigit() and p.isascii() for p in parts)):
        try:
            day = date(int(parts[0]), int(parts[1]), int(parts[2]))
        except ValueError:
            pass
        else:
            if MIN_YEAR <= day.year <= MAX_YEAR:
                return day
    raise ValueError(f"{name} must be a date YYYY-MM-DD from {MIN_YEAR}-01-01 to "
                     f"{MAX_YEAR}-12-31, got {text!r}")


def _names(conn: sqlite3.Connection) -> dict[str, tuple[str, str]]:
    """mac -> (hostname, ip): the current lease first, else the last name remembered."""
    if not has_leases(conn):
        return {}
    names: dict[str, tuple[str, str]] = {}
    if _has_table(conn, "hosts", "leases"):
        for mac, host, ip in conn.execute("SELECT mac, hostname, ip FROM leases.hosts"):
            names[mac] = (_hostname(host), ip or "")
    if _has_table(conn, "dhcp_leases", "leases"):
        for mac, host, ip in conn.execute(
            "SELECT mac_address, hostname, ip_address FROM leases.dhcp_leases"
        ):
            known = names.get(mac, ("", ""))
            names[mac] = (_hostname(host) or known[0], ip or known[1])
    return names


def _hostname(host: str | None) -> str:
    # dnsmasq writes `*` for "no name"; the Go daemon wrote `Unknown`.
    return "" if host in (None, "*", "Unknown") else host


def usage(conn: sqlite3.Connection, period: Period, settings: ReadSettings) -> dict:
    """One period's WAN total (with the monthly cap, if set) and per-device totals: /api/v1/usage."""
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
    # The cap is the setting the collector last ran with, for past periods too: it is the
    # ISP's allowance per period, not a record of what it was back then.
    wan.update(download_bytes=wan["rx_bytes"], upload_bytes=wan["tx_bytes"],
               total_bytes=wan["rx_bytes"] + wan["tx_bytes"], cap_bytes=settings.monthly_cap_bytes)
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
    # Runs are inserted in time order: the newest by rowid is O(log n), where
    # max(finished_at) would scan a year of runs on every request.
    row = conn.execute("SELECT finished_at FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else row[0]


def last_run(conn: sqlite3.Connection) -> dict | None:
    """The newest committed run, and the newest one that fetched at least one endpoint."""
    if not _has_table(conn, "runs"):
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


# --- What changes when the collector commits ---------------------------------------------


def data_state(conn: sqlite3.Connection) -> tuple:
    """Cheap values that change with every commit the collector makes to either database.

    Read inside the same snapshot as the data they describe (see begin_snapshot),
    so an answer cached under them is exactly the answer for that state.
    """
    state: list = [conn.execute("PRAGMA main.user_version").fetchone()[0]]
    if _has_table(conn, "runs"):
        state += conn.execute(
            "SELECT id, finished_at FROM runs ORDER BY id DESC LIMIT 1").fetchone() or (None, None)
    if has_leases(conn):
        state.append(conn.execute("PRAGMA leases.user_version").fetchone()[0])
        if _has_table(conn, "hosts", "leases"):
            state += conn.execute("SELECT max(last_seen), count(*) FROM leases.hosts").fetchone()
        if _has_table(conn, "dhcp_leases", "leases"):
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
    if _has_table(conn, "usage_day"):
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
    if _has_table(conn, "usage_period"):
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
    if _has_table(conn, "usage_period") and conn.execute(
        "SELECT 1 FROM usage_period WHERE device = ? LIMIT 1", (device,)
    ).fetchone():
        return True
    for table, column in (("hosts", "mac"), ("dhcp_leases", "mac_address")):
        if _has_table(conn, table, "leases") and conn.execute(
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
    if not _has_table(conn, "dhcp_leases", "leases"):
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
            "hostname": _hostname(host) or None,
            "client_id": client_id or None,
            "expires_at": _expiry(end, settings.zone),
            "router": router,
            "updated_at": _local_stamp(stamp, settings.zone),
        }
        for mac, ip, host, client_id, end, stamp, router in rows
    ]
    result.sort(key=lambda x: (x["router"] or "", _ip_key(x["ip"]), x["mac"] or ""))
    return result


def routers(conn: sqlite3.Connection, settings: ReadSettings) -> list[dict]:
    """Per router: its last uptime reading and, per endpoint, the last success and failure."""
    zone = settings.zone
    by_router: dict[str, dict] = {}

    def entry(router: str) -> dict:
        return by_router.setdefault(router, {"router": router, "ok": True, "uptime_seconds": None,
                                             "uptime_sampled_at": None, "booted_at": None,
                                             "endpoints": []})

    if _has_table(conn, "router_uptime"):
        for router, up, at in conn.execute(
            "SELECT router, uptime_seconds, sampled_at FROM router_uptime"
        ):
            e = entry(router)
            e.update(uptime_seconds=up, uptime_sampled_at=iso(at, zone), booted_at=iso(at - up, zone))
    if _has_table(conn, "router_endpoints"):
        for (router, endpoint, ok_at, error, error_at, attempt_at, items, rejected) in conn.execute(
            "SELECT router, endpoint, last_ok_at, last_error, last_error_at, last_attempt_at, "
            "items, rejected FROM router_endpoints ORDER BY router, endpoint"
        ):
            # The last attempt succeeded when no failure came after the last success.
            ok = ok_at is not None and (error_at is None or ok_at >= error_at)
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


# --- The seed's tables, as api.php read them ----------------------------------------------------


def table_rows(conn: sqlite3.Connection, table: str, schema: str) -> list[dict] | None:
    """Every row of a seed table as {column: value} in the table's column order; None if absent."""
    if not _has_table(conn, table, schema):
        return None
    cursor = conn.execute(f"SELECT * FROM {schema}.{table}")
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor]
