"""Everything about the two SQLite files that writer and readers must agree on.

File names, the lock's name, the WAN's device id, the schema (as migration steps) and
its version, table checks and the URIs files are opened with: one home for each, imported
by the collector's storage and by every reader (report, the API).
"""

from __future__ import annotations

import os
import sqlite3
from urllib.parse import quote, urlencode

STATS_DB = "network_stats.db"
LEASES_DB = "dhcp_leases.db"
LOCK_FILE = ".netstat-collect.lock"
WAN = "main_wan"  # the device id of WAN rows, as in the seed's monthly_stats
# Rows migrated from the Go daemon's monthly_stats carry this router name: the
# daemon never recorded which router a byte came from.
LEGACY_ROUTER = "(go-daemon)"

# Both files carry the same version number; each step below brings one file from the
# version before it. 2: baselines remember whether the router reported connected seconds.
# 3: names and owners from the configuration, known devices, failing-since, the alert ledger.
SCHEMA_VERSION = 3
# Every stored byte total stays at or below this: the largest integer a JSON reader
# such as the dashboard's JavaScript holds exactly (8 PiB, over 80 days of a 10 Gbit/s
# link flat out in one device's row), far enough below SQLite's 64-bit limit that a
# sum over a thousand rows cannot leave it and turn into a float.
MAX_STORED_BYTES = 2**53 - 1

_STATS_V1 = """
CREATE TABLE IF NOT EXISTS cumulative_stats (
    id TEXT PRIMARY KEY, rx_bytes INTEGER, tx_bytes INTEGER);
CREATE TABLE IF NOT EXISTS monthly_stats (
    id TEXT PRIMARY KEY, rx_bytes INTEGER, tx_bytes INTEGER, timestamp TEXT);
CREATE TABLE baselines (
    router TEXT NOT NULL, device TEXT NOT NULL,
    rx_bytes INTEGER NOT NULL, tx_bytes INTEGER NOT NULL, sampled_at REAL NOT NULL,
    PRIMARY KEY (router, device)) WITHOUT ROWID;
CREATE TABLE router_endpoints (
    router TEXT NOT NULL, endpoint TEXT NOT NULL,
    last_ok_at REAL, last_error TEXT, last_error_at REAL, last_attempt_at REAL,
    items INTEGER, rejected INTEGER,
    PRIMARY KEY (router, endpoint)) WITHOUT ROWID;
CREATE TABLE router_uptime (
    router TEXT PRIMARY KEY, uptime_seconds INTEGER NOT NULL, sampled_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE periods (
    label TEXT PRIMARY KEY, start TEXT NOT NULL, "end" TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE usage_period (
    period TEXT NOT NULL, device TEXT NOT NULL, router TEXT NOT NULL,
    rx_bytes INTEGER NOT NULL, tx_bytes INTEGER NOT NULL, last_seen REAL NOT NULL,
    PRIMARY KEY (period, device, router)) WITHOUT ROWID;
CREATE TABLE usage_day (
    day TEXT NOT NULL, device TEXT NOT NULL, router TEXT NOT NULL,
    rx_bytes INTEGER NOT NULL, tx_bytes INTEGER NOT NULL,
    PRIMARY KEY (day, device, router)) WITHOUT ROWID;
CREATE INDEX usage_day_by_device ON usage_day (device, day);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY, started_at REAL NOT NULL, finished_at REAL NOT NULL,
    endpoints_ok INTEGER NOT NULL, endpoints_failed INTEGER NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
"""

_STATS_V2 = """
ALTER TABLE baselines ADD COLUMN connected_hint INTEGER NOT NULL DEFAULT 0;
"""

# `devices`: the configuration's names and owners as of the last run (replaced by each run, so
# every period shows today's names). `known_devices`: every MAC ever seen, for "new device"
# alerts. `alerts`: each alert raised, once per (kind, period, subject, threshold);
# `alert_deliveries`: its delivery to each notification target (by its label, `mailto #1`:
# never its URL, nor a hash of it), retried until sent. `periods.counted_from`: since when the
# collector's counting for a period ran (the run before its first run), for the forecast.
_STATS_V3 = """
CREATE TABLE devices (
    mac TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', owner TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE TABLE known_devices (mac TEXT PRIMARY KEY, first_seen REAL NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO known_devices (mac, first_seen)
    SELECT device, min(last_seen) FROM usage_period WHERE device != 'main_wan' GROUP BY device;
INSERT OR IGNORE INTO known_devices (mac, first_seen)
    SELECT device, min(sampled_at) FROM baselines WHERE device != 'main_wan' GROUP BY device;
ALTER TABLE router_endpoints ADD COLUMN failing_since REAL;
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, period TEXT NOT NULL, subject TEXT NOT NULL,
    threshold TEXT NOT NULL, raised_at REAL NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL,
    UNIQUE (kind, period, subject, threshold));
CREATE TABLE alert_deliveries (
    alert INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE, target TEXT NOT NULL,
    sent_at REAL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, last_attempt_at REAL,
    PRIMARY KEY (alert, target)) WITHOUT ROWID;
CREATE INDEX alert_deliveries_pending ON alert_deliveries (sent_at, alert);
CREATE INDEX alerts_by_time ON alerts (raised_at);
ALTER TABLE periods ADD COLUMN counted_from REAL;
"""

# The Go daemon's dhcp_leases gains a router column, unless an earlier upgrade added it.
LEASES_ROUTER_COLUMN = "ALTER TABLE dhcp_leases ADD COLUMN router TEXT;"
_LEASES_V1 = """
CREATE TABLE IF NOT EXISTS dhcp_leases (
    mac_address TEXT PRIMARY KEY, lease_end_time INTEGER, ip_address TEXT,
    hostname TEXT, client_id TEXT, timestamp TEXT);
{router_column}
CREATE TABLE hosts (
    mac TEXT PRIMARY KEY, hostname TEXT NOT NULL DEFAULT '', ip TEXT NOT NULL DEFAULT '',
    client_id TEXT NOT NULL DEFAULT '', first_seen REAL NOT NULL, last_seen REAL NOT NULL
) WITHOUT ROWID;
""".replace("{router_column}", LEASES_ROUTER_COLUMN)
# Versions 2 and 3 changed nothing in dhcp_leases.db: their steps only move its number along.
_LEASES_V2 = _LEASES_V3 = ""

# version -> the DDL that brings a file from the version before it to this one.
STATS_STEPS = {1: _STATS_V1, 2: _STATS_V2, 3: _STATS_V3}
LEASES_STEPS = {1: _LEASES_V1, 2: _LEASES_V2, 3: _LEASES_V3}
assert max(STATS_STEPS) == max(LEASES_STEPS) == SCHEMA_VERSION


def sqlite_uri(path: str | os.PathLike, **params: str | int) -> str:
    """A `file:` URI naming exactly `path`, with query parameters (`mode="ro"`, `immutable=1`).

    Every SQLite URI is built here. The path is made absolute and percent-encoded from
    its bytes: a `?`, `#` or `%` in a directory's name must neither end the path nor
    change it (`d#x` would open `d`), and a name that is not UTF-8 still names its file.
    """
    absolute = os.fsencode(os.path.abspath(path))
    uri = "file://" + quote(absolute, safe="/")
    return f"{uri}?{urlencode(params)}" if params else uri


def has_table(conn: sqlite3.Connection, table: str, schema: str = "main") -> bool:
    """Whether `schema` (main, or an attached database such as `leases`) holds that table."""
    if schema != "main" and not any(row[1] == schema for row in conn.execute("PRAGMA database_list")):
        return False
    return conn.execute(
        f"SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone() is not None


def column_names(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def schema_version(conn: sqlite3.Connection, schema: str = "main") -> int:
    return conn.execute(f"PRAGMA {schema}.user_version").fetchone()[0]
