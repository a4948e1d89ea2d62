"""One read-only connection per request, kept in `flask.g` and closed in teardown."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from flask import current_app, g

from collector import reads
from collector.schema import LEASES_DB, STATS_DB


def data_dir() -> Path:
    return Path(current_app.config["DATA_DIR"])


def now() -> float:
    """The app's clock: time.time(), or the fixed NOW from the config (tests and replays)."""
    fixed = current_app.config.get("NOW")
    return time.time() if fixed is None else float(fixed)


def connection(*, require=(STATS_DB,), optional=(LEASES_DB,)) -> sqlite3.Connection:
    """This request's connection, opened on first use, inside one read snapshot.

    Raises DataUnavailable when a required database is missing or unreadable.
    """
    if "db" not in g:
        conn = reads.open_readonly(data_dir(), require=require, optional=optional)
        reads.begin_snapshot(conn)
        g.db = conn
    return g.db


def close_connection(_error: BaseException | None = None) -> None:
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()
