"""Findings of the adversarial review: ways to count bytes that never moved, and memory.

Each test is the review's attack, run against the real CLI and simulated routers on
127.0.0.1, with the truth the simulation kept to compare against.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support import collect, run_cli, run_once_measured, stored_usage, truth_of

from collector import storage
from collector.accounting import Usage

SETTINGS = {"timezone": "UTC", "timeout_seconds": 5}
BIG = 3 * 1024**3  # what a station moved before the collector first saw it


def _station_with_history(fleet, mac="02:00:00:00:0a:01"):
    fleet.add_router("main", dhcp=False)
    fleet.join("main", mac)
    fleet.join("main", "02:00:00:00:0a:02")
    station = fleet.routers["main"].stations[mac]
    station.rx_bytes = station.tx_bytes = BIG  # moved before first contact: never counted


@pytest.mark.parametrize("fault", ["nul-line", "cr-only", "bom", "drop-first"])
def test_a_faulty_answer_never_counts_a_stations_counter_twice(fleet, data_dir, tmp_path, fault):
    """Item 1 (rejected line, CR-only endings, BOM) and 1b (a station missing from one answer of
    a router that reports connected seconds): 300 B moved, 300 B counted, not 3 GiB."""
    mac = "02:00:00:00:0a:01"
    _station_with_history(fleet, mac)
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    results = []
    for poll in range(4):
        if poll:
            fleet.advance(1800)
            fleet.transfer("main", mac, 100, 100)
        fleet.set_fault("main", fault if poll == 2 else "ok", ["ap_stats"])
        results.append(collect(fleet, config, data_dir))
        assert results[-1].code in (0, 1), results[-1].stderr
    assert stored_usage(data_dir)[mac] == (300, 300)
    if fault in ("cr-only", "bom"):
        # Decided: both are read as the README says, not rejected.
        assert "rejected" not in results[2].stderr and results[2].code == 0, results[2].stderr


@pytest.mark.slow
def test_unreadable_answer_is_a_failed_endpoint_not_an_empty_one(fleet, data_dir, tmp_path):
    mac = "02:00:00:00:0a:01"
    _station_with_history(fleet, mac)
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    assert collect(fleet, config, data_dir).code == 0
    fleet.advance(1800)
    fleet.transfer("main", mac, 100, 100)
    fleet.set_fault("main", "junk-lines", ["ap_stats"])
    result = collect(fleet, config, data_dir)
    assert result.code == 1
    assert "ap_stats FAILED (unreadable answer: 2097151 line(s) rejected" in result.stderr
    fleet.advance(1800)
    fleet.transfer("main", mac, 100, 100)
    fleet.set_fault("main", "ok", ["ap_stats"])
    assert collect(fleet, config, data_dir).code == 0
    assert stored_usage(data_dir)[mac] == (200, 200)


def test_a_station_that_really_left_and_came_back_while_missing_counts_in_full(fleet, data_dir, tmp_path):
    """1b the other way round: its connected seconds say it is a new association."""
    mac = "02:00:00:00:0a:01"
    _station_with_history(fleet, mac)
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    assert collect(fleet, config, data_dir).code == 0
    fleet.advance(600)
    fleet.transfer("main", mac, 100, 100)  # counted: seen by no poll, but moved before leaving
    fleet.leave("main", mac)
    fleet.advance(1200)
    fleet.set_fault("main", "drop-first", ["ap_stats"])  # the other station's answer only
    assert collect(fleet, config, data_dir).code == 0
    fleet.set_fault("main", "ok", ["ap_stats"])
    fleet.join("main", mac)
    fleet.advance(1800)
    fleet.transfer("main", mac, 7000, 9000)
    assert collect(fleet, config, data_dir).code == 0
    # The 100 B moved before it left are lost with its old association (as for any
    # station that leaves between polls); the new association counts in full.
    assert stored_usage(data_dir)[mac] == (7000, 9000)
    assert truth_of(fleet)[mac] == (7100, 9100)


# --- Item 2: claimed connected seconds and sums out of range ------------------------------------


class _HostileAp(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body = b""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        body = type(self).body
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def hostile_ap():
    handler = type("Handler", (_HostileAp,), {"body": b""})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}/cgi-bin/totalwifi.cgi"
    server.shutdown()
    server.server_close()


def test_claimed_connected_seconds_do_not_lift_the_rate_cap(hostile_ap, data_dir, tmp_path):
    handler, url = hostile_ap
    config = tmp_path / "routers.json"
    config.write_text(json.dumps({"settings": {"timezone": "UTC", "max_rate_mbps": 100},
                                  "routers": {"evil": {"ap_stats": url}}}))
    now = 1_800_000_000.0
    handler.body = b"02:00:00:00:0b:01 1 1 60\n"
    assert run_cli("run-once", "--config", str(config), "--data-dir", str(data_dir), now=now).code == 0
    for i in range(3):
        now += 1800
        huge = 2**63 - 1
        handler.body = f"02:00:00:00:0b:{2 + i:02x} {huge} 5 {huge}\n".encode()
        result = run_cli("run-once", "--config", str(config), "--data-dir", str(data_dir), now=now)
        assert result.code == 0, result.stderr
        assert "above max_rate_mbps" in result.stderr
    # 100 Mbit/s for 1,800 s is at most 22.5 MB: nothing of 2^63 bytes is counted.
    usage = stored_usage(data_dir)
    assert all(rx == 0 for rx, _ in usage.values()), usage
    report = run_cli("report", "--json", "--data-dir", str(data_dir), now=now)
    assert "e+" not in report.stdout


def test_counters_above_the_stored_range_are_rejected_lines(hostile_ap, data_dir, tmp_path):
    handler, url = hostile_ap
    config = tmp_path / "routers.json"
    config.write_text(json.dumps({"settings": {"timezone": "UTC"}, "routers": {"evil": {"ap_stats": url}}}))
    handler.body = (b"02:00:00:00:0b:01 18446744073709551616 1 60\n"
                    b"02:00:00:00:0b:02 1 1 60\n")
    result = run_cli("run-once", "--config", str(config), "--data-dir", str(data_dir), now=1.8e9)
    assert "1 stations, 1 line(s) rejected" in result.stderr


def _usage(rx: int, tx: int = 0) -> Usage:
    return Usage("2026-11", "2026-11-15", "r1", "02:00:00:00:0c:01", rx, tx, 1.8e9)


def test_a_total_that_would_leave_the_exact_range_is_refused_not_turned_into_a_float(tmp_path):
    from zoneinfo import ZoneInfo

    path = tmp_path / "network_stats.db"
    zone = ZoneInfo("UTC")
    conn = storage.connect_writer(path)
    storage.migrate_stats(conn, path, zone, 1)

    def commit(*usage: Usage) -> list[str]:
        update = storage.RunUpdate(started_at=1.8e9, finished_at=1.8e9, current_period_at=1.8e9,
                                     usage=list(usage), baselines={}, uptimes={}, endpoints=[])
        return storage.commit_stats(conn, path, update, zone, 1).notes

    other = Usage("2026-11", "2026-11-15", "r1", "02:00:00:00:0c:02", 5, 5, 1.8e9)
    assert commit(_usage(2**53 - 10), other) == []
    notes = commit(_usage(11), other)  # one byte too many for the first device
    assert len(notes) == 1 and "02:00:00:00:0c:01" in notes[0] and "refused" in notes[0]
    notes = commit(_usage(2**63 - 1))  # alone above the range
    assert len(notes) == 1
    rows = conn.execute(
        "SELECT device, rx_bytes, typeof(rx_bytes) FROM usage_period ORDER BY device").fetchall()
    assert rows == [("02:00:00:00:0c:01", 2**53 - 10, "integer"), ("02:00:00:00:0c:02", 10, "integer")]
    days = conn.execute("SELECT device, rx_bytes, typeof(rx_bytes) FROM usage_day ORDER BY device").fetchall()
    assert days == rows
    conn.close()


# --- Item 3: memory is bounded by the size cap, not by the number of lines ----------------------


@pytest.mark.slow
def test_two_million_rejected_lines_cost_no_more_memory_than_the_cap(fleet, data_dir, tmp_path):
    for i in range(3):
        key = f"junk{i}"
        fleet.add_router(key, dhcp=False, wan=False)
        fleet.join(key, f"02:00:00:00:0d:{i:02x}")
        fleet.set_fault(key, "junk-lines", ["ap_stats"])
    config = fleet.write_config(tmp_path / "routers.json", {"timezone": "UTC", "timeout_seconds": 30})
    env = {"NETSTAT_NOW": repr(fleet.now), "TZ": "UTC", "PATH": "/usr/bin:/bin"}
    proc, maxrss_mb = run_once_measured(config, data_dir, env)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("unreadable answer: 2097151 line(s) rejected") == 3, proc.stderr
    # Three answers at the 4 MiB cap, held as read: before, 1.13 GB. Seen: 64-65 MB on an idle
    # machine, 100 MB with the other core busy (fetch threads then spread their chunks over
    # more malloc arenas); the bound is far from both, and from the gigabyte it was.
    assert maxrss_mb < 160, f"peak RSS {maxrss_mb:.0f} MB for 3 x 2 million rejected lines"
    print(f"\n3 routers x 2,097,151 rejected lines: peak RSS {maxrss_mb:.0f} MB")

