"""GET /metrics over databases the real collector wrote: values, labels, and the bad cases.

The scenario (support.build_api_scenario): three simulated routers, five devices, runs on
2026-11-15, 2026-11-16 and 2026-12-01, so November is a past period and December the
current one. Prometheus itself scraping a gunicorn is in test_prometheus.py.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import (
    HOSTILE_DEVICES,
    LAPTOP,
    REPO,
    SCENARIO_IPS,
    SCENARIO_LABELS,
    SCENARIO_NAMES,
    TABLET,
    UTC,
    collect,
    gunicorn_server,
    stored_usage,
)

from api.app import SECURITY_HEADERS, create_app
from collector.schema import LEASES_DB, SCHEMA_VERSION, STATS_DB

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def samples(text: str) -> dict[tuple, float]:
    """(sample name, sorted label pairs) -> value, parsed by prometheus_client's own parser."""
    result = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in result, f"duplicate series {key}"
            result[key] = s.value
    return result


def by_label(parsed: dict, name: str, *labels: str) -> dict:
    """The values of one metric, keyed by the given labels' values."""
    return {tuple(dict(k[1])[label] for label in labels): v
            for k, v in parsed.items() if k[0] == name}


def copy_databases(source: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    for name in (STATS_DB, LEASES_DB):
        shutil.copy2(source / name, target / name)
    return target


def set_version(path: Path, version: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


# --- Over the scenario, under gunicorn ------------------------------------------------------------


def test_metrics_are_the_exact_totals(api_server, api_scenario):
    r = api_server.get("/metrics")
    assert (r.status_code, r.headers["Content-Type"]) == (200, CONTENT_TYPE)
    assert {k: r.headers[k] for k in SECURITY_HEADERS} == SECURITY_HEADERS
    parsed = samples(r.text)
    assert parsed[("netstat_up", ())] == 1
    # Counters: every period, every router, the access point's rx being the upload.
    stored = stored_usage(api_scenario.data_dir)
    counters = by_label(parsed, "netstat_device_bytes_total", "mac", "direction")
    assert counters == {
        **{(mac, "upload"): rx for mac, (rx, tx) in stored.items() if mac != "main_wan"},
        **{(mac, "download"): tx for mac, (rx, tx) in stored.items() if mac != "main_wan"}}
    wan_rx, wan_tx = stored["main_wan"]
    assert by_label(parsed, "netstat_wan_bytes_total", "direction") == {
        ("download",): wan_rx, ("upload",): wan_tx}
    assert by_label(parsed, "netstat_router_wan_bytes_total", "router", "direction") == {
        ("router-1", "download"): wan_rx, ("router-1", "upload"): wan_tx}
    # What the scenario moved, per period, summed: the same numbers again.
    november, december = api_scenario.periods["2026-11"], api_scenario.periods["2026-12"]
    assert counters[(LAPTOP, "download")] == november[LAPTOP][1] + december[LAPTOP][1]


def test_period_gauges_match_api_v1_usage(api_server):
    parsed = samples(api_server.get("/metrics").text)
    usage = api_server.get("/api/v1/usage").json()
    assert by_label(parsed, "netstat_device_period_bytes", "mac", "direction") == {
        **{(c["mac"], "download"): c["download_bytes"] for c in usage["clients"]},
        **{(c["mac"], "upload"): c["upload_bytes"] for c in usage["clients"]}}
    assert by_label(parsed, "netstat_wan_period_bytes", "direction") == {
        ("download",): usage["wan"]["download_bytes"], ("upload",): usage["wan"]["upload_bytes"]}
    assert parsed[("netstat_period_start_timestamp_seconds", ())] == datetime(
        2026, 12, 1, tzinfo=UTC).timestamp()
    assert parsed[("netstat_period_end_timestamp_seconds", ())] == datetime(
        2027, 1, 1, tzinfo=UTC).timestamp()
    assert not any(k[0] == "netstat_period_cap_bytes" for k in parsed)  # no cap configured


def test_device_info_carries_names_apart_from_the_counters(api_server):
    parsed = samples(api_server.get("/metrics").text)
    info = {dict(k[1])["mac"]: (dict(k[1])["hostname"], dict(k[1])["ip"])
            for k in parsed if k[0] == "netstat_device_info"}
    shown = {mac: ("" if name in ("", "Unknown") else name) for mac, name in SCENARIO_NAMES.items()}
    assert info == {**{mac: (shown[mac], SCENARIO_IPS[mac]) for mac in SCENARIO_IPS},
                    TABLET: ("", "")}
    # The configured name and owner too: empty where the configuration sets none.
    assert by_label(parsed, "netstat_device_info", "mac", "name", "owner") == {
        (mac, name or "", owner or ""): 1 for mac, (name, owner) in SCENARIO_LABELS.items()}
    assert {tuple(sorted(dict(k[1]))) for k in parsed if k[0] == "netstat_device_bytes_total"} == {
        ("direction", "mac")}


def test_router_health(api_server, api_scenario):
    parsed = samples(api_server.get("/metrics").text)
    up = by_label(parsed, "netstat_router_endpoint_up", "router", "endpoint")
    assert up == {("router-1", "ap_stats"): 1, ("router-1", "wan_stats"): 1,
                  ("router-1", "dhcp_leases"): 1, ("ap-2", "ap_stats"): 1, ("ap-3", "ap_stats"): 0}
    last_ok = by_label(parsed, "netstat_router_endpoint_last_success_timestamp_seconds", "router",
                       "endpoint")
    # ap-3 failed the last run (2026-12-01): its last success is the run before.
    assert api_scenario.run_times[-2] <= last_ok[("ap-3", "ap_stats")] < api_scenario.run_times[-1]
    assert parsed[("netstat_last_run_endpoints", (("result", "failed"),))] == 1
    assert parsed[("netstat_last_run_timestamp_seconds", ())] >= api_scenario.run_times[-1]
    assert 0 <= parsed[("netstat_last_run_duration_seconds", ())] < 60


def test_a_repeat_scrape_is_the_cached_answer_and_honours_if_none_match(api_server):
    first = api_server.get("/metrics")
    again = api_server.get("/metrics", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert api_server.get("/metrics").content == first.content


def test_head_has_no_body(api_server):
    r = api_server.request("HEAD", "/metrics")
    assert (r.status_code, r.content, r.headers["Content-Type"]) == (200, b"", CONTENT_TYPE)


def test_the_cap_is_exposed_when_set(fleet, tmp_path):
    fleet.add_router("router-1")
    config = fleet.write_config(tmp_path / "routers.json",
                                settings={"timezone": "UTC", "monthly_cap_gib": 1000})
    assert collect(fleet, config, tmp_path / "data").code == 0
    client = create_app({"DATA_DIR": str(tmp_path / "data"), "NOW": fleet.now}).test_client()
    parsed = samples(client.get("/metrics").get_data(as_text=True))
    assert parsed[("netstat_period_cap_bytes", ())] == 1000 * 2**30
    assert by_label(parsed, "netstat_wan_period_bytes", "direction") == {
        ("download",): 0, ("upload",): 0}  # first contact: nothing counted yet


def test_a_device_on_two_access_points_is_one_series_summed(fleet, tmp_path):
    fleet.add_router("router-1")
    fleet.add_router("ap-2", wan=False, dhcp=False)
    fleet.join("router-1", LAPTOP, hostname="laptop")
    config = fleet.write_config(tmp_path / "routers.json", settings={"timezone": "UTC"})
    data_dir = tmp_path / "data"
    assert collect(fleet, config, data_dir).code == 0
    fleet.transfer("router-1", LAPTOP, 100, 1_000, wan_router="router-1")
    fleet.advance(1800)
    assert collect(fleet, config, data_dir).code == 0
    fleet.roam(LAPTOP, "router-1", "ap-2")
    fleet.transfer("ap-2", LAPTOP, 20, 300, wan_router="router-1")
    fleet.advance(1800)
    assert collect(fleet, config, data_dir).code == 0
    client = create_app({"DATA_DIR": str(data_dir), "NOW": fleet.now}).test_client()
    parsed = samples(client.get("/metrics").get_data(as_text=True))
    assert by_label(parsed, "netstat_device_bytes_total", "mac", "direction") == {
        (LAPTOP, "upload"): 120, (LAPTOP, "download"): 1_300}
    assert by_label(parsed, "netstat_device_period_bytes", "mac", "direction") == {
        (LAPTOP, "upload"): 120, (LAPTOP, "download"): 1_300}
    assert not any("router" in dict(k[1]) for k in parsed if k[0].startswith("netstat_device_"))


def test_a_device_gone_for_a_period_leaves_and_comes_back_with_its_total(fleet, tmp_path):
    """Series are bounded by the devices seen this period or the last; a device back after
    that shows its all-time total again, so increase() across the gap stays right."""
    fleet.add_router("router-1")
    fleet.join("router-1", LAPTOP)
    fleet.join("router-1", TABLET)
    config = fleet.write_config(tmp_path / "routers.json", settings={"timezone": "UTC"})
    data_dir = tmp_path / "data"

    def scrape(at: float) -> dict:
        client = create_app({"DATA_DIR": str(data_dir), "NOW": at}).test_client()
        parsed = samples(client.get("/metrics").get_data(as_text=True))
        return by_label(parsed, "netstat_device_bytes_total", "mac", "direction")

    def run_at(when: datetime) -> None:
        fleet.now = when.timestamp()
        assert collect(fleet, config, data_dir).code == 0

    run_at(datetime(2026, 11, 15, 12, tzinfo=UTC))  # the fleet's clock: T0
    fleet.transfer("router-1", LAPTOP, 1, 10, wan_router="router-1")
    fleet.transfer("router-1", TABLET, 2, 20, wan_router="router-1")
    run_at(datetime(2026, 11, 16, tzinfo=UTC))
    fleet.transfer("router-1", LAPTOP, 3, 30, wan_router="router-1")
    fleet.leave("router-1", TABLET)  # gone: no longer seen from here on
    run_at(datetime(2026, 12, 16, tzinfo=UTC))
    assert set(scrape(fleet.now)) == {(m, d) for m in (LAPTOP, TABLET) for d in ("upload", "download")}
    fleet.transfer("router-1", LAPTOP, 4, 40, wan_router="router-1")
    run_at(datetime(2027, 1, 16, tzinfo=UTC))
    assert scrape(fleet.now) == {(LAPTOP, "upload"): 8, (LAPTOP, "download"): 80}
    fleet.join("router-1", TABLET)  # back: a new association counts from zero
    fleet.transfer("router-1", TABLET, 5, 50, wan_router="router-1")
    run_at(datetime(2027, 2, 16, tzinfo=UTC))
    assert scrape(fleet.now)[(TABLET, "download")] == 70


# --- Bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("hostname", [
    'evil"}netstat_up{x="1',  # would close the label set and start a series if not escaped
    "back\\slash\\",
    "bidi\u202etxt.exe",
    "#HELP",
])
def test_hostile_hostnames_stay_inert_label_values(fleet, tmp_path, hostname):
    mac = "aa:00:00:00:00:09"
    fleet.add_router("router-1")
    fleet.join("router-1", mac, hostname=hostname, ip="10.0.0.9")
    config = fleet.write_config(tmp_path / "routers.json", settings={"timezone": "UTC"})
    data_dir = tmp_path / "data"
    assert collect(fleet, config, data_dir).code == 0
    fleet.transfer("router-1", mac, 10, 20, wan_router="router-1")
    fleet.advance(1800)
    assert collect(fleet, config, data_dir).code == 0
    client = create_app({"DATA_DIR": str(data_dir), "NOW": fleet.now}).test_client()
    r = client.get("/metrics")
    parsed = samples(r.get_data(as_text=True))
    assert by_label(parsed, "netstat_device_info", "mac", "hostname") == {(mac, hostname): 1}
    assert [k for k in parsed if k[0] == "netstat_up"] == [("netstat_up", ())]
    assert by_label(parsed, "netstat_device_bytes_total", "mac", "direction") == {
        (mac, "upload"): 10, (mac, "download"): 20}


def test_hostile_configured_names_and_owners_stay_inert_label_values(hostile_names):
    data_dir, now = hostile_names
    parsed = samples(create_app({"DATA_DIR": str(data_dir), "NOW": now}).test_client()
                     .get("/metrics").get_data(as_text=True))
    assert {mac: (name, owner) for (mac, name, owner) in by_label(
        parsed, "netstat_device_info", "mac", "name", "owner") if mac in HOSTILE_DEVICES} == {
        mac: (d["name"], d["owner"]) for mac, d in HOSTILE_DEVICES.items()}
    assert [k for k in parsed if k[0] == "netstat_up"] == [("netstat_up", ())]


def test_without_databases_it_is_a_503_with_netstat_up_0(tmp_path):
    (tmp_path / "data").mkdir()
    with gunicorn_server(tmp_path / "data", tmp_path / "gunicorn.log") as server:
        r = server.get("/metrics")
    assert (r.status_code, r.headers["Content-Type"]) == (503, CONTENT_TYPE)
    assert r.headers["Cache-Control"] == "no-store"
    assert r.text.splitlines()[0] == (f"# {tmp_path / 'data' / STATS_DB}: no such database "
                                      f"(has the collector run yet?)")
    assert samples(r.text) == {("netstat_up", ()): 0}
    assert "Traceback" not in r.text


@pytest.mark.parametrize("damage, reason", [
    ("go-daemon", "schema version 0, tables missing: periods, runs, router_endpoints, "
                  "router_uptime, meta; this reader needs version " + str(SCHEMA_VERSION)),
    ("stats-v1", "schema version 1, tables missing: none; this reader needs version " + str(SCHEMA_VERSION)),
    ("leases-v0", "schema version 0; this reader needs version " + str(SCHEMA_VERSION)),
])
def test_unmigrated_databases_are_a_503_with_netstat_up_0(api_scenario, tmp_path, damage, reason):
    data_dir = copy_databases(api_scenario.data_dir, tmp_path / "data")
    if damage == "go-daemon":
        # The Go daemon's file: the seed's tables only, never migrated.
        (data_dir / STATS_DB).unlink()
        conn = sqlite3.connect(data_dir / STATS_DB)
        conn.executescript("CREATE TABLE monthly_stats (id TEXT PRIMARY KEY, rx_bytes INTEGER, "
                           "tx_bytes INTEGER, timestamp TEXT); CREATE TABLE usage_period (x);")
        conn.close()
    elif damage == "stats-v1":
        set_version(data_dir / STATS_DB, 1)  # a step of the migration not (yet) committed
    else:
        set_version(data_dir / LEASES_DB, 0)
    client = create_app({"DATA_DIR": str(data_dir), "NOW": api_scenario.now}).test_client()
    r = client.get("/metrics")
    text = r.get_data(as_text=True)
    assert (r.status_code, r.headers["Content-Type"]) == (503, CONTENT_TYPE)
    assert reason in text.splitlines()[0]
    assert samples(text) == {("netstat_up", ()): 0}


def test_the_collector_never_imports_prometheus_client():
    code = ("import sys, collector.cli, collector.run, collector.reads\n"
            "assert 'prometheus_client' not in sys.modules, 'imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr


# --- The Grafana dashboard (its queries run against a real Prometheus in test_prometheus.py) ----


def dashboard_targets() -> list[tuple[str, dict]]:
    """(panel title, target) for every query of docs/grafana-dashboard.json."""
    dashboard = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
    return [(panel["title"], target) for panel in dashboard["panels"]
            for target in panel.get("targets", [])]


def test_the_grafana_dashboard_is_importable_and_uses_our_metrics(api_server):
    dashboard = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
    # Importable as is: Grafana asks for the Prometheus data source named by __inputs.
    assert [(i["name"], i["type"], i["pluginId"]) for i in dashboard["__inputs"]] == [
        ("DS_PROMETHEUS", "datasource", "prometheus")]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert {p["datasource"]["uid"] for p in panels} == {"${DS_PROMETHEUS}"}
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    exprs = [t["expr"] for _, t in dashboard_targets()]
    assert all(t["datasource"]["uid"] == "${DS_PROMETHEUS}" for _, t in dashboard_targets())
    # Counters only ever through increase(); every name is one /metrics serves.
    served = {k[0] for k in samples(api_server.get("/metrics").text)} | {"netstat_period_cap_bytes"}
    used = {name for e in exprs for name in re.findall(r"netstat_[a-z_]+", e)}
    assert used <= served, used - served
    for e in exprs:
        for counter in re.findall(r"netstat_[a-z_]+_total", e):
            assert re.search(rf"increase\({counter}\b", e), e
    assert {"netstat_wan_bytes_total", "netstat_device_bytes_total"} <= used
