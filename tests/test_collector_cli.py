"""The real CLI as a subprocess against simulated routers over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
from support import (
    REPO,
    collect,
    file_hashes,
    monthly_stats,
    run_cli,
    stored_usage,
    truth_of,
    write_config,
)

from collector.schema import SCHEMA_VERSION

UTC = timezone.utc  # datetime.UTC is Python 3.11+

A = "02:00:00:00:00:0a"
B = "02:00:00:00:00:0b"
C = "02:00:00:00:00:0c"
SETTINGS = {"timezone": "UTC", "timeout_seconds": 2}


def home(fleet, *, bits=64):
    """One router with WAN, AP and DHCP, and two devices on it."""
    fleet.add_router("main", counter_bits=bits)
    fleet.join("main", A, hostname="laptop", ip="10.0.0.10")
    fleet.join("main", B, hostname="phone", ip="10.0.0.11")


def traffic(fleet, router="main", wan="main", scale=1):
    for i, mac in enumerate(sorted(fleet.routers[router].stations)):
        fleet.transfer(router, mac, (i + 1) * 1000 * scale, (i + 1) * 50_000 * scale, wan_router=wan)


def test_first_run_records_baselines_then_counts_exact_deltas(fleet, data_dir, tmp_path):
    home(fleet)
    traffic(fleet)  # before the first poll: must not be counted
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    first = collect(fleet, config, data_dir)
    assert first.code == 0, first.stderr
    assert "main: ap_stats 2 stations; wan_stats ok (uptime 86400s); dhcp_leases 2 leases" in first.stderr
    assert stored_usage(data_dir) == {A: (0, 0), B: (0, 0), "main_wan": (0, 0)}
    before = truth_of(fleet)

    fleet.advance(1800)
    traffic(fleet, scale=3)
    second = collect(fleet, config, data_dir)
    assert second.code == 0, second.stderr
    after = truth_of(fleet)
    expected = {k: (after[k][0] - before[k][0], after[k][1] - before[k][1]) for k in after}
    assert stored_usage(data_dir) == expected
    stats = monthly_stats(data_dir)
    assert {k: v[:2] for k, v in stats.items()} == expected
    assert stats[A][2] == datetime.fromtimestamp(fleet.now, UTC).strftime("%Y-%m-%d %H:%M:%S")


def test_verbose_prints_each_device_delta(fleet, data_dir, tmp_path):
    home(fleet)
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    collect(fleet, config, data_dir)
    fleet.advance(1800)
    fleet.transfer("main", A, 7, 9)
    result = collect(fleet, config, data_dir, "-v")
    assert f"main {A}: +7 rx +9 tx (delta)" in result.stderr


def test_leases_replace_the_routers_previous_answer(fleet, data_dir, tmp_path):
    home(fleet)
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    assert collect(fleet, config, data_dir).code == 0
    del fleet.routers["main"].leases[B]
    fleet.routers["main"].leases[C] = ("10.0.0.12", "", "")  # a `*` hostname and client id
    fleet.advance(1800)
    assert collect(fleet, config, data_dir).code == 0
    conn = sqlite3.connect(data_dir / "dhcp_leases.db")
    rows = conn.execute("SELECT mac_address, ip_address, hostname, client_id, router FROM dhcp_leases "
                        "ORDER BY mac_address").fetchall()
    hosts = dict(conn.execute("SELECT mac, hostname FROM hosts"))
    conn.close()
    assert rows == [(A, "10.0.0.10", "laptop", "", "main"), (C, "10.0.0.12", "", "", "main")]
    assert hosts == {A: "laptop", B: "phone", C: ""}  # B's name is remembered after its lease went


def test_outage_and_http_500_fail_only_their_router_and_the_gap_is_counted_later(fleet, data_dir, tmp_path):
    home(fleet)
    fleet.add_router("ap2", wan=False, dhcp=False)
    fleet.join("ap2", C)
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    assert collect(fleet, config, data_dir).code == 0
    start = truth_of(fleet)

    fleet.set_fault("ap2", "down")
    fleet.set_fault("main", "http500", ["dhcp_leases"])
    fleet.advance(1800)
    traffic(fleet)
    traffic(fleet, router="ap2", wan="main")
    result = collect(fleet, config, data_dir)
    assert result.code == 1
    assert "ap2: ap_stats FAILED (connection closed without an answer)" in result.stderr
    assert "dhcp_leases FAILED (HTTP 500 Internal Server Error)" in result.stderr
    # main's stations and WAN were committed despite the other failures.
    now = truth_of(fleet)
    assert stored_usage(data_dir)[A] == (now[A][0] - start[A][0], now[A][1] - start[A][1])
    assert stored_usage(data_dir)[C] == (0, 0)

    fleet.set_fault("ap2", "ok")
    fleet.set_fault("main", "ok")
    fleet.advance(1800)
    traffic(fleet, router="ap2", wan="main")
    assert collect(fleet, config, data_dir).code == 0
    end = truth_of(fleet)
    assert stored_usage(data_dir)[C] == (end[C][0] - start[C][0], end[C][1] - start[C][1])


def test_timeouts_and_huge_bodies_fail_within_their_deadline(fleet, data_dir, tmp_path):
    home(fleet)
    for name, fault in (("hang", "hang"), ("slowbody", "slow"), ("huge", "huge"), ("fine", "ok")):
        router = fleet.add_router(name, dhcp=False)
        router.slow_seconds = 30
        fleet.set_fault(name, fault)
    config = fleet.write_config(tmp_path / "routers.json", {"timezone": "UTC", "timeout_seconds": 1})
    started = time.monotonic()
    result = collect(fleet, config, data_dir)
    elapsed = time.monotonic() - started
    assert result.code == 1
    lines = {line.split(":")[0]: line for line in result.stderr.splitlines()}
    assert "FAILED (no answer within 1s)" in lines["hang"]
    assert "FAILED (answer stalled for 1s)" in lines["slowbody"] or \
        "FAILED (answer not complete within 1s)" in lines["slowbody"]
    assert "byte cap" in lines["huge"]
    assert "FAILED" not in lines["fine"] and "FAILED" not in lines["main"]
    # Every endpoint runs at once: the run is bounded by one deadline, not their sum.
    assert elapsed < 15, elapsed
    assert "main_wan" in stored_usage(data_dir)


def test_garbage_lines_are_skipped_and_reported_once(fleet, data_dir, tmp_path):
    home(fleet)
    fleet.set_fault("main", "garbage", ["ap_stats"])
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    assert collect(fleet, config, data_dir).code == 0
    fleet.advance(1800)
    fleet.transfer("main", A, 10, 20)
    result = collect(fleet, config, data_dir)
    assert result.code == 0
    assert "ap_stats 2 stations, 4 line(s) rejected" in result.stderr
    assert result.stderr.count("malformed line(s) skipped") == 1
    assert stored_usage(data_dir)[A] == (10, 20)


def test_reboot_and_32_bit_wrap_are_counted_exactly(fleet, data_dir, tmp_path):
    home(fleet, bits=32)
    router = fleet.routers["main"]
    router.wan_rx = 2**32 - 1000  # about to wrap
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    assert collect(fleet, config, data_dir).code == 0
    start = truth_of(fleet)

    fleet.advance(1800)
    fleet.wan_transfer("main", 5000, 10)  # wraps the 32-bit WAN rx counter
    result = collect(fleet, config, data_dir)
    assert "32-bit counter wrapped" in result.stderr
    fleet.advance(60)
    fleet.reboot("main")  # and then a reboot: the counters restart below their old values
    fleet.advance(1740)
    traffic(fleet)
    result = collect(fleet, config, data_dir)
    assert result.code == 0
    assert "main: rebooted" in result.stderr
    end = truth_of(fleet)
    assert stored_usage(data_dir) == {k: (end[k][0] - start[k][0], end[k][1] - start[k][1]) for k in end}


def test_roaming_between_access_points_counts_each_byte_once(fleet, data_dir, tmp_path):
    home(fleet)
    fleet.add_router("ap2", wan=False, dhcp=False)
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    assert collect(fleet, config, data_dir).code == 0
    start = truth_of(fleet)
    for hop in range(6):
        src, dst = ("main", "ap2") if hop % 2 == 0 else ("ap2", "main")
        fleet.advance(30)
        fleet.roam(A, src, dst)
        fleet.advance(1770)
        fleet.transfer(dst, A, 1000 + hop, 90_000 + hop, wan_router="main")
        assert collect(fleet, config, data_dir).code == 0
    end = truth_of(fleet)
    usage = stored_usage(data_dir)
    assert usage[A] == (end[A][0] - start[A][0], end[A][1] - start[A][1])
    conn = sqlite3.connect(data_dir / "network_stats.db")
    per_router = dict(conn.execute(
        "SELECT router, sum(tx_bytes) FROM usage_period WHERE device = ? GROUP BY router", (A,)))
    conn.close()
    assert per_router == {"main": 90_001 + 90_003 + 90_005, "ap2": 90_000 + 90_002 + 90_004}


def test_month_change_keeps_history_and_monthly_stats_holds_only_the_new_period(fleet, data_dir, tmp_path):
    fleet.now = datetime(2026, 11, 30, 22, 45, tzinfo=UTC).timestamp()
    home(fleet)
    # Berlin is an hour ahead: a poll at 23:15 UTC on the 30th is 00:15 on 1 December there.
    config = fleet.write_config(tmp_path / "routers.json", {"timezone": "Europe/Berlin"})
    assert collect(fleet, config, data_dir).code == 0
    fleet.advance(1800)  # 23:15 UTC = 00:15 Berlin on the 1st
    fleet.transfer("main", A, 100, 200, wan_router="main")
    assert collect(fleet, config, data_dir).code == 0
    assert stored_usage(data_dir, "2026-12")[A] == (100, 200)
    assert stored_usage(data_dir, "2026-11")[A] == (0, 0)
    assert set(monthly_stats(data_dir)) == {A, B, "main_wan"}
    assert monthly_stats(data_dir)[A][2] == "2026-12-01 00:15:00"

    # The next period starts from zero in monthly_stats; the old one stays in history.
    fleet.now = datetime(2027, 1, 1, 0, 5, tzinfo=UTC).timestamp()
    fleet.transfer("main", B, 7, 8, wan_router="main")
    assert collect(fleet, config, data_dir).code == 0
    assert {k: v[:2] for k, v in monthly_stats(data_dir).items()} == {
        A: (0, 0), B: (7, 8), "main_wan": (8, 7)}
    assert stored_usage(data_dir, "2026-12")[A] == (100, 200)


def test_dry_run_creates_nothing_and_changes_nothing(fleet, data_dir, tmp_path):
    home(fleet)
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    dry = collect(fleet, config, data_dir, "--dry-run")
    assert dry.code == 0, dry.stderr
    assert not data_dir.exists()
    assert f"router main {A}: would add rx 0 tx 0" in dry.stdout

    assert collect(fleet, config, data_dir).code == 0
    before = file_hashes(data_dir)
    fleet.advance(1800)
    fleet.transfer("main", A, 5, 6)
    dry = collect(fleet, config, data_dir, "--dry-run")
    assert dry.code == 0
    assert f"period 2026-11 day 2026-11-15 router main {A}: would add rx 5 tx 6" in dry.stdout
    assert file_hashes(data_dir) == before
    # The dry run changed nothing: a real run still counts those bytes.
    assert collect(fleet, config, data_dir).code == 0
    assert stored_usage(data_dir)[A] == (5, 6)


def test_config_errors_exit_2_and_write_nothing(tmp_path, data_dir):
    bad = tmp_path / "routers.json"
    bad.write_text('{\n  "r": {"ap_stats": "http://127.0.0.1:9/x",}\n}\n')
    result = run_cli("run-once", "--config", str(bad), "--data-dir", str(data_dir))
    assert result.code == 2
    # The file and the line; json's column and words vary by Python version (3.13: trailing comma).
    assert re.search(rf"Error: {re.escape(str(bad))}: line 2 column \d+: invalid JSON: ", result.stderr), \
        result.stderr
    assert not data_dir.exists()

    result = run_cli("run-once", "--config", str(tmp_path / "missing.json"), "--data-dir", str(data_dir))
    assert result.code == 2 and "configuration file not found" in result.stderr

    write_config(bad, {"settings": {"month_start_day": 31}, "routers": {"r": {}}})
    result = run_cli("run-once", "--config", str(bad), "--data-dir", str(data_dir))
    assert result.code == 2 and "settings.month_start_day: must be an integer from 1 to 28" in result.stderr
    assert not data_dir.exists()


def test_environment_variables_set_the_paths_and_unknown_keys_warn(fleet, data_dir, tmp_path):
    home(fleet)
    document = fleet.config(SETTINGS)
    document["routers"]["main"]["colour"] = "blue"
    config = write_config(tmp_path / "routers.json", document)
    result = run_cli("run-once", now=fleet.now,
                     env={"NETSTAT_CONFIG": str(config), "NETSTAT_DATA_DIR": str(data_dir)})
    assert result.code == 0, result.stderr
    assert "warning: " in result.stderr and "routers.main: unknown key 'colour' ignored" in result.stderr
    assert (data_dir / "network_stats.db").exists() and (data_dir / "dhcp_leases.db").exists()


def test_storage_trouble_exits_3(fleet, tmp_path):
    home(fleet)
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    result = run_cli("run-once", "--config", str(config), "--data-dir", str(not_a_dir / "data"))
    assert result.code == 3
    assert "cannot create data directory" in result.stderr


def test_corrupt_database_exits_3_and_leaves_the_other_file_alone(fleet, data_dir, tmp_path):
    home(fleet)
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    assert collect(fleet, config, data_dir).code == 0
    leases_before = (data_dir / "dhcp_leases.db").read_bytes()
    (data_dir / "network_stats.db").write_bytes(b"this is not a database" * 100)
    for extra in ("network_stats.db-wal", "network_stats.db-shm"):
        (data_dir / extra).unlink(missing_ok=True)
    fleet.advance(1800)
    result = collect(fleet, config, data_dir)
    assert result.code == 3
    assert "network_stats.db" in result.stderr and "not a database" in result.stderr
    assert (data_dir / "dhcp_leases.db").read_bytes() == leases_before


def test_clock_behind_the_last_run_refuses_and_changes_nothing(fleet, data_dir, tmp_path):
    home(fleet)
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    assert collect(fleet, config, data_dir).code == 0
    fleet.advance(1800)
    fleet.transfer("main", A, 10, 10)
    assert collect(fleet, config, data_dir).code == 0
    before = stored_usage(data_dir)
    fleet.advance(-7200)  # the board booted with a stale clock
    fleet.transfer("main", A, 5, 5)
    result = collect(fleet, config, data_dir)
    assert result.code == 3
    assert "behind the last committed run" in result.stderr
    assert stored_usage(data_dir) == before
    fleet.advance(9000)  # NTP fixed the clock: the whole gap is counted
    assert collect(fleet, config, data_dir).code == 0
    assert stored_usage(data_dir)[A] == (15, 15)


def test_upgrades_a_go_daemon_data_directory_in_place(fleet, data_dir, tmp_path):
    data_dir.mkdir()
    stats = sqlite3.connect(data_dir / "network_stats.db")
    stats.executescript("""
        CREATE TABLE cumulative_stats (id TEXT PRIMARY KEY, rx_bytes INTEGER, tx_bytes INTEGER);
        CREATE TABLE monthly_stats (id TEXT PRIMARY KEY, rx_bytes INTEGER, tx_bytes INTEGER, timestamp TEXT);
        INSERT INTO cumulative_stats VALUES ('main_wan', 999, 999), ('02:00:00:00:00:0a', 5, 5);
        INSERT INTO monthly_stats VALUES ('main_wan', 5000000, 700000, '2026-11-15 11:30:00');
        INSERT INTO monthly_stats VALUES ('02:00:00:00:00:0a', 300000, 4000000, '2026-11-15 11:30:00');
        INSERT INTO monthly_stats VALUES ('02:00:00:00:00:0d', 10, 20, '2026-10-31 23:30:00');
    """)
    stats.close()
    leases = sqlite3.connect(data_dir / "dhcp_leases.db")
    leases.executescript("""
        CREATE TABLE dhcp_leases (mac_address TEXT PRIMARY KEY, lease_end_time INTEGER,
            ip_address TEXT, hostname TEXT, client_id TEXT, timestamp TEXT);
        INSERT INTO dhcp_leases VALUES ('02:00:00:00:00:0d', 0, '10.0.0.99', 'old-tv', '01:02',
            '2026-10-31 23:30:00');
    """)
    leases.close()

    home(fleet)
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    result = collect(fleet, config, data_dir)
    assert result.code == 0, result.stderr
    assert {k: v[:2] for k, v in monthly_stats(data_dir).items()} == {
        "main_wan": (5000000, 700000), A: (300000, 4000000), B: (0, 0)}
    assert stored_usage(data_dir, "2026-10") == {"02:00:00:00:00:0d": (10, 20)}
    fleet.advance(1800)
    fleet.transfer("main", A, 1, 2, wan_router="main")
    assert collect(fleet, config, data_dir).code == 0
    assert {k: v[:2] for k, v in monthly_stats(data_dir).items()}[A] == (300001, 4000002)
    conn = sqlite3.connect(data_dir / "dhcp_leases.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert dict(conn.execute("SELECT mac, hostname FROM hosts"))["02:00:00:00:00:0d"] == "old-tv"
    assert conn.execute("SELECT count(*) FROM dhcp_leases WHERE router IS NULL").fetchone()[0] == 0
    conn.close()


@pytest.mark.slow
def test_kill_9_at_random_moments_never_corrupts_or_double_counts(fleet, data_dir, tmp_path):
    home(fleet)
    fleet.add_router("ap2", wan=False, dhcp=False)
    for i in range(30):
        fleet.join("ap2", f"02:00:00:00:01:{i:02x}")
    fleet.routers["ap2"].delay = 0.2
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    assert collect(fleet, config, data_dir).code == 0
    start = truth_of(fleet)
    rng = random.Random(7)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETSTAT_")}
    killed_before_commit = 0
    for _ in range(12):
        fleet.advance(1800)
        traffic(fleet)
        traffic(fleet, router="ap2", wan="main")
        env["NETSTAT_NOW"] = repr(fleet.now)
        proc = subprocess.Popen(
            [sys.executable, "-m", "collector", "run-once", "--config", str(config),
             "--data-dir", str(data_dir)], cwd=REPO, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        if proc.wait() == -signal.SIGKILL:
            killed_before_commit += 1
        for name in ("network_stats.db", "dhcp_leases.db"):
            conn = sqlite3.connect(data_dir / name)
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            conn.close()
    assert killed_before_commit > 0
    fleet.advance(1800)
    assert collect(fleet, config, data_dir).code == 0
    end = truth_of(fleet)
    assert stored_usage(data_dir) == {k: (end[k][0] - start[k][0], end[k][1] - start[k][1]) for k in end}


@pytest.mark.slow
def test_two_overlapping_runs_never_double_count(fleet, data_dir, tmp_path):
    home(fleet)
    fleet.routers["main"].delay = 1.0
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    assert collect(fleet, config, data_dir).code == 0
    fleet.advance(1800)
    fleet.transfer("main", A, 100, 1000, wan_router="main")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETSTAT_")}
    procs = []
    for offset in (0, 1):
        env["NETSTAT_NOW"] = repr(fleet.now + offset)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "collector", "run-once", "--config", str(config),
             "--data-dir", str(data_dir)], cwd=REPO, env=dict(env),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        time.sleep(0.3)
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    assert stored_usage(data_dir)[A] == (100, 1000)
    assert stored_usage(data_dir)["main_wan"] == (1000, 100)
    conn = sqlite3.connect(data_dir / "network_stats.db")
    assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 3
    conn.close()


def test_files_are_group_writable_for_the_api_user(fleet, data_dir, tmp_path):
    home(fleet)
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    old = os.umask(0o022)
    try:
        assert collect(fleet, config, data_dir).code == 0
    finally:
        os.umask(old)
    for name in ("network_stats.db", "dhcp_leases.db"):
        assert (data_dir / name).stat().st_mode & 0o060 == 0o060, name


def test_console_script_and_module_agree():
    """`netstat-collect` (the installed script) and `python -m collector` are one program."""
    script = Path(sys.executable).parent / "netstat-collect"
    assert script.exists(), f"{script} missing: install the project with pip first"
    for args in (["--help"], ["--version"], ["run-once", "--help"], ["run-once", "--no-such-option"]):
        installed = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=60)
        module = subprocess.run([sys.executable, "-m", "collector", *args], capture_output=True,
                                text=True, timeout=60, cwd=REPO)
        assert (installed.returncode, installed.stdout, installed.stderr) == (
            module.returncode, module.stdout, module.stderr), args
        if args == ["--help"]:
            assert all(c in installed.stdout for c in ("run-once", "demo", "simulate", "report"))
        if args[-1] == "--no-such-option":
            assert installed.returncode == 2 and "--no-such-option" in installed.stderr


def test_demo_matches_the_simulation(tmp_path):
    """The installed console script, run away from the source tree, as the README says."""
    script = Path(sys.executable).parent / "netstat-collect"
    proc = subprocess.run([str(script), "demo", "--rounds", "8", "--data-dir", str(tmp_path / "demo")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={k: v for k, v in os.environ.items() if not k.startswith("NETSTAT_")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Every device and the WAN match the simulation byte for byte." in proc.stdout
    assert "WAN  download" in proc.stdout
    assert (tmp_path / "demo" / "network_stats.db").exists()


@pytest.mark.slow
def test_simulate_serves_on_loopback_and_stops_by_itself(tmp_path):
    config = tmp_path / "sim.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "collector", "simulate", "--routers", "2", "--stations", "3",
         "--port", "0", "--write-config", str(config), "--seconds", "8"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not config.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    result = run_cli("run-once", "--config", str(config), "--data-dir", str(tmp_path / "d"), "--dry-run")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    served = json.loads(out)  # it prints the config it serves: the one it wrote
    assert served == json.loads(config.read_text())
    assert result.code == 0, result.stderr
    assert "router-1: ap_stats 3 stations; wan_stats ok" in result.stderr
    assert "ap-2: ap_stats 3 stations" in result.stderr
    # Stopped by itself: nothing answers on its port any more.
    url = served["routers"]["router-1"]["ap_stats"]
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)


def test_main_wan_is_the_sum_of_every_routers_wan(fleet, data_dir, tmp_path):
    fleet.add_router("isp1")
    fleet.add_router("isp2", dhcp=False)
    fleet.add_router("ap", wan=False, dhcp=False)
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    assert collect(fleet, config, data_dir).code == 0
    fleet.advance(1800)
    fleet.wan_transfer("isp1", 1000, 10)
    fleet.wan_transfer("isp2", 500, 5)
    assert collect(fleet, config, data_dir).code == 0
    assert stored_usage(data_dir)["main_wan"] == (1500, 15)
    assert {k: v[:2] for k, v in monthly_stats(data_dir).items()} == {"main_wan": (1500, 15)}
    conn = sqlite3.connect(data_dir / "network_stats.db")
    per_router = dict(conn.execute(
        "SELECT router, rx_bytes FROM usage_period WHERE device = 'main_wan'"))
    conn.close()
    assert per_router == {"isp1": 1000, "isp2": 500}


def test_implausible_jump_counts_zero_and_is_logged(fleet, data_dir, tmp_path):
    home(fleet)
    config = fleet.write_config(tmp_path / "routers.json", {**SETTINGS, "max_rate_mbps": 100})
    assert collect(fleet, config, data_dir).code == 0
    fleet.advance(1800)
    # 100 Mbit/s for 1800 s is 22.5 GB: 50 GB in that time is impossible.
    fleet.routers["main"].wan_rx += 50 * 10**9
    fleet.transfer("main", A, 10, 20)
    result = collect(fleet, config, data_dir)
    assert result.code == 0
    assert "main main_wan: rx delta of 50000000000 bytes in 1800s is above max_rate_mbps" in result.stderr
    assert stored_usage(data_dir)["main_wan"] == (0, 0)
    assert stored_usage(data_dir)[A] == (10, 20)
    fleet.advance(1800)
    fleet.wan_transfer("main", 300, 400)
    assert collect(fleet, config, data_dir).code == 0
    assert stored_usage(data_dir)["main_wan"] == (300, 400)  # counted from the new baseline


def test_month_start_day_decides_the_period(fleet, data_dir, tmp_path):
    fleet.now = datetime(2026, 11, 14, 23, 0, tzinfo=UTC).timestamp()
    home(fleet)
    config = fleet.write_config(tmp_path / "routers.json", {"timezone": "UTC", "month_start_day": 15})
    assert collect(fleet, config, data_dir).code == 0
    fleet.advance(1800)
    fleet.transfer("main", A, 1, 2)
    assert collect(fleet, config, data_dir).code == 0  # 23:30 on the 14th: period 2026-10
    fleet.advance(3600)
    fleet.transfer("main", A, 10, 20)
    assert collect(fleet, config, data_dir).code == 0  # 00:30 on the 15th: period 2026-11
    assert stored_usage(data_dir, "2026-10")[A] == (1, 2)
    assert stored_usage(data_dir, "2026-11")[A] == (10, 20)
    conn = sqlite3.connect(data_dir / "network_stats.db")
    bounds = conn.execute('SELECT start, "end" FROM periods WHERE label = ?', ("2026-11",)).fetchone()
    conn.close()
    assert bounds == ("2026-11-15T00:00:00+00:00", "2026-12-15T00:00:00+00:00")


def test_router_display_name_in_the_log(fleet, data_dir, tmp_path):
    fleet.add_router("192.0.2.1")
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS, **{"192.0.2.1": {"name": "Attic"}})
    result = collect(fleet, config, data_dir)
    assert "Attic (192.0.2.1): ap_stats 0 stations" in result.stderr


def test_monthly_cap_reaches_readers(fleet, data_dir, tmp_path):
    from collector import reads

    home(fleet)
    config = fleet.write_config(tmp_path / "routers.json", {**SETTINGS, "monthly_cap_gib": 1.5})
    assert collect(fleet, config, data_dir).code == 0
    conn = reads.open_readonly(data_dir)
    try:
        assert reads.read_settings(conn).monthly_cap_bytes == int(1.5 * 1024**3)
    finally:
        conn.close()
