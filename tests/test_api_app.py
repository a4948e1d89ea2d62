"""Edge cases of the Flask app through create_app() and its test client (no server needed).

The routes' main behaviour is tested through real gunicorn in test_api_server.py;
here are the corners: the seed's files as the Go daemon left them, missing and
corrupt databases, health thresholds, the answer cache, configuration errors.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest
from flask import Flask
from support import (
    ESCAPE_HOST,
    FORMULA_HOST,
    HOSTILE_DEVICES,
    HOSTILE_HOSTNAMES,
    LONG_NAME,
    MARKUP_HOST,
    collect,
)

from api import queries
from api.app import DEFAULT_HEALTH_MAX_AGE, create_app
from collector import reads
from collector.schema import LEASES_DB, STATS_DB

UTC = timezone.utc  # datetime.UTC is Python 3.11+

INVALID_ACTION = "Invalid action. Valid actions are: clients, wan, leases, combined."


def client_for(data_dir: Path, **config):
    return create_app({"DATA_DIR": str(data_dir), **config}).test_client()


def copy_databases(source: Path, target: Path) -> Path:
    """The .db files only: a -shm belongs to the processes that have it open."""
    target.mkdir(parents=True)
    for name in (STATS_DB, LEASES_DB):
        shutil.copyfile(source / name, target / name)
    return target


def last_run_at(data_dir: Path) -> float:
    conn = reads.open_readonly(data_dir)
    try:
        return reads.last_run_at(conn)
    finally:
        conn.close()


def php(response) -> dict:
    return json.loads(response.get_data(as_text=True))


# --- the seed's files, as the Go daemon and api.php knew them --------------------------------

GO_CLIENTS = [  # id, rx, tx, lease (hostname, ip) or None
    ("aa:00:00:00:00:01", 10, 100, ("pc", "10.0.0.1")),
    ("aa:00:00:00:00:02", 20, 200, ("", "10.0.0.2")),
    ("aa:00:00:00:00:03", 30, 300, ("Unknown", "10.0.0.3")),
    ("aa:00:00:00:00:04", 40, 400, ("0", "10.0.0.4")),  # PHP's empty("0") is true
    ("aa:00:00:00:00:05", 50, 500, None),
    ("aa:00:00:00:00:06", 60, 600, (None, None)),
]


def go_daemon_files(data_dir: Path, *, wan: bool = True, stats: bool = True,
                    leases: bool = True) -> Path:
    """network_stats.db and dhcp_leases.db with only the seed's tables (schema version 0)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if stats:
        conn = sqlite3.connect(data_dir / STATS_DB)
        conn.executescript(
            "CREATE TABLE cumulative_stats (id TEXT PRIMARY KEY, rx_bytes INTEGER, tx_bytes INTEGER);"
            "CREATE TABLE monthly_stats (id TEXT PRIMARY KEY, rx_bytes INTEGER, tx_bytes INTEGER, "
            "timestamp TEXT);")
        if wan:
            conn.execute("INSERT INTO monthly_stats VALUES ('main_wan', 5000, 600, "
                         "'2026-11-20 08:15:00')")
        conn.executemany("INSERT INTO monthly_stats VALUES (?, ?, ?, '2026-11-20 08:15:00')",
                         [(mac, rx, tx) for mac, rx, tx, _ in GO_CLIENTS])
        conn.commit()
        conn.close()
    if leases:
        conn = sqlite3.connect(data_dir / LEASES_DB)
        conn.execute("CREATE TABLE dhcp_leases (mac_address TEXT PRIMARY KEY, lease_end_time "
                     "INTEGER, ip_address TEXT, hostname TEXT, client_id TEXT, timestamp TEXT)")
        conn.executemany("INSERT INTO dhcp_leases VALUES (?, 1795000000, ?, ?, '*', "
                         "'2026-11-20 08:15:00')",
                         [(mac, lease[1], lease[0]) for mac, _, _, lease in GO_CLIENTS if lease])
        conn.commit()
        conn.close()
    return data_dir


def test_api_php_combined_on_go_daemon_files_names_devices_like_the_seed(tmp_path):
    r = client_for(go_daemon_files(tmp_path)).get("/api.php?action=combined")
    assert r.status_code == 200
    assert php(r) == {
        "wan_stats": {"rx_bytes": 5000, "tx_bytes": 600, "last_update": "2026-11-20 08:15:00"},
        "client_stats": [
            {"rx_bytes": 10, "tx_bytes": 100, "hostname": "pc"},
            {"rx_bytes": 20, "tx_bytes": 200, "hostname": "10.0.0.2"},
            {"rx_bytes": 30, "tx_bytes": 300, "hostname": "10.0.0.3"},
            {"rx_bytes": 40, "tx_bytes": 400, "hostname": "10.0.0.4"},
            {"rx_bytes": 50, "tx_bytes": 500, "hostname": "aa:00:00:00:00:05"},
            {"rx_bytes": 60, "tx_bytes": 600, "hostname": None},
        ],
    }


def test_api_php_leases_on_go_daemon_files_has_the_seeds_columns(tmp_path):
    r = client_for(go_daemon_files(tmp_path)).get("/api.php?action=leases")
    assert r.status_code == 200
    assert php(r)["data"][0] == {"mac_address": "aa:00:00:00:00:01", "lease_end_time": 1795000000,
                                 "ip_address": "10.0.0.1", "hostname": "pc", "client_id": "*",
                                 "timestamp": "2026-11-20 08:15:00"}


def test_api_php_without_a_wan_row(tmp_path):
    client = client_for(go_daemon_files(tmp_path, wan=False))
    assert php(client.get("/api.php?action=wan")) == {"data": []}
    assert php(client.get("/api.php?action=combined"))["wan_stats"] == {
        "rx_bytes": 0, "tx_bytes": 0, "last_update": None}


def test_api_php_leases_needs_only_the_leases_database(tmp_path):
    client = client_for(go_daemon_files(tmp_path, stats=False))
    assert client.get("/api.php?action=leases").status_code == 200
    r = client.get("/api.php?action=clients")
    assert (r.status_code, php(r)) == (500, {"error": "Could not connect to the stats database."})


def test_api_php_clients_needs_only_the_stats_database(tmp_path):
    client = client_for(go_daemon_files(tmp_path, leases=False))
    assert client.get("/api.php?action=clients").status_code == 200
    r = client.get("/api.php?action=combined")
    assert (r.status_code, php(r)) == (500, {"error": "Could not connect to one or more databases."})


def test_api_php_uses_the_last_of_repeated_actions_like_php(tmp_path):
    r = client_for(go_daemon_files(tmp_path)).get("/api.php?action=nonsense&action=wan")
    assert (r.status_code, php(r)["data"][0]["id"]) == (200, "main_wan")


def test_api_php_without_the_table_is_a_500_naming_the_error(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    sqlite3.connect(tmp_path / STATS_DB).execute("CREATE TABLE other (x)").connection.close()
    r = client_for(tmp_path).get("/api.php?action=clients")
    assert (r.status_code, php(r)) == (
        500, {"error": "An unexpected error occurred: no such table: monthly_stats"})


def test_v1_on_unmigrated_go_daemon_files_answers_zeros(tmp_path):
    client = client_for(go_daemon_files(tmp_path), NOW=datetime(
        2026, 11, 21, tzinfo=UTC).timestamp())
    usage = client.get("/api/v1/usage").get_json()
    assert (usage["wan"]["rx_bytes"], usage["clients"], usage["updated_at"]) == (0, [], None)
    assert client.get("/api/v1/periods").get_json() == {"current": "2026-11", "periods": []}


# --- missing, corrupt and partial data --------------------------------------------------------


def test_a_corrupt_database_is_a_503_naming_it(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / STATS_DB).write_bytes(b"this is not a database" * 100)
    client = client_for(tmp_path)
    r = client.get("/api/v1/usage")
    assert (r.status_code, r.get_json()) == (503, {
        "error": f"{tmp_path / STATS_DB}: cannot read database: file is not a database",
        "status": 503})
    compat = client.get("/api.php?action=clients")
    assert (compat.status_code, php(compat)) == (
        500, {"error": "Could not connect to the stats database."})


def test_without_the_leases_database_usage_works_and_leases_is_503(api_scenario, tmp_path):
    data_dir = copy_databases(api_scenario.data_dir, tmp_path / "data")
    (data_dir / LEASES_DB).unlink()
    client = client_for(data_dir, NOW=api_scenario.now)
    usage = client.get("/api/v1/usage")
    assert usage.status_code == 200
    assert {c["hostname"] for c in usage.get_json()["clients"]} == {None}
    r = client.get("/api/v1/leases")
    assert (r.status_code, r.get_json()["error"]) == (
        503, f"{data_dir / LEASES_DB}: no such database (has the collector run yet?)")


def test_healthz_needs_the_leases_database_too(api_scenario, tmp_path):
    data_dir = copy_databases(api_scenario.data_dir, tmp_path / "data")
    (data_dir / LEASES_DB).unlink()
    r = client_for(data_dir, NOW=api_scenario.now).get("/healthz")
    assert (r.status_code, r.get_json()["status"]) == (503, "unavailable")
    assert r.get_json()["reason"] == (
        f"{data_dir / LEASES_DB}: no such database (has the collector run yet?)")


# --- health -------------------------------------------------------------------------------------


def test_healthz_is_stale_after_the_threshold(api_scenario):
    last = last_run_at(api_scenario.data_dir)
    fresh = client_for(api_scenario.data_dir, NOW=last + DEFAULT_HEALTH_MAX_AGE - 1).get("/healthz")
    stale = client_for(api_scenario.data_dir, NOW=last + DEFAULT_HEALTH_MAX_AGE + 1).get("/healthz")
    assert (fresh.status_code, stale.status_code) == (200, 503)
    assert stale.get_json()["status"] == "stale"
    assert stale.get_json()["reason"] == (
        f"the last run that fetched anything finished {DEFAULT_HEALTH_MAX_AGE + 1}s ago, "
        f"more than {DEFAULT_HEALTH_MAX_AGE}s")


def test_healthz_threshold_comes_from_the_environment(api_scenario, monkeypatch):
    last = last_run_at(api_scenario.data_dir)
    monkeypatch.setenv("NETSTAT_HEALTH_MAX_AGE", "60")
    monkeypatch.setenv("NETSTAT_NOW", repr(last + 61))
    monkeypatch.setenv("NETSTAT_DATA_DIR", str(api_scenario.data_dir))
    r = create_app().test_client().get("/healthz")
    assert (r.status_code, r.get_json()["max_age_seconds"]) == (503, 60)


@pytest.mark.parametrize("value, message", [
    ("soon", "NETSTAT_HEALTH_MAX_AGE must be a number of seconds, got 'soon'"),
    ("0", "NETSTAT_HEALTH_MAX_AGE must be above 0 seconds"),
    ("nan", "NETSTAT_HEALTH_MAX_AGE must be a finite number, got 'nan'"),
])
def test_a_bad_health_threshold_stops_the_app_from_starting(monkeypatch, value, message):
    monkeypatch.setenv("NETSTAT_HEALTH_MAX_AGE", value)
    with pytest.raises(ValueError) as raised:
        create_app()
    assert str(raised.value) == message


def test_healthz_is_503_when_no_run_fetched_anything(fleet, tmp_path):
    fleet.add_router("router-1")
    fleet.set_fault("router-1", "down")
    config = fleet.write_config(tmp_path / "routers.json", settings={"timezone": "UTC"})
    assert collect(fleet, config, tmp_path / "data").code == 1
    r = client_for(tmp_path / "data", NOW=fleet.now).get("/healthz")
    assert (r.status_code, r.get_json()["reason"]) == (
        503, "no collector run has fetched anything yet")


# --- caching and conditional answers ----------------------------------------------------------


def test_an_unchanged_answer_is_served_from_the_cache(api_scenario, tmp_path):
    data_dir = copy_databases(api_scenario.data_dir, tmp_path / "data")
    app = create_app({"DATA_DIR": str(data_dir), "NOW": api_scenario.now})
    cache = app.extensions["netstat_answers"]
    client = app.test_client()
    first = client.get("/api/v1/usage")
    second = client.get("/api/v1/usage")
    assert (cache.misses, cache.hits) == (1, 1)
    assert (second.data, second.headers["ETag"]) == (first.data, first.headers["ETag"])


def test_a_changed_file_is_a_new_answer(api_scenario, tmp_path):
    data_dir = copy_databases(api_scenario.data_dir, tmp_path / "data")
    app = create_app({"DATA_DIR": str(data_dir), "NOW": api_scenario.now})
    client = app.test_client()
    first = client.get("/api/v1/usage")
    stamp = (data_dir / STATS_DB).stat().st_mtime_ns + 10**9
    os.utime(data_dir / STATS_DB, ns=(stamp, stamp))  # as a restore from backup would
    second = client.get("/api/v1/usage", headers={"If-None-Match": first.headers["ETag"]})
    assert second.status_code == 200
    assert second.headers["ETag"] != first.headers["ETag"]
    assert app.extensions["netstat_answers"].misses == 2


def test_reading_does_not_change_the_file_state(api_scenario, tmp_path):
    """A reader creates an empty WAL; the ETag must not change because of it."""
    data_dir = copy_databases(api_scenario.data_dir, tmp_path / "data")
    before = queries.file_state(data_dir)
    reads.open_readonly(data_dir).execute("SELECT count(*) FROM runs").connection.close()
    assert (data_dir / "network_stats.db-wal").stat().st_size == 0
    assert queries.file_state(data_dir) == before


def test_the_default_period_is_modified_when_a_new_period_starts(api_scenario):
    new_year = datetime(2027, 1, 5, tzinfo=UTC).timestamp()
    r = client_for(api_scenario.data_dir, NOW=new_year).get("/api/v1/usage")
    assert r.headers["Last-Modified"] == "Fri, 01 Jan 2027 00:00:00 GMT"
    stale = client_for(api_scenario.data_dir, NOW=new_year).get(
        "/api/v1/usage", headers={"If-Modified-Since": "Tue, 01 Dec 2026 00:30:00 GMT"})
    assert (stale.status_code, stale.get_json()["period"]["label"]) == (200, "2027-01")


def test_head_answers_the_headers(api_scenario):
    client = client_for(api_scenario.data_dir, NOW=api_scenario.now)
    head = client.head("/api/v1/usage")
    assert (head.status_code, head.data) == (200, b"")
    assert head.headers["ETag"] == client.get("/api/v1/usage").headers["ETag"]


def test_the_openapi_document_is_conditional(tmp_path):
    client = client_for(tmp_path)
    first = client.get("/api/v1/openapi.json")
    again = client.get("/api/v1/openapi.json", headers={"If-None-Match": first.headers["ETag"]})
    assert (first.status_code, again.status_code) == (200, 304)


# --- defaults and errors ------------------------------------------------------------------------


def test_monthly_history_defaults_to_twelve_periods(api_scenario):
    body = client_for(api_scenario.data_dir, NOW=api_scenario.now).get(
        "/api/v1/wan/history?granularity=month").get_json()
    assert (body["from"], body["to"], len(body["points"])) == ("2026-01", "2026-12", 12)


def test_an_unexpected_error_is_a_json_500(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path)})

    @app.get("/boom")
    def boom():
        raise RuntimeError("a bug")

    r = app.test_client().get("/boom")
    assert (r.status_code, r.content_type, r.get_json()) == (
        500, "application/json", {"error": "internal error (logged on the server)", "status": 500})


def test_create_app_reads_the_data_directory_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NETSTAT_DATA_DIR", str(tmp_path))
    app = create_app()
    assert isinstance(app, Flask) and app.config["DATA_DIR"] == str(tmp_path)


def test_create_app_defaults_to_the_collectors_data_directory(monkeypatch):
    monkeypatch.delenv("NETSTAT_DATA_DIR", raising=False)
    assert create_app().config["DATA_DIR"] == "/var/www/netstat-data"


def test_a_data_directory_with_uri_characters_in_its_name(api_scenario, tmp_path):
    data_dir = copy_databases(api_scenario.data_dir, tmp_path / "data ?#%41 dir")
    r = client_for(data_dir, NOW=api_scenario.now).get("/api/v1/usage")
    assert (r.status_code, r.get_json()["period"]["label"]) == (200, "2026-12")


@pytest.mark.parametrize("mac", ["%C2%A0aa:bb:cc:dd:ee:01", "aa:bb:cc:dd:ee:01%E3%80%80"])
def test_a_mac_parameter_with_unicode_blanks_is_no_mac(api_scenario, mac):
    """Review item 12: the API's MAC parameter follows the same format as everything else."""
    answer = client_for(api_scenario.data_dir).get(f"/api/v1/clients/{mac}/history")
    assert answer.status_code == 400
    assert "not a MAC address" in answer.get_json()["error"]


# --- Hostile names in the answers ---------------------------------------------------------------


def test_hostile_names_are_data_in_json_and_inert_in_csv(hostile_names):
    data_dir, now = hostile_names
    client = client_for(data_dir, NOW=now)
    clients = {c["mac"]: c for c in client.get("/api/v1/usage").get_json()["clients"]}
    # JSON carries the text as it is: a JSON reader gets data, never markup or a formula.
    assert {mac: (c["name"], c["owner"], c["hostname"]) for mac, c in clients.items()} == {
        mac: (HOSTILE_DEVICES.get(mac, {}).get("name"), HOSTILE_DEVICES.get(mac, {}).get("owner"),
              HOSTILE_HOSTNAMES[mac]) for mac in HOSTILE_HOSTNAMES}
    r = client.get("/api/v1/usage?format=csv")
    assert r.content_type == "text/csv; charset=utf-8"
    rows = {row["mac"]: row for row in csv.DictReader(io.StringIO(r.get_data(as_text=True), newline=""))}
    # A spreadsheet sees text: a formula's first character comes after a `'`.
    assert rows[FORMULA_HOST]["hostname"] == "'" + HOSTILE_HOSTNAMES[FORMULA_HOST]
    assert (rows[ESCAPE_HOST]["name"], rows[ESCAPE_HOST]["owner"]) == ("'+cmd|' /C calc'!A0", "'@SUM(1+1)")
    assert rows[MARKUP_HOST]["name"] == "'-2+3\\x1b]0;pwned\\x07"
    assert rows[LONG_NAME]["hostname"] == "'-x"
    assert not any(ch in r.get_data(as_text=True) for ch in "\x1b\x07\u202e\u200f")
    owners = client.get("/api/v1/owners?format=csv").get_data(as_text=True)
    assert sorted(row["owner"] for row in csv.DictReader(io.StringIO(owners, newline=""))) == sorted(
        ["", "'@SUM(1+1)", "<b>Anna</b>", "\\u202eevil\\u200f"])
