"""The API under a real gunicorn on 127.0.0.1, over databases the real collector wrote.

The scenario (conftest.build_api_scenario): three simulated routers, five devices,
runs on 2026-11-15, 2026-11-16 and 2026-12-01, so November is a past period and
December the current one; ap-3 failed its last poll.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections import defaultdict
from datetime import date, datetime, timedelta

import pytest
from support import (
    LAPTOP,
    NONAME,
    SCENARIO_IPS,
    SCENARIO_LABELS,
    TABLET,
    UNKNOWN,
    UTC,
    ZOE,
    file_hashes,
)

from api import openapi
from api.app import create_app

NOV_LAST_POLL = "2026-11-16T12:30:00+00:00"
DEC_LAST_POLL = "2026-12-01T00:30:00+00:00"
# What /api/v1 shows as a device's name: `*` and `Unknown` are no name.
SHOWN_NAMES = {LAPTOP: "laptop", NONAME: None, UNKNOWN: None, TABLET: None, ZOE: "Zoë/tablet"}
ROUTER_OF = {LAPTOP: "router-1", NONAME: "router-1", UNKNOWN: "router-1", TABLET: "ap-2",
             ZOE: "router-1"}


def totals(rx: int, tx: int, *, wan: bool = False) -> dict:
    download, upload = (rx, tx) if wan else (tx, rx)
    return {"rx_bytes": rx, "tx_bytes": tx, "download_bytes": download, "upload_bytes": upload,
            "total_bytes": rx + tx}


def expected_usage(scenario, label: str, start: str, end: str, last_poll: str) -> dict:
    devices = scenario.periods[label]
    clients = [
        {"mac": mac, "name": SCENARIO_LABELS[mac][0], "owner": SCENARIO_LABELS[mac][1],
         "hostname": SHOWN_NAMES[mac], "ip": SCENARIO_IPS.get(mac),
         **totals(rx, tx), "last_seen": last_poll, "routers": [ROUTER_OF[mac]]}
        for mac, (rx, tx) in devices.items() if mac != "main_wan"
    ]
    clients.sort(key=lambda c: (-c["total_bytes"], c["mac"]))
    # The last run is half an hour into December: November is over (December's forecast is
    # checked in test_usage_defaults_to_the_current_period).
    note = "the period is over"
    return {
        "period": {"label": label, "start": start, "end": end},
        "wan": {**totals(*devices["main_wan"], wan=True), "cap_bytes": None,
                "forecast_bytes": None, "forecast_note": note},
        "clients": clients,
        "updated_at": DEC_LAST_POLL,
    }


def db_rows(scenario, database: str, query: str) -> list[dict]:
    """Rows read straight from a scenario file, as api.php's SQLite3 fetchArray gave them.

    immutable=1: this reader creates no -shm or -wal of its own beside the files.
    """
    conn = sqlite3.connect(f"file:{scenario.data_dir / database}?mode=ro&immutable=1", uri=True)
    try:
        cursor = conn.execute(query)
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor]
    finally:
        conn.close()


# --- /api/v1/usage and /api/v1/periods ---------------------------------------------------


def test_usage_defaults_to_the_current_period(api_server, api_scenario):
    r = api_server.get("/api/v1/usage")
    assert (r.status_code, r.headers["Content-Type"]) == (200, "application/json")
    answer = r.json()
    # December's first run counted what moved since the run before it, two weeks earlier:
    # the forecast's pace is measured over those two weeks, up to the last run.
    since, last = api_scenario.run_times[-2], api_scenario.run_times[-1]
    used = sum(api_scenario.periods["2026-12"]["main_wan"])
    left = datetime(2027, 1, 1, tzinfo=UTC).timestamp() - last
    assert last - since > 3 * 86400
    assert answer["wan"].pop("forecast_bytes") == used + round(used / (last - since) * left)
    assert answer["wan"].pop("forecast_note").startswith(
        f"at the pace of the last {(last - since) / 86400:.1f} days (")
    expected = expected_usage(api_scenario, "2026-12", "2026-12-01T00:00:00+00:00",
                              "2027-01-01T00:00:00+00:00", DEC_LAST_POLL)
    del expected["wan"]["forecast_bytes"], expected["wan"]["forecast_note"]
    assert answer == expected


def test_usage_of_a_past_period_after_the_month_changed(api_server, api_scenario):
    r = api_server.get("/api/v1/usage", params={"period": "2026-11"})
    assert r.status_code == 200
    assert r.json() == expected_usage(api_scenario, "2026-11", "2026-11-01T00:00:00+00:00",
                                      "2026-12-01T00:00:00+00:00", NOV_LAST_POLL)


def test_usage_clients_are_sorted_by_total(api_server):
    clients = api_server.get("/api/v1/usage", params={"period": "2026-11"}).json()["clients"]
    assert [c["mac"] for c in clients] == [LAPTOP, TABLET, NONAME, ZOE, UNKNOWN]


def test_usage_of_a_period_without_data_is_zeros(api_server):
    r = api_server.get("/api/v1/usage", params={"period": "2025-02"})
    assert r.status_code == 200
    assert r.json() == {
        "period": {"label": "2025-02", "start": "2025-02-01T00:00:00+00:00",
                   "end": "2025-03-01T00:00:00+00:00"},
        "wan": {**totals(0, 0, wan=True), "cap_bytes": None, "forecast_bytes": None,
                "forecast_note": "the period is over"}, "clients": [],
        "updated_at": DEC_LAST_POLL,
    }


@pytest.mark.parametrize("period", ["2026-13", "2026-1", "26-11", "", "1969-12", "2026-11-01"])
def test_usage_rejects_a_bad_period(api_server, period):
    r = api_server.get("/api/v1/usage", params={"period": period})
    assert (r.status_code, r.headers["Content-Type"]) == (400, "application/json")
    assert r.json() == {"error": f"period must be a month YYYY-MM from 1970-01 to 9998-12, "
                                 f"got {period!r}", "status": 400}


def test_periods_lists_the_periods_with_data(api_server):
    r = api_server.get("/api/v1/periods")
    assert r.status_code == 200
    assert r.json() == {"current": "2026-12", "periods": [
        {"label": "2026-12", "start": "2026-12-01T00:00:00+00:00", "end": "2027-01-01T00:00:00+00:00"},
        {"label": "2026-11", "start": "2026-11-01T00:00:00+00:00", "end": "2026-12-01T00:00:00+00:00"},
    ]}


# --- /api/v1/owners and the CSV forms -----------------------------------------------------------


def expected_owners(scenario, label: str) -> dict:
    """owner -> (macs, rx, tx): what the scenario moved, grouped by the configured owner."""
    groups: dict = defaultdict(lambda: [set(), 0, 0])
    for mac, (rx, tx) in scenario.periods[label].items():
        if mac != "main_wan":
            group = groups[SCENARIO_LABELS[mac][1]]
            group[0].add(mac)
            group[1] += rx
            group[2] += tx
    return {owner: tuple(v) for owner, v in groups.items()}


@pytest.mark.parametrize("label, params", [("2026-11", {"period": "2026-11"}), ("2026-12", {})])
def test_owners_group_the_devices_by_their_configured_owner(api_server, api_scenario, label, params):
    r = api_server.get("/api/v1/owners", params=params)
    assert (r.status_code, r.headers["Content-Type"]) == (200, "application/json")
    body = r.json()
    assert body["period"]["label"] == label and body["updated_at"] == DEC_LAST_POLL
    assert {g["owner"]: (set(g["macs"]), g["rx_bytes"], g["tx_bytes"]) for g in body["owners"]} == (
        expected_owners(api_scenario, label))
    assert [g["owner"] for g in body["owners"]][-1] is None  # no owner: the smallest here
    for g in body["owners"]:
        assert g == {"owner": g["owner"], "devices": len(g["macs"]), "macs": g["macs"],
                     **totals(g["rx_bytes"], g["tx_bytes"])}
    # Every device once; together exactly the devices' total, the WAN being no one's.
    rx, tx = (sum(v[i] for mac, v in api_scenario.periods[label].items() if mac != "main_wan")
              for i in (0, 1))
    assert body["total"] == totals(rx, tx)
    assert sorted(m for g in body["owners"] for m in g["macs"]) == sorted(
        c["mac"] for c in api_server.get("/api/v1/usage", params=params).json()["clients"])
    totals_in_order = [g["total_bytes"] for g in body["owners"]]
    assert totals_in_order == sorted(totals_in_order, reverse=True)


def test_owners_of_a_period_without_data_is_empty(api_server):
    body = api_server.get("/api/v1/owners", params={"period": "2025-02"}).json()
    assert (body["owners"], body["total"]) == ([], totals(0, 0))


def csv_rows(r) -> list[dict]:
    return list(csv.DictReader(io.StringIO(r.content.decode("utf-8"), newline="")))


NUMBERS = ("rx_bytes", "tx_bytes", "download_bytes", "upload_bytes", "total_bytes")


@pytest.mark.parametrize("period", ["2026-11", "2026-12"])
def test_usage_as_csv_is_the_json_answer(api_server, period):
    r = api_server.get("/api/v1/usage", params={"period": period, "format": "csv"})
    assert (r.status_code, r.headers["Content-Type"]) == (200, "text/csv; charset=utf-8")
    assert r.headers["Content-Disposition"] == f'attachment; filename="netstat-usage-{period}.csv"'
    assert r.content.startswith(b"period,mac,name,owner,hostname,ip,") and b"\r\n" in r.content
    clients = api_server.get("/api/v1/usage", params={"period": period}).json()["clients"]
    rows = csv_rows(r)
    assert [row["mac"] for row in rows] == [c["mac"] for c in clients]
    for row, c in zip(rows, clients, strict=True):
        assert {k: int(row[k]) for k in NUMBERS} == {k: c[k] for k in NUMBERS}
        assert [row[k] or None for k in ("period", "name", "owner", "hostname", "ip", "last_seen")] == [
            period, c["name"], c["owner"], c["hostname"], c["ip"], c["last_seen"]]


@pytest.mark.parametrize("period", ["2026-11", "2026-12"])
def test_owners_as_csv_is_the_json_answer(api_server, period):
    r = api_server.get("/api/v1/owners", params={"period": period, "format": "csv"})
    assert (r.status_code, r.headers["Content-Type"]) == (200, "text/csv; charset=utf-8")
    assert r.headers["Content-Disposition"] == f'attachment; filename="netstat-owners-{period}.csv"'
    groups = api_server.get("/api/v1/owners", params={"period": period}).json()["owners"]
    assert [(row["period"], row["owner"] or None, int(row["devices"]), row["macs"].split(" "),
             *(int(row[k]) for k in NUMBERS)) for row in csv_rows(r)] == [
        (period, g["owner"], g["devices"], g["macs"], *(g[k] for k in NUMBERS)) for g in groups]


@pytest.mark.parametrize("route", ["usage", "owners"])
def test_csv_and_json_are_cached_and_revalidated_apart(api_server, route):
    as_json = api_server.get(f"/api/v1/{route}")
    as_csv = api_server.get(f"/api/v1/{route}", params={"format": "csv"})
    explicit = api_server.get(f"/api/v1/{route}", params={"format": "json"})
    assert as_json.headers["ETag"] != as_csv.headers["ETag"]
    assert (explicit.headers["ETag"], explicit.content) == (as_json.headers["ETag"], as_json.content)
    again = api_server.get(f"/api/v1/{route}", params={"format": "csv"},
                           headers={"If-None-Match": as_csv.headers["ETag"]})
    assert (again.status_code, again.content) == (304, b"")
    # A JSON request with the CSV's ETag is not the same answer: the whole JSON comes.
    other = api_server.get(f"/api/v1/{route}", headers={"If-None-Match": as_csv.headers["ETag"]})
    assert (other.status_code, other.headers["Content-Type"]) == (200, "application/json")
    # Asked again: each answer from the cache, unchanged.
    assert api_server.get(f"/api/v1/{route}", params={"format": "csv"}).content == as_csv.content
    assert api_server.get(f"/api/v1/{route}").content == as_json.content


@pytest.mark.parametrize("route", ["usage", "owners"])
@pytest.mark.parametrize("value", ["xml", "", "CSV", "csv "])
def test_an_unknown_format_is_a_json_400(api_server, route, value):
    r = api_server.get(f"/api/v1/{route}", params={"format": value})
    assert (r.status_code, r.headers["Content-Type"]) == (400, "application/json")
    assert r.json() == {"error": f"format must be json or csv, got {value!r}", "status": 400}


# --- history ----------------------------------------------------------------------------------


def test_client_daily_history_has_every_day_and_device_directions(api_server, api_scenario):
    r = api_server.get(f"/api/v1/clients/{LAPTOP}/history",
                       params={"granularity": "day", "from": "2026-11-14", "to": "2026-12-01"})
    assert r.status_code == 200
    body = r.json()
    days = [date(2026, 11, 14) + timedelta(days=i) for i in range(18)]
    assert [p["label"] for p in body["points"]] == [d.isoformat() for d in days]
    expected = {d: api_scenario.days.get(d, {}).get(LAPTOP, [0, 0]) for d in
                (x.isoformat() for x in days)}
    assert {p["label"]: [p["rx_bytes"], p["tx_bytes"]] for p in body["points"]} == expected
    nov15 = body["points"][1]
    assert nov15 == {"label": "2026-11-15", "start": "2026-11-15T00:00:00+00:00",
                     "end": "2026-11-16T00:00:00+00:00", **totals(1_048_576, 157_286_400)}
    assert (body["device"], body["granularity"], body["from"], body["to"]) == (
        LAPTOP, "day", "2026-11-14", "2026-12-01")
    assert body["total"] == totals(1_048_576 + 2_097_152 + 300_000,
                                   157_286_400 + 104_857_600 + 4_000_000)


def test_client_monthly_history_sums_each_period(api_server, api_scenario):
    r = api_server.get(f"/api/v1/clients/{TABLET}/history",
                       params={"granularity": "month", "from": "2026-10", "to": "2026-12"})
    assert r.status_code == 200
    points = r.json()["points"]
    assert [(p["label"], p["start"], p["rx_bytes"], p["tx_bytes"]) for p in points] == [
        ("2026-10", "2026-10-01T00:00:00+00:00", 0, 0),
        ("2026-11", "2026-11-01T00:00:00+00:00", *api_scenario.periods["2026-11"][TABLET]),
        ("2026-12", "2026-12-01T00:00:00+00:00", *api_scenario.periods["2026-12"][TABLET]),
    ]
    assert points[1]["download_bytes"] == points[1]["tx_bytes"]  # a device downloads its tx


def test_client_history_accepts_an_uppercase_dashed_mac(api_server):
    plain = api_server.get(f"/api/v1/clients/{LAPTOP}/history", params={"granularity": "month"})
    dashed = api_server.get("/api/v1/clients/AA-00-00-00-00-01/history",
                            params={"granularity": "month"})
    assert (dashed.status_code, dashed.json()) == (200, plain.json())


def test_client_history_defaults_to_thirty_days_ending_today(api_server):
    body = api_server.get(f"/api/v1/clients/{LAPTOP}/history").json()
    assert (body["granularity"], body["from"], body["to"], len(body["points"])) == (
        "day", "2026-11-02", "2026-12-01", 30)


def test_wan_history_downloads_are_rx(api_server, api_scenario):
    r = api_server.get("/api/v1/wan/history", params={"granularity": "month", "from": "2026-11",
                                                       "to": "2026-12"})
    assert r.status_code == 200
    body = r.json()
    assert body["device"] == "main_wan"
    assert [p["download_bytes"] for p in body["points"]] == [
        api_scenario.periods["2026-11"]["main_wan"][0], api_scenario.periods["2026-12"]["main_wan"][0]]
    assert body["total"] == totals(
        *[sum(x) for x in zip(api_scenario.periods["2026-11"]["main_wan"],
                              api_scenario.periods["2026-12"]["main_wan"], strict=True)], wan=True)


@pytest.mark.parametrize("path, params, status, error", [
    (f"/api/v1/clients/{LAPTOP}/history", {"granularity": "week"}, 400,
     "granularity must be day or month, got 'week'"),
    ("/api/v1/clients/not-a-mac/history", {}, 400, "not a MAC address: 'not-a-mac'"),
    ("/api/v1/clients/aa:bb:cc:dd:ee:ff/history", {}, 404,
     "no traffic, lease or name recorded for aa:bb:cc:dd:ee:ff"),
    ("/api/v1/wan/history", {"from": "2026-11-31"}, 400,
     "from must be a date YYYY-MM-DD from 1970-01-01 to 9998-12-31, got '2026-11-31'"),
    ("/api/v1/wan/history", {"granularity": "month", "to": "2026-11-01"}, 400,
     "to must be a month YYYY-MM from 1970-01 to 9998-12, got '2026-11-01'"),
    ("/api/v1/wan/history", {"from": "2026-11-20", "to": "2026-11-19"}, 400,
     "from (2026-11-20) is after to (2026-11-19)"),
    ("/api/v1/wan/history", {"from": "2025-01-01", "to": "2026-01-02"}, 400,
     "from 2025-01-01 to 2026-01-02 is 367 days; at most 366 at a time"),
    ("/api/v1/wan/history", {"granularity": "month", "from": "2000-01", "to": "2026-11"}, 400,
     "from 2000-01 to 2026-11 is 323 months; at most 120 at a time"),
])
def test_history_rejects_bad_parameters(api_server, path, params, status, error):
    r = api_server.get(path, params=params)
    assert (r.status_code, r.json()) == (status, {"error": error, "status": status})


def test_history_allows_the_longest_range(api_server):
    r = api_server.get("/api/v1/wan/history", params={"from": "2025-01-01", "to": "2026-01-01"})
    assert (r.status_code, len(r.json()["points"])) == (200, 366)


# --- leases, routers, health --------------------------------------------------------------


def test_leases_lists_every_current_lease(api_server):
    r = api_server.get("/api/v1/leases")
    assert r.status_code == 200
    expires = "2026-12-01T12:30:00+00:00"  # the simulator hands out 12-hour leases
    assert r.json() == {"leases": [
        {"mac": mac, "ip": SCENARIO_IPS[mac], "hostname": SHOWN_NAMES[mac], "client_id": None,
         "expires_at": expires, "router": "router-1", "updated_at": DEC_LAST_POLL}
        for mac in (LAPTOP, NONAME, UNKNOWN, ZOE)
    ]}


def test_routers_show_each_endpoints_last_success_and_error(api_server):
    r = api_server.get("/api/v1/routers")
    assert r.status_code == 200
    body = r.json()
    by_router = {x["router"]: x for x in body["routers"]}
    assert list(by_router) == ["ap-2", "ap-3", "router-1"]
    assert by_router["ap-3"]["ok"] is False
    assert by_router["ap-3"]["endpoints"] == [{
        "endpoint": "ap_stats", "ok": False, "last_ok_at": NOV_LAST_POLL,
        "last_attempt_at": DEC_LAST_POLL, "last_error": "HTTP 500 Internal Server Error",
        "last_error_at": DEC_LAST_POLL, "items": 0, "rejected": 0}]
    router1 = by_router["router-1"]
    assert [(e["endpoint"], e["ok"], e["last_ok_at"], e["items"]) for e in router1["endpoints"]] == [
        ("ap_stats", True, DEC_LAST_POLL, 4), ("dhcp_leases", True, DEC_LAST_POLL, 4),
        ("wan_stats", True, DEC_LAST_POLL, 1)]
    # The simulator booted router-1 a day before T0 (2026-11-15 12:00).
    assert (router1["ok"], router1["booted_at"], router1["uptime_sampled_at"]) == (
        True, "2026-11-14T12:00:00+00:00", DEC_LAST_POLL)
    assert body["last_run"] == {"started_at": DEC_LAST_POLL, "finished_at": DEC_LAST_POLL,
                                "endpoints_ok": 4, "endpoints_failed": 1,
                                "last_fetched_at": DEC_LAST_POLL}


def test_healthz_is_ok_right_after_a_run(api_server):
    r = api_server.get("/healthz")
    assert (r.status_code, r.headers["Cache-Control"]) == (200, "no-store")
    body = r.json()
    assert (body["status"], body["reason"], body["last_success_at"], body["endpoints_failed"],
            body["max_age_seconds"]) == ("ok", None, DEC_LAST_POLL, 1, 4200)
    # The API's clock is fixed at the last run's start; the run finished a moment later.
    assert -10 < body["age_seconds"] < 60


def test_index_links_to_the_routes(api_server):
    r = api_server.get("/api/v1/")
    assert r.status_code == 200
    links = r.json()["links"]
    assert all(api_server.get(links[k]).status_code == 200
               for k in ("dashboard", "usage", "owners", "periods", "wan_history", "leases", "routers",
                         "health", "openapi"))
    assert links["dashboard"] == "/"


# --- /api.php, the seed's API -----------------------------------------------------------------


def test_api_php_clients_lists_monthly_stats_without_the_wan(api_server, api_scenario):
    r = api_server.get("/api.php", params={"action": "clients"})
    assert (r.status_code, r.headers["Content-Type"]) == (200, "application/json")
    rows = db_rows(api_scenario, "network_stats.db",
                   "SELECT id, rx_bytes, tx_bytes FROM monthly_stats WHERE id != 'main_wan'")
    assert r.json() == {"data": rows}
    assert {row["id"]: [row["rx_bytes"], row["tx_bytes"]] for row in r.json()["data"]} == {
        mac: v for mac, v in api_scenario.periods["2026-12"].items() if mac != "main_wan"}
    assert all(list(row) == ["id", "rx_bytes", "tx_bytes"] for row in r.json()["data"])


def test_api_php_wan_has_last_update(api_server, api_scenario):
    r = api_server.get("/api.php", params={"action": "wan"})
    assert r.status_code == 200
    rx, tx = api_scenario.periods["2026-12"]["main_wan"]
    assert r.json() == {"data": [{"id": "main_wan", "rx_bytes": rx, "tx_bytes": tx,
                                  "last_update": "2026-12-01 00:30:00"}]}
    assert list(r.json()["data"][0]) == ["id", "rx_bytes", "tx_bytes", "last_update"]


def test_api_php_leases_has_every_column_of_every_row(api_server, api_scenario):
    r = api_server.get("/api.php", params={"action": "leases"})
    assert r.status_code == 200
    rows = db_rows(api_scenario, "dhcp_leases.db", "SELECT * FROM dhcp_leases")
    assert r.json() == {"data": rows}
    assert list(r.json()["data"][0]) == ["mac_address", "lease_end_time", "ip_address", "hostname",
                                         "client_id", "timestamp", "router"]
    assert len(rows) == 4


def test_api_php_combined_names_devices_like_the_seed(api_server, api_scenario):
    r = api_server.get("/api.php", params={"action": "combined"})
    assert r.status_code == 200
    body = r.json()
    rx, tx = api_scenario.periods["2026-12"]["main_wan"]
    assert body["wan_stats"] == {"rx_bytes": rx, "tx_bytes": tx, "last_update": "2026-12-01 00:30:00"}
    order = [row["id"] for row in db_rows(api_scenario, "network_stats.db",
                                          "SELECT id FROM monthly_stats") if row["id"] != "main_wan"]
    shown = {LAPTOP: "laptop", NONAME: "10.0.0.12", UNKNOWN: "10.0.0.13", TABLET: TABLET,
             ZOE: "Zoë/tablet"}
    dec = api_scenario.periods["2026-12"]
    assert body["client_stats"] == [
        {"rx_bytes": dec[mac][0], "tx_bytes": dec[mac][1], "hostname": shown[mac]} for mac in order]
    assert list(body) == ["wan_stats", "client_stats"]


def test_api_php_encodes_like_php_json_encode(api_server):
    r = api_server.get("/api.php", params={"action": "combined"})
    # json_encode: compact, non-ASCII as \u escapes, "/" escaped.
    assert '"hostname":"Zo\\u00eb\\/tablet"' in r.text
    assert r.text.startswith('{"wan_stats":{"rx_bytes":')


@pytest.mark.parametrize("query, error", [
    ("", "No action specified."),
    ("?action=", "Invalid action. Valid actions are: clients, wan, leases, combined."),
    ("?action=stats", "Invalid action. Valid actions are: clients, wan, leases, combined."),
    ("?action[]=clients", "Invalid action. Valid actions are: clients, wan, leases, combined."),
])
def test_api_php_errors_are_the_seeds(api_server, query, error):
    r = api_server.get("/api.php" + query)
    assert (r.status_code, r.headers["Content-Type"], r.text) == (
        400, "application/json", json.dumps({"error": error}, separators=(",", ":")))


# --- errors are JSON ------------------------------------------------------------------------


def test_unknown_path_is_a_json_404(api_server):
    r = api_server.get("/api/v2/usage")
    assert (r.status_code, r.headers["Content-Type"], r.json()) == (
        404, "application/json", {"error": "no such route: /api/v2/usage", "status": 404})


@pytest.mark.parametrize("path", ["/api/v1/usage", "/api.php?action=wan", "/healthz"])
def test_wrong_method_is_a_json_405_with_allow(api_server, path):
    r = api_server.request("DELETE", path)
    assert (r.status_code, r.headers["Content-Type"], r.headers["Allow"]) == (
        405, "application/json", "GET, HEAD")
    assert r.json() == {"error": "method DELETE not allowed here; allowed: GET, HEAD",
                        "status": 405}


# --- conditional requests -------------------------------------------------------------------

CACHED_ROUTES = ["/api/v1/usage", "/api/v1/usage?period=2026-11", "/api/v1/periods",
                 f"/api/v1/clients/{LAPTOP}/history", "/api/v1/wan/history?granularity=month",
                 "/api/v1/leases", "/api/v1/routers", "/api.php?action=combined"]


@pytest.mark.parametrize("path", CACHED_ROUTES)
def test_repeat_with_if_none_match_is_304(api_server, path):
    first = api_server.get(path)
    again = api_server.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert (first.status_code, again.status_code, again.content) == (200, 304, b"")
    assert again.headers["ETag"] == first.headers["ETag"]


@pytest.mark.parametrize("path", ["/api/v1/usage?period=2026-11", "/api/v1/leases"])
def test_repeat_with_if_modified_since_is_304(api_server, path):
    first = api_server.get(path)
    assert first.headers["Last-Modified"] == "Tue, 01 Dec 2026 00:30:00 GMT"  # the last run
    again = api_server.get(path, headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert again.status_code == 304


def test_a_different_answer_has_a_different_etag(api_server):
    etags = {api_server.get(path).headers["ETag"] for path in CACHED_ROUTES}
    assert len(etags) == len(CACHED_ROUTES)


def test_a_stale_etag_gets_the_full_answer(api_server):
    r = api_server.get("/api/v1/usage", headers={"If-None-Match": '"not-the-current-state"'})
    assert (r.status_code, r.json()["period"]["label"]) == (200, "2026-12")


# --- the contract and read-only behaviour ---------------------------------------------------


def test_openapi_document_lists_exactly_the_routes():
    app = create_app({"DATA_DIR": "/nonexistent"})
    routes = {str(rule).replace("<path:mac>", "{mac}") for rule in app.url_map.iter_rules()
              if rule.endpoint != "static"}
    assert routes == set(openapi.document()["paths"])


def test_openapi_document_is_served(api_server):
    r = api_server.get("/api/v1/openapi.json")
    assert (r.status_code, r.json()) == (200, openapi.document())
    assert r.json()["openapi"].startswith("3.")


def test_serving_leaves_the_data_files_byte_identical(api_server, api_scenario):
    for path in CACHED_ROUTES + ["/healthz", "/api.php?action=clients", "/api.php?action=wan",
                                 "/api.php?action=leases", "/api/v1/usage?period=2025-01"]:
        assert api_server.get(path).status_code == 200, path
    after = file_hashes(api_scenario.data_dir)
    before = api_scenario.hashes
    assert {name: after[name] for name in before} == before
    # A WAL reader may add the shared-memory index and an empty WAL, nothing else.
    added = set(after) - set(before)
    assert added <= {"network_stats.db-shm", "network_stats.db-wal", "dhcp_leases.db-shm",
                     "dhcp_leases.db-wal"}
    assert all((api_scenario.data_dir / name).stat().st_size == 0
               for name in added if name.endswith("-wal"))
