"""The two SQLite files: schema, migrations, and the one transaction per database per run.

This is the only module that writes to the databases. It keeps the seed's tables
(`cumulative_stats`, `monthly_stats`, `dhcp_leases`) with their columns so that the
old `api.php` still works on our files, and adds history, baselines and router
health beside them.

Journal mode: WAL. A reader (the API, another OS user in the data group) keeps
reading the last committed state while a run commits, instead of waiting on the
writer's lock as it would with a rollback journal; and a reader never has to roll
back a hot journal left by a killed run, which a read-only connection could not do.
synchronous=NORMAL: a commit is atomic and survives a crash of the process; a
power cut may undo the last run, and because baselines roll back together with
the totals, the next run then counts that interval again, once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from collector import alerts
from collector.accounting import Baseline, RouterState, UptimeMark, Usage
from collector.config import Alerts, DeviceLabel
from collector.errors import LockBusy, StorageError
from collector.parse import Lease
from collector.periods import local_timestamp, period_containing, period_for_label
from collector.reads import counted_from
from collector.schema import (
    LEASES_ROUTER_COLUMN,
    LEASES_STEPS,
    LEGACY_ROUTER,
    LOCK_FILE,
    MAX_STORED_BYTES,
    SCHEMA_VERSION,
    STATS_STEPS,
    WAN,
    column_names,
    has_table,
    schema_version,
    sqlite_uri,
)
from collector.sim.faults import crash_point
from collector.text import log_safe

RUNS_KEPT = 20000  # about a year of 30-minute runs


@dataclass(frozen=True)
class EndpointStatus:
    """How one endpoint fared in this run, for the router health table."""

    router: str
    endpoint: str
    ok: bool
    at: float
    items: int = 0
    rejected: int = 0
    error: str = ""


@dataclass(frozen=True)
class RunUpdate:
    """Everything one run writes: network_stats.db in one transaction, then dhcp_leases.db."""

    started_at: float
    finished_at: float
    current_period_at: float  # the poll time that decides which period monthly_stats shows
    usage: list[Usage]
    baselines: Mapping[str, Mapping[str, Baseline]]  # router -> complete new baseline map
    uptimes: Mapping[str, UptimeMark]
    endpoints: list[EndpointStatus]
    leases: Mapping[str, list[Lease]] = field(default_factory=dict)  # router -> its latest leases
    monthly_cap_bytes: int | None = None  # settings.monthly_cap_gib, for readers
    labels: Mapping[str, DeviceLabel] = field(default_factory=dict)  # the config's names and owners
    alert_rules: Alerts | None = None  # None: no alerts configured
    public_url: str = ""  # the dashboard's address, for alert messages


@dataclass
class Committed:
    """What commit_run reports: totals refused, and the alerts this run raised."""

    notes: list[str]
    raised: list[alerts.Alert]


@dataclass(frozen=True)
class Database:
    """An open database and its file, which every error message names."""

    conn: sqlite3.Connection | None  # None: no file yet (a dry run before the first run)
    path: Path


def _group_writable_mode() -> int:
    """rw for owner and group, others as the umask says: the API reads as another user
    in the data group, and needs to write the -shm file that WAL readers share."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o666 & ~umask) | 0o060


def connect_writer(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) a database for this run's single write transaction."""
    try:
        if not path.exists():
            # SQLite creates files 0644 whatever the umask; -wal and -shm then copy
            # the database file's mode, so setting it here is enough.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, _group_writable_mode()))
            os.chmod(path, _group_writable_mode())
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    except (sqlite3.Error, OSError) as e:
        raise StorageError(f"{path}: cannot open database: {e}") from None
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn
    except sqlite3.Error as e:
        conn.close()  # a full disk or a corrupt file: nothing of this run may hold it open
        raise StorageError(f"{path}: cannot open database: {e}") from None


def check_pair(stats: Path, leases: Path) -> None:
    """Refuse to start new history beside old: both files exist, or neither (a first run).

    A lone file means the other was lost or moved; recreating it would silently
    restart the month's totals from zero or forget every device's name.
    """
    missing = [p for p in (stats, leases) if not p.exists()]
    if len(missing) == 1:
        other = leases if missing[0] == stats else stats
        raise StorageError(
            f"{missing[0]}: missing while {other.name} exists; restore it from a backup, "
            f"or move {other.name} away too to start new history"
        )


def connect_snapshot(path: Path, scratch: Path) -> sqlite3.Connection | None:
    """The committed state of a database, without touching its directory (for --dry-run).

    Even a `mode=ro` connection to a WAL database creates or writes the -shm
    file. With no WAL content to read, `immutable=1` reads the file alone;
    otherwise the database and its WAL are copied to `scratch` and read there.
    None when there is no database.
    """
    if not path.exists():
        return None
    wal = path.with_name(path.name + "-wal")
    conn = None
    try:
        if wal.exists() and wal.stat().st_size > 0:
            copy = scratch / path.name
            shutil.copyfile(path, copy)
            shutil.copyfile(wal, scratch / wal.name)
            conn = sqlite3.connect(copy)
        else:
            conn = sqlite3.connect(sqlite_uri(path, immutable=1), uri=True)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except (sqlite3.Error, OSError) as e:
        if conn is not None:
            conn.close()
        raise StorageError(f"{path}: cannot read database: {e}") from None


# --- Transactions and migrations --------------------------------------------------------------


@contextmanager
def atomic(conn: sqlite3.Connection, path: Path, what: str) -> Iterator[sqlite3.Connection]:
    """One write transaction: BEGIN IMMEDIATE, COMMIT on success, ROLLBACK on any error.

    The one place a write transaction is opened, committed, rolled back and its
    SQLite errors turned into a StorageError naming the file and `what` was being
    done. IMMEDIATE takes the write lock at once, so a busy database fails here,
    before anything is computed against a state that could change.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield conn
        conn.execute("COMMIT")
    except sqlite3.Error as e:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise StorageError(f"{path}: {what}: {e}") from None
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _execute_script(conn: sqlite3.Connection, script: str) -> None:
    """Run DDL statements inside the caller's transaction.

    Not executescript(): it commits a pending transaction first, and a migration
    must be all or nothing.
    """
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _migrate(conn: sqlite3.Connection, path: Path, run_step: Callable[[int], None]) -> None:
    """Bring one file to SCHEMA_VERSION: `run_step(n)` for each missing step, all in one
    transaction, so an interrupted upgrade leaves the file as it was."""
    try:
        version = schema_version(conn)
    except sqlite3.Error as e:
        raise StorageError(f"{path}: cannot read database: {e}") from None
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"{path}: schema version {version} is newer than this netstat-collect "
            f"understands ({SCHEMA_VERSION}); upgrade netstat-collect"
        )
    with atomic(conn, path, "cannot upgrade database"):
        for step in range(version + 1, SCHEMA_VERSION + 1):
            run_step(step)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def migrate_stats(conn: sqlite3.Connection, path: Path, zone: ZoneInfo, month_start_day: int) -> None:
    """Bring network_stats.db to SCHEMA_VERSION in one transaction.

    A file written by the Go daemon (user_version 0 with monthly_stats rows) keeps
    its totals: each row moves into the history of the period its timestamp lies in.
    Its cumulative_stats baselines were shared across routers and cannot be
    trusted per router, so each router's first run after the upgrade records
    fresh baselines.
    """

    def run_step(step: int) -> None:
        legacy = step == 1 and has_table(conn, "monthly_stats")
        _execute_script(conn, STATS_STEPS[step])
        if legacy:
            _import_go_daemon_totals(conn, zone, month_start_day)

    _migrate(conn, path, run_step)


def _import_go_daemon_totals(conn: sqlite3.Connection, zone: ZoneInfo, month_start_day: int) -> None:
    rows = conn.execute(
        "SELECT id, coalesce(rx_bytes, 0), coalesce(tx_bytes, 0), timestamp FROM monthly_stats"
    ).fetchall()
    for device, rx, tx, stamp in rows:
        try:
            # The daemon wrote local time without a zone: read it in the configured one.
            local = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone)
        except (TypeError, ValueError):
            continue  # a row with no usable time cannot be put in a period
        seen = local.timestamp()
        period = period_containing(seen, zone, month_start_day)
        _record_period(conn, period.label, zone, month_start_day)
        conn.execute(
            "INSERT INTO usage_period (period, device, router, rx_bytes, tx_bytes, last_seen) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (period.label, device, LEGACY_ROUTER, int(rx), int(tx), seen),
        )


def migrate_leases(conn: sqlite3.Connection, path: Path) -> None:
    """Bring dhcp_leases.db to SCHEMA_VERSION; the Go daemon's leases feed the name memory."""

    def run_step(step: int) -> None:
        script = LEASES_STEPS[step]
        if step == 1 and has_table(conn, "dhcp_leases") and "router" in column_names(conn, "dhcp_leases"):
            script = script.replace(LEASES_ROUTER_COLUMN, "")
        _execute_script(conn, script)
        if step == 1:
            now = time.time()
            conn.execute(
                "INSERT OR IGNORE INTO hosts (mac, hostname, ip, client_id, first_seen, last_seen) "
                "SELECT mac_address, CASE WHEN hostname IN ('Unknown', '*') THEN '' "
                "ELSE coalesce(hostname, '') END, coalesce(ip_address, ''), "
                "coalesce(client_id, ''), ?, ? FROM dhcp_leases WHERE mac_address IS NOT NULL",
                (now, now),
            )

    _migrate(conn, path, run_step)


# --- Reading the state a run starts from ----------------------------------------------------


def load_states(conn: sqlite3.Connection | None) -> tuple[dict[str, RouterState], float | None]:
    """Every router's remembered state, and the time of the last committed run.

    With no database, or one not yet migrated (a dry run does not migrate), every
    router starts at first contact.
    """
    version = None if conn is None else schema_version(conn)
    if version is None or not 1 <= version <= SCHEMA_VERSION:
        return {}, None
    # A dry run reads the file as it is: version 1 knew no connected_hint yet.
    hint_column = "connected_hint" if version >= 2 else "0"
    baselines: dict[str, dict[str, Baseline]] = {}
    for router, device, rx, tx, at, hint in conn.execute(
        f"SELECT router, device, rx_bytes, tx_bytes, sampled_at, {hint_column} FROM baselines"
    ):
        baselines.setdefault(router, {})[device] = Baseline(rx, tx, at, bool(hint))
    uptimes = {
        router: UptimeMark(up, at)
        for router, up, at in conn.execute("SELECT router, uptime_seconds, sampled_at FROM router_uptime")
    }
    ap_ok = dict(
        conn.execute(
            "SELECT router, last_ok_at FROM router_endpoints "
            "WHERE endpoint = 'ap_stats' AND last_ok_at IS NOT NULL"
        )
    )
    routers = set(baselines) | set(uptimes) | set(ap_ok)
    states = {
        r: RouterState(
            baselines=baselines.get(r, {}),
            uptime=uptimes.get(r),
            ap_known=r in ap_ok,
            last_ap_at=ap_ok.get(r),
        )
        for r in routers
    }
    row = conn.execute("SELECT finished_at FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    return states, None if row is None else row[0]


# --- Writing one run ------------------------------------------------------------------------


def _record_period(conn: sqlite3.Connection, label: str, zone: ZoneInfo, month_start_day: int) -> None:
    period = period_for_label(label, zone, month_start_day)
    conn.execute(
        'INSERT OR IGNORE INTO periods (label, start, "end") VALUES (?, ?, ?)',
        (label, period.start.isoformat(), period.end.isoformat()),
    )


# A period total grows only while it stays within MAX_STORED_BYTES; a refused row
# changes nothing, which the caller sees in the number of rows changed.
_ADD_TO_PERIOD = (
    "INSERT INTO usage_period (period, device, router, rx_bytes, tx_bytes, last_seen) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (period, device, router) DO UPDATE SET "
    "rx_bytes = rx_bytes + excluded.rx_bytes, tx_bytes = tx_bytes + excluded.tx_bytes, "
    "last_seen = max(last_seen, excluded.last_seen) "
    f"WHERE rx_bytes + excluded.rx_bytes <= {MAX_STORED_BYTES} "
    f"AND tx_bytes + excluded.tx_bytes <= {MAX_STORED_BYTES}"
)


def _add_usage(conn: sqlite3.Connection, usage: list[Usage]) -> list[str]:
    """Add a run's usage to the period and day totals; notes for what was refused.

    A total that would pass MAX_STORED_BYTES is refused with a note, the delta is
    dropped (its baseline has moved on, as for an implausible delta), and the rest
    of the run commits. A day total never exceeds its period's, so guarding the
    period rows guards both.
    """
    notes = []
    fits = []
    for u in usage:
        if u.rx_bytes > MAX_STORED_BYTES or u.tx_bytes > MAX_STORED_BYTES:
            notes.append(_refused_note(u))
        else:
            fits.append(u)
    rows = [(u.period, u.device, u.router, u.rx_bytes, u.tx_bytes, u.last_seen) for u in fits]
    conn.execute("SAVEPOINT add_usage")
    before = conn.total_changes
    conn.executemany(_ADD_TO_PERIOD, rows)
    if conn.total_changes - before != len(rows):
        # Rare: some total is at the limit. Redo row by row to learn which.
        conn.execute("ROLLBACK TO add_usage")
        kept = []
        for u, row in zip(fits, rows, strict=True):
            if conn.execute(_ADD_TO_PERIOD, row).rowcount == 1:
                kept.append(u)
            else:
                notes.append(_refused_note(u))
        fits = kept
    conn.execute("RELEASE add_usage")
    conn.executemany(
        "INSERT INTO usage_day (day, device, router, rx_bytes, tx_bytes) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (day, device, router) DO UPDATE SET "
        "rx_bytes = rx_bytes + excluded.rx_bytes, tx_bytes = tx_bytes + excluded.tx_bytes",
        ((u.day, u.device, u.router, u.rx_bytes, u.tx_bytes) for u in fits),
    )
    return notes


def _refused_note(u: Usage) -> str:
    return (
        f"{u.router} {u.device}: refused to add rx {u.rx_bytes} tx {u.tx_bytes} bytes to period "
        f"{u.period}: the total would pass {MAX_STORED_BYTES} bytes, the most stored exactly; "
        "nothing counted"
    )


def commit_stats(
    conn: sqlite3.Connection, path: Path, update: RunUpdate, zone: ZoneInfo, month_start_day: int
) -> Committed:
    """Write a run's totals, baselines, router health, names and alerts in one transaction.

    Returns notes on totals refused for passing MAX_STORED_BYTES, and the alerts raised.
    """
    with atomic(conn, path, "cannot commit this run"):
        for label in sorted({u.period for u in update.usage}):
            _record_period(conn, label, zone, month_start_day)
        notes = _add_usage(conn, update.usage)
        # Rows go to executemany as generators, not lists: at 100,000 devices each list
        # of row tuples is ~10 MB on top of the run's peak (bench/RESULTS.md, section 7).
        for router, baselines in update.baselines.items():
            conn.execute("DELETE FROM baselines WHERE router = ?", (router,))
            conn.executemany(
                "INSERT INTO baselines (router, device, rx_bytes, tx_bytes, sampled_at, connected_hint) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                ((router, d, b.rx_bytes, b.tx_bytes, b.sampled_at, int(b.connected_hint))
                 for d, b in baselines.items()),
            )
        conn.executemany(
            "INSERT OR REPLACE INTO router_uptime (router, uptime_seconds, sampled_at) VALUES (?, ?, ?)",
            [(r, m.uptime_seconds, m.sampled_at) for r, m in update.uptimes.items()],
        )
        history = _endpoint_history(conn, update.endpoints)
        previous_run = _previous_run_start(conn)
        for s in update.endpoints:
            if s.ok:
                conn.execute(
                    "INSERT INTO router_endpoints (router, endpoint, last_ok_at, last_attempt_at, "
                    "items, rejected) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (router, endpoint) "
                    "DO UPDATE SET last_ok_at = excluded.last_ok_at, "
                    "last_attempt_at = excluded.last_attempt_at, items = excluded.items, "
                    "rejected = excluded.rejected, failing_since = NULL",
                    (s.router, s.endpoint, s.at, s.at, s.items, s.rejected),
                )
            else:
                conn.execute(
                    "INSERT INTO router_endpoints (router, endpoint, last_error, last_error_at, "
                    "last_attempt_at, failing_since) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (router, endpoint) DO UPDATE SET last_error = excluded.last_error, "
                    "last_error_at = excluded.last_error_at, last_attempt_at = excluded.last_attempt_at, "
                    "failing_since = ?",
                    # An outage is dated by the runs that saw it: it began with this run, unless
                    # the previous run saw it too (not a router left out of the config meanwhile).
                    (s.router, s.endpoint, log_safe(s.error), s.at, s.at, update.started_at,
                     _outage_start(history.get((s.router, s.endpoint)), previous_run)
                     or update.started_at),
                )
        ok = sum(1 for s in update.endpoints if s.ok)
        conn.execute(
            "INSERT INTO runs (started_at, finished_at, endpoints_ok, endpoints_failed) VALUES (?, ?, ?, ?)",
            (update.started_at, update.finished_at, ok, len(update.endpoints) - ok),
        )
        conn.execute(
            "DELETE FROM runs WHERE id <= (SELECT max(id) FROM runs) - ?", (RUNS_KEPT,)
        )
        _store_labels(conn, update.labels)
        _record_counting(conn, update, previous_run, zone, month_start_day)
        raised = _raise_alerts(conn, update, history, previous_run, zone, month_start_day)
        _refresh_monthly_stats(conn, update.current_period_at, zone, month_start_day)
        conn.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [("timezone", zone.key or ""), ("month_start_day", str(month_start_day)),
             ("last_run_at", repr(update.finished_at)),
             ("monthly_cap_bytes", "" if update.monthly_cap_bytes is None
              else str(update.monthly_cap_bytes))],
        )
        crash_point("stats-written")
    crash_point("stats-committed")
    return Committed(notes, raised)


def _store_labels(conn: sqlite3.Connection, labels: Mapping[str, DeviceLabel]) -> None:
    """The configuration's names and owners, replacing the last run's: written only when they
    changed (reading 10,000 rows costs a tenth of writing them, and most runs change none)."""
    stored = {mac: DeviceLabel(name, owner)
              for mac, name, owner in conn.execute("SELECT mac, name, owner FROM devices")}
    if stored == labels:
        return
    conn.execute("DELETE FROM devices")
    conn.executemany("INSERT INTO devices (mac, name, owner) VALUES (?, ?, ?)",
                     ((mac, d.name, d.owner) for mac, d in labels.items()))


def commit_run(stats: Database, leases: Database, update: RunUpdate, zone: ZoneInfo,
               month_start_day: int) -> Committed:
    """Commit a run: the totals, baselines, health and alerts first, then the leases.

    Two files, two transactions: a crash between them loses only the leases' refresh,
    which the next run redoes; the bytes are in the first. Returns notes on totals
    refused for passing MAX_STORED_BYTES, and the alerts raised.
    """
    committed = commit_stats(stats.conn, stats.path, update, zone, month_start_day)
    commit_leases(leases.conn, leases.path, update.leases, update.started_at, zone)
    return committed


def _refresh_monthly_stats(conn: sqlite3.Connection, at: float, zone: ZoneInfo, month_start_day: int) -> None:
    """Rebuild the seed's monthly_stats from history: the current period only.

    main_wan is the sum of every router's WAN; per-router WAN rows stay out.
    """
    period = period_containing(at, zone, month_start_day).label
    conn.execute("DELETE FROM monthly_stats")
    rows = conn.execute(
        "SELECT device, sum(rx_bytes), sum(tx_bytes), max(last_seen) FROM usage_period "
        "WHERE period = ? GROUP BY device",
        (period,),
    ).fetchall()
    conn.executemany(
        "INSERT INTO monthly_stats (id, rx_bytes, tx_bytes, timestamp) VALUES (?, ?, ?, ?)",
        ((device, rx, tx, local_timestamp(seen, zone)) for device, rx, tx, seen in rows),
    )


def commit_leases(
    conn: sqlite3.Connection, path: Path, leases_by_router: Mapping[str, list[Lease]], at: float,
    zone: ZoneInfo,
) -> None:
    """Replace each polled router's leases with its latest answer; remember names per MAC."""
    if not leases_by_router:
        return
    stamp = local_timestamp(at, zone)
    with atomic(conn, path, "cannot commit leases"):
        # Rows without a router come from the Go daemon: any fresh answer supersedes them.
        conn.execute("DELETE FROM dhcp_leases WHERE router IS NULL")
        for router, leases in leases_by_router.items():
            conn.execute("DELETE FROM dhcp_leases WHERE router = ?", (router,))
            conn.executemany(
                "INSERT OR REPLACE INTO dhcp_leases (mac_address, lease_end_time, ip_address, "
                "hostname, client_id, timestamp, router) VALUES (?, ?, ?, ?, ?, ?, ?)",
                ((x.mac, x.expires_at, x.ip, x.hostname, x.client_id, stamp, router) for x in leases),
            )
            conn.executemany(
                "INSERT INTO hosts (mac, hostname, ip, client_id, first_seen, last_seen) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (mac) DO UPDATE SET "
                # A lease without a hostname keeps the name we knew.
                "hostname = CASE WHEN excluded.hostname = '' THEN hostname ELSE excluded.hostname END, "
                "ip = excluded.ip, client_id = excluded.client_id, last_seen = excluded.last_seen",
                ((x.mac, x.hostname, x.ip, x.client_id, at, at) for x in leases),
            )
        crash_point("leases-written")
    crash_point("leases-committed")


# --- Alerts: raised in the run's transaction, delivered after it --------------------------------

_IN_CHUNK = 500  # host parameters per IN (...) query, well below SQLite's limit


@dataclass(frozen=True)
class EndpointHistory:
    """An endpoint's row before this run: for outages, recoveries and first contact."""

    failing_since: float | None
    last_ok_at: float | None
    last_attempt_at: float | None


def _endpoint_history(conn: sqlite3.Connection, statuses: list[EndpointStatus]) -> dict:
    """(router, endpoint) -> its EndpointHistory before this run, for the routers in it."""
    routers = sorted({s.router for s in statuses})
    found: dict = {}
    if "failing_since" not in column_names(conn, "router_endpoints"):
        return found  # a dry run's snapshot from before version 3
    for i in range(0, len(routers), _IN_CHUNK):
        chunk = routers[i:i + _IN_CHUNK]
        found.update(((r, e), EndpointHistory(since, ok_at, attempt_at))
                     for r, e, since, ok_at, attempt_at in conn.execute(
            "SELECT router, endpoint, failing_since, last_ok_at, last_attempt_at FROM router_endpoints "
            f"WHERE router IN ({','.join('?' * len(chunk))})", chunk))
    return found


def _previous_run_start(conn: sqlite3.Connection) -> float | None:
    row = conn.execute("SELECT started_at FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else row[0]


def _outage_start(before: EndpointHistory | None, previous_run: float | None) -> float | None:
    """When the endpoint's current outage began, if it was failing in the previous run.

    An outage recorded before a gap in the endpoint's attempts (its router left out of the
    configuration for a while) is over: nobody knows what it did meanwhile.
    """
    if before is None or before.failing_since is None or previous_run is None:
        return None
    if before.last_attempt_at is None or before.last_attempt_at < previous_run:
        return None
    return before.failing_since


def _record_counting(conn: sqlite3.Connection, update: RunUpdate, previous_run: float | None,
                     zone: ZoneInfo, month_start_day: int) -> None:
    """Remember since when this run's period has been counted, for the forecast (once per
    period): the run before the period's first run, whose polls its first deltas started
    from, or the first run itself when there was none before it (a new installation). For
    a period that began before this version recorded it (an upgrade mid-period), the same,
    found among the runs kept."""
    period = period_containing(update.current_period_at, zone, month_start_day)
    _record_period(conn, period.label, zone, month_start_day)
    recorded = conn.execute("SELECT counted_from FROM periods WHERE label = ?", (period.label,)).fetchone()
    if recorded[0] is not None:
        return  # every run but a period's first: one primary-key lookup
    start = period.start.timestamp()
    if previous_run is None:
        since = update.started_at
    elif previous_run < start:
        since = previous_run  # this run is the period's first
    else:
        since = conn.execute(
            "SELECT coalesce((SELECT max(started_at) FROM runs WHERE started_at < ?), "
            "(SELECT min(started_at) FROM runs WHERE started_at >= ?))", (start, start)).fetchone()[0]
    conn.execute("UPDATE periods SET counted_from = ? WHERE label = ? AND counted_from IS NULL",
                 (since, period.label))


def _unknown_devices(conn: sqlite3.Connection, update: RunUpdate, history: dict,
                     looking_since: float | None) -> tuple[list[alerts.NewDevice], list[alerts.NewDevice]]:
    """MACs seen this run that no run has recorded in known_devices: (to tell, to learn quietly).

    Devices of an endpoint's first successful answer since new devices are looked for (a
    router just added to the configuration, or one that was failing when the rule was
    switched on) are learnt, not told: they were there before anyone looked.
    """
    def first_contact(router: str, endpoint: str) -> bool:
        before = history.get((router, endpoint))
        return (before is None or before.last_ok_at is None
                or (looking_since is not None and before.last_ok_at < looking_since))

    seen: dict[str, tuple[alerts.NewDevice, bool]] = {}
    for router, leases in update.leases.items():
        quiet = first_contact(router, "dhcp_leases")
        for lease in leases:
            seen.setdefault(lease.mac, (alerts.NewDevice(lease.mac, router, lease.hostname, lease.ip), quiet))
    for router, baselines in update.baselines.items():
        quiet = first_contact(router, "ap_stats")
        for device in baselines:
            if device != WAN:
                known = seen.get(device)
                if known is None:
                    seen[device] = (alerts.NewDevice(device, router), quiet)
                elif known[1] and not quiet:
                    seen[device] = (known[0], False)  # a lease on a new router, a station on an old one
    macs = sorted(seen)
    known_macs: set[str] = set()
    for i in range(0, len(macs), _IN_CHUNK):
        chunk = macs[i:i + _IN_CHUNK]
        known_macs.update(m for (m,) in conn.execute(
            f"SELECT mac FROM known_devices WHERE mac IN ({','.join('?' * len(chunk))})", chunk))
    new = [seen[m] for m in macs if m not in known_macs]
    return [d for d, quiet in new if not quiet], [d for d, quiet in new if quiet]


def _meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def alert_facts(conn: sqlite3.Connection | None, update: RunUpdate, history: dict,
                previous_run: float | None, new_devices: list[alerts.NewDevice], zone: ZoneInfo,
                month_start_day: int, *, pending: list[Usage] = ()) -> alerts.Facts:
    """What the alerts are judged on after this run: the period's totals in the database plus
    `pending` (a dry run's usage, not written), this run's endpoint outcomes and new MACs."""
    period = period_containing(update.current_period_at, zone, month_start_day)
    totals: dict[str, int] = {}
    rules = update.alert_rules
    per_device = rules is not None and bool(rules.device_limits_bytes or rules.owner_limits_bytes)
    ledger = conn is not None and has_table(conn, "alerts")
    measured_from = update.started_at if previous_run is None else previous_run
    if conn is not None and has_table(conn, "usage_period"):
        # Every device's total only when a limit needs it: the WAN's alone is one index range.
        only_wan = "" if per_device else f"AND device = '{WAN}' "
        totals.update(conn.execute(
            f"SELECT device, sum(rx_bytes) + sum(tx_bytes) FROM usage_period WHERE period = ? "
            f"{only_wan}GROUP BY device", (period.label,)))
        measured_from = counted_from(conn, period) or measured_from
    for u in pending:
        if u.period == period.label and (per_device or u.device == WAN):
            totals[u.device] = totals.get(u.device, 0) + u.rx_bytes + u.tx_bytes
    hostnames = {x.mac: x.hostname for leases in update.leases.values() for x in leases if x.hostname}
    facts = alerts.Facts(
        at=update.current_period_at, zone=zone, period=period, wan_bytes=totals.pop(WAN, 0),
        cap_bytes=update.monthly_cap_bytes, measured_from=measured_from, device_bytes=totals,
        labels=dict(update.labels), hostnames=hostnames, new_devices=new_devices,
        public_url=update.public_url,
    )
    for s in update.endpoints:
        since = _outage_start(history.get((s.router, s.endpoint)), previous_run)
        if not s.ok:
            facts.failing.append(alerts.Failing(s.router, s.endpoint, since or update.started_at,
                                                s.error))
        elif since is not None:
            alerted = ledger and conn.execute(
                "SELECT 1 FROM alerts WHERE kind = 'down' AND period = ? AND subject = ?",
                (alerts.outage_label(since), f"{s.router}/{s.endpoint}")).fetchone() is not None
            facts.recovered.append(alerts.Recovered(s.router, s.endpoint, since, alerted))
    return facts


def _learn_devices(conn: sqlite3.Connection, update: RunUpdate, history: dict) -> list[alerts.NewDevice]:
    """Record this run's unknown MACs as known; the ones to tell about."""
    since = _meta(conn, "new_devices_since")
    tell, quiet = _unknown_devices(conn, update, history, None if since is None else float(since))
    conn.executemany("INSERT OR IGNORE INTO known_devices (mac, first_seen) VALUES (?, ?)",
                     ((d.mac, update.started_at) for d in tell + quiet))
    if since is None:
        # The first run that looks (a new install, or new_device just switched on) learns the
        # whole network, every device with history included, without telling: it was there.
        conn.execute(f"INSERT OR IGNORE INTO known_devices (mac, first_seen) SELECT device, "
                     f"min(last_seen) FROM usage_period WHERE device != '{WAN}' GROUP BY device")
        conn.execute("INSERT INTO meta (key, value) VALUES ('new_devices_since', ?)",
                     (repr(update.started_at),))
        return []
    return tell


def _raise_alerts(conn: sqlite3.Connection, update: RunUpdate, history: dict,
                  previous_run: float | None, zone: ZoneInfo, month_start_day: int) -> list[alerts.Alert]:
    """Record each due alert not raised before, with a delivery for every target: in the run's
    transaction, so an alert is raised exactly when the bytes that raised it are committed."""
    rules = update.alert_rules
    new_devices: list[alerts.NewDevice] = []
    if rules is None or not rules.new_device:
        # Switched off: when it is switched on again, the devices seen meanwhile are not "new".
        conn.execute("DELETE FROM meta WHERE key = 'new_devices_since'")
        if rules is None:
            return []
    else:
        new_devices = _learn_devices(conn, update, history)
    facts = alert_facts(conn, update, history, previous_run, new_devices, zone, month_start_day)
    raised = []
    owed = []
    for alert in alerts.due(rules, facts):
        cursor = conn.execute(
            "INSERT INTO alerts (kind, period, subject, threshold, raised_at, title, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (alert.kind, alert.period, alert.subject, alert.threshold, update.started_at,
             alert.title, alert.body))
        if cursor.rowcount == 1:
            raised.append(alert)
            owed.append(cursor.lastrowid)
    # Alerts still in the retry window that no target was owed (raised while notify_file
    # could not be read, or held no URL) are owed to the targets there are now. An alert
    # that some target was owed is never given to another: a target is only its label
    # (`json #1`), and a line added above it renumbers the labels after it.
    owed += [alert_id for (alert_id,) in conn.execute(
        "SELECT id FROM alerts a WHERE raised_at >= ? AND NOT EXISTS "
        "(SELECT 1 FROM alert_deliveries d WHERE d.alert = a.id)",
        (update.started_at - alerts.DELIVERY_RETRY_SECONDS,))] if rules.targets else []
    conn.executemany("INSERT OR IGNORE INTO alert_deliveries (alert, target) VALUES (?, ?)",
                     ((alert_id, t.label) for alert_id in owed for t in rules.targets))
    return raised


def preview_alerts(conn: sqlite3.Connection | None, update: RunUpdate, zone: ZoneInfo,
                   month_start_day: int) -> list[alerts.Alert]:
    """For --dry-run: the alerts this run would raise, read from a snapshot; nothing written.

    New devices are not previewed when the snapshot has no record of known devices yet.
    """
    rules = update.alert_rules
    if rules is None:
        return []
    version = 0 if conn is None else schema_version(conn)
    history: dict = {}
    previous_run = None
    new_devices: list[alerts.NewDevice] = []
    if conn is not None and has_table(conn, "runs"):
        history = _endpoint_history(conn, update.endpoints)
        previous_run = _previous_run_start(conn)
    since = _meta(conn, "new_devices_since") if version >= 3 and rules.new_device else None
    if since is not None:
        new_devices = _unknown_devices(conn, update, history, float(since))[0]
    facts = alert_facts(conn, update, history, previous_run, new_devices, zone, month_start_day,
                        pending=update.usage)
    due = alerts.due(rules, facts)
    if version < 3:
        return due
    return [a for a in due if conn.execute(
        "SELECT 1 FROM alerts WHERE kind = ? AND period = ? AND subject = ? AND threshold = ?",
        (a.kind, a.period, a.subject, a.threshold)).fetchone() is None]


@dataclass(frozen=True)
class PendingDelivery:
    alert: int
    target: str  # its label
    title: str
    body: str


def pending_deliveries(conn: sqlite3.Connection, targets: list[str], now: float) -> list[PendingDelivery]:
    """Deliveries not yet sent to the targets configured now, oldest alert first."""
    if not targets:
        return []
    marks = ",".join("?" * len(targets))
    return [PendingDelivery(*row) for row in conn.execute(
        "SELECT d.alert, d.target, a.title, a.body FROM alert_deliveries d "
        "JOIN alerts a ON a.id = d.alert "
        f"WHERE d.sent_at IS NULL AND d.target IN ({marks}) AND a.raised_at >= ? "
        "ORDER BY d.alert", (*targets, now - alerts.DELIVERY_RETRY_SECONDS))]


def record_delivery(conn: sqlite3.Connection, path: Path, alert_ids: list[int], target: str, at: float,
                    error: str | None) -> None:
    """A delivery attempt's outcome, in its own small transaction right after the attempt."""
    with atomic(conn, path, "cannot record a notification's delivery"):
        conn.executemany(
            "UPDATE alert_deliveries SET attempts = attempts + 1, last_attempt_at = ?, "
            "sent_at = ?, last_error = ? WHERE alert = ? AND target = ?",
            ((at, None if error else at, log_safe(error) if error else None, alert, target)
             for alert in alert_ids))


# --- The lock that keeps two runs from overlapping -------------------------------------------


@contextmanager
def run_lock(data_dir: Path, wait_seconds: float) -> Iterator[None]:
    """Hold an exclusive lock on the data directory's lock file for the whole run.

    A second run (cron plus a manual one) waits here, then fetches fresh values
    and counts from the first run's committed baselines: nothing is counted twice.
    A separate file, because locking a database file would fight SQLite's own locks.
    """
    path = data_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, _group_writable_mode())
        if os.fstat(fd).st_uid == os.geteuid():
            # os.open's mode passes through the umask: make it group-writable for
            # whoever in the data group runs the collector by hand next.
            os.fchmod(fd, _group_writable_mode())
    except OSError as e:
        raise StorageError(f"{path}: cannot open lock file: {e.strerror}") from None
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockBusy(
                        f"{path}: another run has held the lock for over {wait_seconds:.0f}s; "
                        "not collecting"
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)


def ensure_data_dir(data_dir: Path) -> None:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"{data_dir}: cannot create data directory: {e.strerror}") from None
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise StorageError(f"{data_dir}: data directory is not writable by this user")

