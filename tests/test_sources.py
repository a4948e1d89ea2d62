"""Stock OpenWrt as a source: run-once against simulated ubus (/ubus) and
prometheus-node-exporter-lua (/metrics) routers on 127.0.0.1, in this process; the bytes counted
are checked against the simulation's truth."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from support import collect, invoke, stored_usage, truth_of, write_config

from collector.sim import ubus as sim_ubus
from collector.sim.routers import Fleet

SETTINGS = {"timezone": "UTC", "timeout_seconds": 3}
A, B, C = "02:00:00:00:0a:01", "02:00:00:00:0a:02", "02:00:00:00:0a:03"
GIB = 1024**3


def two_routers(fleet: Fleet) -> None:
    fleet.add_router("main")
    fleet.add_router("ap-2", wan=False, dhcp=False)
    fleet.join("main", A, hostname="laptop")
    fleet.join("main", B)
    fleet.join("ap-2", C)


AMOUNTS = {A: (1_000, 70_000), B: (3_000, 9_000), C: (500, 40_000)}


def traffic(fleet: Fleet, scale: int = 1) -> None:
    """Every station moves bytes where it is now, through main's WAN."""
    for router in fleet.routers.values():
        for mac in list(router.stations):
            upload, download = AMOUNTS[mac]
            fleet.transfer(router.key, mac, upload * scale, download * scale, wan_router="main")


def leases(data_dir: Path) -> dict[str, tuple]:
    conn = sqlite3.connect(f"file:{data_dir / 'dhcp_leases.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT mac_address, ip_address, hostname, lease_end_time, router "
                            "FROM dhcp_leases").fetchall()
    finally:
        conn.close()
    return {r[0]: r[1:] for r in rows}


def test_switching_sources_between_runs_counts_every_byte_once(fleet, tmp_path, data_dir):
    two_routers(fleet)
    config = tmp_path / "routers.json"
    # cgi -> ubus -> prometheus -> ubus -> cgi, with a roam and a reboot on the way.
    for run, source in enumerate(("cgi", "ubus", "prometheus", "ubus", "cgi", "prometheus")):
        fleet.write_config(config, settings=SETTINGS, source=source)
        # Right after the last poll (what happens between it and a roam or a reboot is gone
        # with the counters, for any poller): B moves to ap-2, main reboots.
        if run == 2:
            fleet.roam(B, "main", "ap-2")
        if run == 4:
            fleet.reboot("main")
        if run:
            traffic(fleet, scale=run)
            fleet.advance(1800)
        result = collect(fleet, config, data_dir)
        assert result.code == 0, result.stderr
    assert stored_usage(data_dir) == truth_of(fleet)


def test_ubus_costs_a_login_and_two_batches_and_gives_every_endpoint(fleet, tmp_path, data_dir):
    two_routers(fleet)
    config = fleet.write_config(tmp_path / "routers.json", settings=SETTINGS, source="ubus")
    assert collect(fleet, config, data_dir).code == 0
    assert fleet.posts == {"main": 3, "ap-2": 3}
    traffic(fleet)
    fleet.advance(1800)
    result = collect(fleet, config, data_dir)
    assert result.code == 0, result.stderr
    assert "main: ap_stats 2 stations; wan_stats ok (uptime 88200s); dhcp_leases 2 leases" in result.stderr
    assert stored_usage(data_dir) == truth_of(fleet)
    rows = leases(data_dir)
    assert rows[A][1] == "laptop" and rows[B][1] == ""  # a client without a name: no hostname
    assert rows[A][2] == int(fleet.now) + 43200  # seconds left, as a unix time
    assert {r[3] for r in rows.values()} == {"main"}


def test_an_expired_session_is_renewed_once_and_nothing_is_lost(fleet, tmp_path, data_dir):
    two_routers(fleet)
    config = fleet.write_config(tmp_path / "routers.json", settings=SETTINGS, source="ubus")
    collect(fleet, config, data_dir)
    fleet.set_fault("main", "ubus-expire")
    fleet.posts.clear()
    traffic(fleet)
    fleet.advance(1800)
    result = collect(fleet, config, data_dir)
    assert result.code == 0, result.stderr
    assert fleet.posts["main"] == 5  # login, expired batch, login, batch, batch
    assert stored_usage(data_dir) == truth_of(fleet)


def test_a_call_the_acl_does_not_grant_fails_its_endpoint_and_says_what_to_fix(fleet, tmp_path, data_dir):
    two_routers(fleet)
    config = fleet.write_config(tmp_path / "routers.json", settings=SETTINGS, source="ubus")
    collect(fleet, config, data_dir)
    fleet.set_fault("main", "ubus-acl")
    traffic(fleet)
    fleet.advance(1800)
    result = collect(fleet, config, data_dir)
    assert result.code == 1
    line = next(x for x in result.stderr.splitlines() if x.startswith("main:"))
    assert "ap_stats FAILED (iwinfo devices: access denied (-32002) even after a fresh login" in line
    assert "acl.d/netstat.json" in line
    assert "wan_stats ok" in line  # the rest of the router still counts
    usage = stored_usage(data_dir)
    assert usage["main_wan"] == truth_of(fleet)["main_wan"]
    assert usage[A] == (0, 0) and usage[C] == truth_of(fleet)[C]  # A: first contact only


def test_a_refused_login_fails_that_router_alone(fleet, tmp_path, data_dir):
    two_routers(fleet)
    fleet.routers["main"].ubus_password = "another password"
    config = fleet.write_config(tmp_path / "routers.json", settings=SETTINGS, source="ubus")
    result = collect(fleet, config, data_dir)
    assert result.code == 1
    assert "login as 'netstat' refused: wrong username or password" in result.stderr
    assert "ap-2: ap_stats 1 stations" in result.stderr


def test_missing_luci_fails_only_the_leases(fleet, tmp_path, data_dir):
    two_routers(fleet)
    fleet.set_fault("main", "ubus-no-luci")
    config = fleet.write_config(tmp_path / "routers.json", settings=SETTINGS, source="ubus")
    result = collect(fleet, config, data_dir)
    assert result.code == 1
    assert ("dhcp_leases FAILED (luci-rpc getDHCPLeases: ubus object luci-rpc not found (-32000): "
            "is rpcd-mod-luci installed?)") in result.stderr
    assert "wan_stats ok" in result.stderr


def test_a_station_left_on_the_other_radio_is_counted_once(fleet, tmp_path, data_dir):
    two_routers(fleet)
    fleet.set_fault("main", "ubus-stale")
    config = fleet.write_config(tmp_path / "routers.json", settings=SETTINGS, source="ubus")
    collect(fleet, config, data_dir)
    traffic(fleet)
    fleet.advance(1800)
    result = collect(fleet, config, data_dir)
    assert "main: ap_stats 2 stations" in result.stderr
    assert stored_usage(data_dir) == truth_of(fleet)


def test_a_bad_assoclist_entry_is_rejected_and_keeps_its_baseline(fleet, tmp_path, data_dir):
    two_routers(fleet)
    config = fleet.write_config(tmp_path / "routers.json", settings=SETTINGS, source="ubus")
    collect(fleet, config, data_dir)
    traffic(fleet)
    fleet.advance(1800)
    fleet.set_fault("main", "ubus-bad-entry")
    result = collect(fleet, config, data_dir)
    assert result.code == 0
    assert "1 line(s) rejected" in result.stderr and "rx.bytes and tx.bytes" in result.stderr
    fleet.set_fault("main", "ok", ["ubus"])
    fleet.advance(1800)
    collect(fleet, config, data_dir)
    assert stored_usage(data_dir) == truth_of(fleet)  # the rejected station counted its gap


def test_old_rpcd_signed_counters_are_read_modulo_2_32_and_said(fleet, tmp_path, data_dir):
    fleet.add_router("old", wan=False, dhcp=False, counter_bits=32)
    fleet.join("old", A)
    fleet.transfer("old", A, 3 * GIB, 3 * GIB)  # past 2^31: rpcd prints it negative
    config = fleet.write_config(tmp_path / "routers.json", settings=SETTINGS, source="ubus")
    document = json.loads(config.read_text())
    del document["routers"]["old"]["counter_bits"]  # not configured: found out from the answer
    write_config(config, document)
    collect(fleet, config, data_dir)
    fleet.transfer("old", A, GIB // 2, GIB // 4)
    fleet.advance(1800)
    result = collect(fleet, config, data_dir)
    assert "came as signed 32-bit numbers (rpcd before 2023)" in result.stderr
    assert stored_usage(data_dir)[A] == (GIB // 2, GIB // 4)
    checked = invoke("check-config", "--config", str(config))
    assert 'set "counter_bits": 32' in checked.stdout


def test_old_rpcd_with_counter_bits_32_counts_across_the_wrap(fleet, tmp_path, data_dir):
    fleet.add_router("old", wan=False, dhcp=False, counter_bits=32)
    fleet.join("old", A)
    fleet.transfer("old", A, 3 * GIB, 3 * GIB)
    config = fleet.write_config(tmp_path / "routers.json", settings=SETTINGS, source="ubus")
    collect(fleet, config, data_dir)
    fleet.transfer("old", A, 2 * GIB, GIB + 5)  # 5 GiB: wrapped, positive again
    fleet.advance(1800)
    assert collect(fleet, config, data_dir).code == 0
    assert stored_usage(data_dir)[A] == (2 * GIB, GIB + 5)


@pytest.mark.parametrize("fault, message", [
    ("garbage", "answer is not JSON"),
    ("huge", "byte cap"),
    ("http500", "HTTP 500"),
    ("down", "connection closed without an answer"),
    pytest.param("hang", "no answer within 3s", marks=pytest.mark.slow),
])
def test_broken_ubus_answers_fail_that_router_alone(fleet, tmp_path, data_dir, fault, message):
    two_routers(fleet)
    fleet.routers["main"].slow_seconds = 5
    config = fleet.write_config(tmp_path / "routers.json", settings=SETTINGS, source="ubus")
    collect(fleet, config, data_dir)
    fleet.set_fault("main", fault, ["ubus"])
    traffic(fleet)
    fleet.advance(1800)
    result = collect(fleet, config, data_dir)
    assert result.code == 1
    line = next(x for x in result.stderr.splitlines() if x.startswith("main:"))
    assert line.count(message) == 3, line  # ap_stats, wan_stats and dhcp_leases, one answer
    assert stored_usage(data_dir)[C] == truth_of(fleet)[C]
    fleet.set_fault("main", "ok", ["ubus"])
    fleet.advance(1800)
    collect(fleet, config, data_dir)
    assert stored_usage(data_dir) == truth_of(fleet)  # rule 7: the gap counts next time


# --- prometheus-node-exporter-lua --------------------------------------------------------------


def test_exporter_asks_for_its_collectors_only_and_counts_exactly(fleet, tmp_path, data_dir):
    two_routers(fleet)
    config = fleet.write_config(tmp_path / "routers.json", settings=SETTINGS, source="prometheus")
    collect(fleet, config, data_dir)
    traffic(fleet)
    fleet.advance(1800)
    result = collect(fleet, config, data_dir)
    assert result.code == 0, result.stderr
    assert "main: ap_stats 2 stations; wan_stats ok (uptime 88200s); dhcp_leases 2 leases" in result.stderr
    assert stored_usage(data_dir) == truth_of(fleet)
    from urllib.parse import parse_qs
    assert {tuple(parse_qs(q)["collect[]"]) for q in fleet.queries} == {
        ("hostapd_stations", "netdev", "time", "cpu")}


def test_exporter_omit_zero_values_is_a_zero_not_a_missing_station(fleet, tmp_path, data_dir):
    two_routers(fleet)
    fleet.set_fault("main", "exporter-omit-zero")
    config = fleet.write_config(tmp_path / "routers.json", settings=SETTINGS, source="prometheus")
    collect(fleet, config, data_dir)
    fleet.transfer("main", A, 0, 12_345)  # no upload at all: its receive line is omitted
    fleet.advance(1800)
    result = collect(fleet, config, data_dir)
    assert "main: ap_stats 2 stations" in result.stderr
    assert stored_usage(data_dir)[A] == (0, 12_345)


def test_exporter_ssid_posing_as_a_label_is_rejected_not_counted(fleet, tmp_path, data_dir):
    two_routers(fleet)
    config = fleet.write_config(tmp_path / "routers.json", settings=SETTINGS, source="prometheus")
    collect(fleet, config, data_dir)
    fleet.set_fault("main", "exporter-hostile-ssid")
    traffic(fleet)
    fleet.advance(1800)
    result = collect(fleet, config, data_dir)
    assert result.code == 1
    assert "02:de:ad:be:ef:00" not in stored_usage(data_dir)
    fleet.set_fault("main", "ok", ["metrics"])
    fleet.advance(1800)
    collect(fleet, config, data_dir)
    assert stored_usage(data_dir) == truth_of(fleet)


def test_exporter_bad_line_is_rejected_and_the_rest_counted(fleet, tmp_path, data_dir):
    two_routers(fleet)
    fleet.set_fault("main", "exporter-bad-line")
    config = fleet.write_config(tmp_path / "routers.json", settings=SETTINGS, source="prometheus")
    collect(fleet, config, data_dir)
    traffic(fleet)
    fleet.advance(1800)
    result = collect(fleet, config, data_dir)
    assert result.code == 0
    assert "main ap_stats: 1 malformed line(s) skipped" in result.stderr
    assert stored_usage(data_dir) == truth_of(fleet)


def test_exporter_with_only_wifi_stations_says_it_has_no_byte_counters(fleet, tmp_path, data_dir):
    two_routers(fleet)
    fleet.set_fault("main", "exporter-wifi-only")
    config = fleet.write_config(tmp_path / "routers.json", settings=SETTINGS, source="prometheus")
    result = collect(fleet, config, data_dir)
    assert result.code == 1
    assert ("ap_stats FAILED (no hostapd_stations collector in the answer: install "
            "prometheus-node-exporter-lua-hostapd_stations (wifi_stations has no byte counters))"
            ) in result.stderr
    assert "wan_stats ok" in result.stderr


# --- check-router and check-config -------------------------------------------------------------


def test_check_router_explains_each_source(fleet, tmp_path):
    two_routers(fleet)
    fleet.write_config(tmp_path / "routers.json", settings=SETTINGS)
    good = invoke("check-router", fleet.url("main", "ubus"), "--username", sim_ubus.USERNAME,
                  "--password-file", str(fleet.password_file))
    assert good.code == 0, good.stdout
    assert "2 stations parsed" in good.stdout
    assert "connected seconds present: re-association is detected exactly" in good.stdout
    assert "uptime: 86400s: reboots are detected exactly" in good.stdout
    assert "3 endpoint(s) OK, 0 with problems" in good.stdout
    metrics = invoke("check-router", fleet.url("main", "metrics"), "--wan-device", "pppoe-wan")
    assert metrics.code == 0 and "2 endpoint(s) OK" in metrics.stdout
    fleet.set_fault("main", "ubus-acl")
    denied = invoke("check-router", fleet.url("main", "ubus"), "--username", sim_ubus.USERNAME,
                    "--password-file", str(fleet.password_file))
    assert denied.code == 1
    assert "access denied (-32002) even after a fresh login: the login's ACL does not grant" in denied.stdout
    assert "2 endpoint(s) OK, 1 with problems" in denied.stdout
    wrong = tmp_path / "wrong.password"
    wrong.write_text("nope\n")
    refused = invoke("check-router", fleet.url("main", "ubus"), "--username", sim_ubus.USERNAME,
                     "--password-file", str(wrong))
    assert refused.code == 1 and refused.stdout.count("not reachable: login as 'netstat' refused") == 3


def test_check_config_warns_when_the_password_file_is_readable_by_others(fleet, tmp_path):
    two_routers(fleet)
    config = fleet.write_config(tmp_path / "routers.json", settings=SETTINGS, source="ubus")
    assert "readable by every user" not in invoke("check-config", "--config", str(config)).stderr
    os.chmod(fleet.password_file, 0o644)
    result = invoke("check-config", "--config", str(config))
    assert f"{fleet.password_file} is readable by every user of this machine" in result.stderr
    assert result.code == 0


@pytest.mark.parametrize("router, where, what", [
    ({"source": "ubus", "url": "http://127.0.0.1:9/ubus", "password_file": "PW"},
     "routers.r.username", "missing"),
    ({"source": "ubus", "url": "http://127.0.0.1:9/ubus", "username": "u"},
     "routers.r.password_file", "NETSTAT_UBUS_PASSWORD_R"),
    ({"source": "ubus", "url": "http://127.0.0.1:9/ubus", "username": "u", "password_file": "PW",
      "ap_stats": "http://127.0.0.1:9/x"}, "routers.r.ap_stats", "is a key of source cgi"),
    ({"source": "prometheus", "url": "http://127.0.0.1:9/metrics", "wan": True},
     "routers.r.wan_device", "missing"),
    ({"source": "snmp"}, "routers.r.source", "must be one of cgi, ubus, prometheus"),
    ({"source": "ubus", "url": "http://127.0.0.1:9/ubus", "username": "u", "password_file": "PW",
      "tls_verify": "/nonexistent/ca.pem"}, "routers.r.tls_verify", "not found"),
])
def test_source_configuration_errors_name_file_and_key(tmp_path, data_dir, router, where, what):
    password = tmp_path / "pw"
    password.write_text("x\n")
    router = {k: (str(password) if v == "PW" else v) for k, v in router.items()}
    config = write_config(tmp_path / "routers.json", {"routers": {"r": router}})
    result = invoke("run-once", "--config", str(config), "--data-dir", str(data_dir))
    assert result.code == 2
    assert f"{config}: {where}: " in result.stderr and what in result.stderr
    assert not data_dir.exists()


def test_password_from_the_environment(fleet, tmp_path, data_dir):
    two_routers(fleet)
    config = fleet.write_config(tmp_path / "routers.json", settings=SETTINGS, source="ubus")
    document = json.loads(config.read_text())
    for entry in document["routers"].values():
        del entry["password_file"]
    write_config(config, document)
    env = {"NETSTAT_UBUS_PASSWORD_MAIN": sim_ubus.PASSWORD, "NETSTAT_UBUS_PASSWORD_AP_2": sim_ubus.PASSWORD}
    result = invoke("run-once", "--config", str(config), "--data-dir", str(data_dir), now=fleet.now, env=env)
    assert result.code == 0, result.stderr


# --- HTTPS with a self-signed certificate (uhttpd's px5g one, say) ----------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[str, str]:
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


@pytest.mark.parametrize("verify, ok", [("ca", True), (False, True), (True, False)])
def test_https_with_a_self_signed_certificate(tmp_path, data_dir, certificate, verify, ok):
    from support import T0
    fleet = Fleet(now=T0)
    two_routers(fleet)
    fleet.start(tls=certificate)
    try:
        tls_verify = certificate[0] if verify == "ca" else verify
        config = fleet.write_config(tmp_path / "routers.json", settings=SETTINGS, source="ubus",
                                    main={"tls_verify": tls_verify}, **{"ap-2": {"tls_verify": tls_verify}})
        assert fleet.url("main", "ubus").startswith("https://127.0.0.1:")
        result = collect(fleet, config, data_dir)
    finally:
        fleet.stop()
    if ok:
        assert result.code == 0, result.stderr
    else:
        assert result.code == 1
        assert "TLS failed" in result.stderr and "set tls_verify to its file" in result.stderr


def test_check_router_ubus_without_a_login_is_a_usage_error(fleet):
    fleet.add_router("main")
    result = invoke("check-router", fleet.url("main", "ubus"))
    assert result.code == 2
    assert "URL 1: a /ubus URL needs --username" in result.stderr


@pytest.mark.parametrize("source", ["ubus", "prometheus"])
def test_simulate_writes_a_configuration_for_the_source(tmp_path, source):
    config = tmp_path / "routers.json"
    result = invoke("simulate", "--routers", "2", "--stations", "1", "--port", "0", "--seconds", "0.5",
                    "--source", source, "--write-config", str(config))
    assert result.code == 0, result.stderr
    from collector.config import load_config
    loaded = load_config(config)
    assert {r.source for r in loaded.routers} == {source}
    assert all(r.url.startswith("http://127.0.0.1:") for r in loaded.routers)
    if source == "ubus":
        assert (tmp_path / "ubus.password").stat().st_mode & 0o077 == 0
        assert not loaded.warnings
