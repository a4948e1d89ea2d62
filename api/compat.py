"""`GET /api.php?action=...`: the seed's api.php, answer for answer, on the same files.

Old dashboards keep working unchanged: same status codes, same JSON (same keys in
the same order, encoded the way PHP's json_encode does), same error strings.
Like api.php, each action opens only the database it reads.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from flask import Blueprint, Response, request

from api import answers, db, queries
from collector.errors import DataUnavailable
from collector.schema import LEASES_DB, STATS_DB, WAN

bp = Blueprint("compat", __name__)

ACTIONS = ("clients", "wan", "leases", "combined")
_NEEDS = {
    "clients": (STATS_DB,),
    "wan": (STATS_DB,),
    "leases": (LEASES_DB,),
    "combined": (STATS_DB, LEASES_DB),
}
_UNAVAILABLE = {
    "clients": "Could not connect to the stats database.",
    "wan": "Could not connect to the stats database.",
    "leases": "Could not connect to the DHCP database.",
    "combined": "Could not connect to one or more databases.",
}


class TableMissing(Exception):
    """A table api.php queried without a fallback does not exist (PHP failed there too)."""


def php_json(value: object) -> bytes:
    """json_encode's default output: compact, non-ASCII as \\u escapes, `/` as `\\/`."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode()


def _error(status: int, message: str) -> Response:
    return Response(php_json({"error": message}), status=status, content_type=answers.JSON)


def _php_time(text: object) -> object:
    """api.php passed the stored timestamp through DateTime and format('Y-m-d H:i:s')."""
    if not isinstance(text, str):
        return text
    for layout in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f",
                   "%Y-%m-%dT%H:%M:%S.%f"):
        try:
            return datetime.strptime(text, layout).strftime("%Y-%m-%d %H:%M:%S")
        except ValueError:
            continue
    return text


def _rows(conn: sqlite3.Connection, table: str, schema: str, required: bool) -> list[dict]:
    rows = queries.table_rows(conn, table, schema)
    if rows is None:
        if required:
            raise TableMissing(f"no such table: {table}")
        return []  # api.php's fetchAllData() returned an empty list for a failed query
    return rows


def _clients(conn: sqlite3.Connection) -> dict:
    rows = _rows(conn, "monthly_stats", "main", required=True)
    return {"data": [{"id": r["id"], "rx_bytes": r["rx_bytes"], "tx_bytes": r["tx_bytes"]}
                     for r in rows if r["id"] is not None and r["id"] != WAN]}


def _wan(conn: sqlite3.Connection) -> dict:
    rows = [r for r in _rows(conn, "monthly_stats", "main", required=True) if r["id"] == WAN]
    data = [{"id": r["id"], "rx_bytes": r["rx_bytes"], "tx_bytes": r["tx_bytes"],
             "last_update": _php_time(r["timestamp"])} for r in rows[:1]]
    return {"data": data}


def _leases(conn: sqlite3.Connection) -> dict:
    return {"data": _rows(conn, "dhcp_leases", "leases", required=False)}


def _php_empty(value: object) -> bool:
    return value in (None, "", "0", 0)


def _combined(conn: sqlite3.Connection) -> dict:
    by_mac = {lease["mac_address"]: lease
              for lease in _rows(conn, "dhcp_leases", "leases", required=False)}
    wan_stats: dict = {"rx_bytes": 0, "tx_bytes": 0, "last_update": None}
    clients = []
    for stat in _rows(conn, "monthly_stats", "main", required=False):
        if stat["id"] == WAN:
            wan_stats = {"rx_bytes": stat["rx_bytes"], "tx_bytes": stat["tx_bytes"],
                         "last_update": _php_time(stat["timestamp"])}
            continue
        lease = by_mac.get(stat["id"])
        if lease is None:
            hostname = stat["id"]
        elif not _php_empty(lease.get("hostname")) and lease["hostname"] != "Unknown":
            hostname = lease["hostname"]
        else:
            hostname = lease.get("ip_address")
        clients.append({"rx_bytes": stat["rx_bytes"], "tx_bytes": stat["tx_bytes"],
                        "hostname": hostname})
    return {"wan_stats": wan_stats, "client_stats": clients}


_BUILD = {"clients": _clients, "wan": _wan, "leases": _leases, "combined": _combined}


@bp.get("/api.php")
def api_php() -> Response:
    actions = request.args.getlist("action")
    if not actions:
        # PHP turns `action[]=x` into an array: set, but no valid action.
        if any(k.startswith("action[") for k in request.args):
            return _error(400, "Invalid action. Valid actions are: clients, wan, leases, combined.")
        return _error(400, "No action specified.")
    action = actions[-1]  # PHP keeps the last of repeated parameters
    if action not in ACTIONS:
        return _error(400, "Invalid action. Valid actions are: clients, wan, leases, combined.")
    try:
        conn = db.connection(require=_NEEDS[action], optional=())
        return answers.respond(f"api.php {action}", (), lambda: _BUILD[action](conn),
                               encode=php_json)
    except DataUnavailable:
        return _error(500, _UNAVAILABLE[action])
    except (sqlite3.Error, TableMissing) as e:
        return _error(500, f"An unexpected error occurred: {e}")
