"""Stand-alone writers of one run's rows, to count the disk syncs of other designs.

    python bench/writers.py MODE DATABASE DEVICES RUN [--max-seconds S]

RUN 0 creates the rows in one transaction whatever the mode (a setup, not measured).
Standard library only, so any Python can run it by path (the fix sketches need
Python 3.12 for Connection.setconfig). Each run adds traffic to DEVICES devices
in the old Go daemon's tables (cumulative_stats, monthly_stats). MODE:

  naive               the old daemon's pattern: one transaction per device, SQLite's
                      defaults (rollback journal, synchronous=FULL)
  naive-wal           one transaction per device in WAL mode, synchronous=FULL
  single              the collector's pattern: one transaction for the run, WAL,
                      synchronous=NORMAL, the connection closed at the end
  single-nockpt       `single` with SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE (Python >= 3.12)
  single-nockpt-full  the same with synchronous=FULL

Prints one JSON line: devices written, seconds, and whether it finished before
--max-seconds (the naive modes may be stopped early on a slow disk; the caller
extrapolates from syncs per device).
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time

MODES = ("naive", "naive-wal", "single", "single-nockpt", "single-nockpt-full")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS cumulative_stats (id TEXT PRIMARY KEY, rx_bytes INTEGER, "
    "tx_bytes INTEGER)",
    "CREATE TABLE IF NOT EXISTS monthly_stats (id TEXT PRIMARY KEY, rx_bytes INTEGER, "
    "tx_bytes INTEGER, timestamp TEXT)",
)
_CUMULATIVE = ("INSERT INTO cumulative_stats (id, rx_bytes, tx_bytes) VALUES (?, ?, ?) "
               "ON CONFLICT (id) DO UPDATE SET rx_bytes = excluded.rx_bytes, "
               "tx_bytes = excluded.tx_bytes")
_MONTHLY = ("INSERT INTO monthly_stats (id, rx_bytes, tx_bytes, timestamp) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET rx_bytes = rx_bytes + excluded.rx_bytes, "
            "tx_bytes = tx_bytes + excluded.tx_bytes, timestamp = excluded.timestamp")


def write(mode: str, database: str, devices: int, run: int, max_seconds: float) -> dict:
    start = time.monotonic()
    conn = sqlite3.connect(database, isolation_level=None)
    if mode == "naive":
        conn.execute("PRAGMA synchronous = FULL")
    elif mode == "naive-wal":
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
    else:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = " + ("FULL" if mode.endswith("-full") else "NORMAL"))
        if "nockpt" in mode:
            conn.setconfig(sqlite3.SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, True)
    for statement in _SCHEMA:
        conn.execute(statement)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    rows = [(f"02:00:{n >> 16 & 0xff:02x}:{n >> 8 & 0xff:02x}:{n & 0xff:02x}:01",
             n * 1000 * run, n * 9000 * run) for n in range(devices)]
    written = 0
    if mode.startswith("naive") and run > 0:  # run 0 only sets the database up: one transaction
        for mac, rx, tx in rows:
            if time.monotonic() - start > max_seconds:
                break
            conn.execute("BEGIN")
            conn.execute(_CUMULATIVE, (mac, rx, tx))
            conn.execute(_MONTHLY, (mac, 1000, 9000, stamp))
            conn.execute("COMMIT")
            written += 1
    else:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_CUMULATIVE, rows)
        conn.executemany(_MONTHLY, [(mac, 1000, 9000, stamp) for mac, _, _ in rows])
        conn.execute("COMMIT")
        written = devices
    conn.close()
    return {"mode": mode, "devices": devices, "written": written, "complete": written == devices,
            "seconds": time.monotonic() - start}


def main(argv: list[str]) -> int:
    if len(argv) not in (4, 6) or argv[0] not in MODES:
        print(__doc__, file=sys.stderr)
        return 2
    max_seconds = float(argv[5]) if len(argv) == 6 and argv[4] == "--max-seconds" else 1e9
    print(json.dumps(write(argv[0], argv[1], int(argv[2]), int(argv[3]), max_seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
