"""Faults: kills at every stage of a run, hostile routers, a hostile machine, hostile strings.

Everything on 127.0.0.1; figures printed here feed docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from support import REPO, as_user, collect, run_cli, run_once_measured, stored_usage, truth_of

from collector.sim.faults import POINTS

SETTINGS = {"timezone": "UTC", "timeout_seconds": 2}
KILLS = 120


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def cli_env(now: float, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETSTAT_")}
    env["NETSTAT_NOW"] = repr(now)
    env.update(extra)
    return env


def everything_since(start: dict, end: dict) -> dict:
    return {k: (end[k][0] - start.get(k, (0, 0))[0], end[k][1] - start.get(k, (0, 0))[1]) for k in end}


@pytest.mark.slow
def test_crash_matrix_sigkill_at_every_stage_loses_and_doubles_nothing(fleet, data_dir, tmp_path):
    """120 SIGKILLs on a seeded schedule: at named points (after fetching, with the stats
    transaction written but not committed, between the two commits, ...) and at random
    moments. After each, both files pass integrity_check; in the end the totals equal
    the simulated truth exactly."""
    rng = random.Random(20261128)
    fleet.add_router("main")
    fleet.add_router("ap2", wan=False, dhcp=False)
    for i in range(6):
        fleet.join("main" if i % 2 else "ap2", f"02:00:00:00:02:{i:02x}", hostname=f"dev{i}")
    fleet.routers["ap2"].delay = 0.15
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    assert collect(fleet, config, data_dir).code == 0
    start = truth_of(fleet)
    outcomes = {"killed": 0, "finished anyway": 0}
    by_point: dict[str, int] = {}
    for round_no in range(KILLS):
        fleet.advance(1800)
        for router in ("main", "ap2"):
            for mac in list(fleet.routers[router].stations):
                fleet.transfer(router, mac, rng.randint(0, 10**6), rng.randint(0, 10**8),
                               wan_router="main")
        point = rng.choice(POINTS + ("timer",) * 3)
        env = cli_env(fleet.now, **({} if point == "timer" else {"NETSTAT_CRASH_AT": point}))
        proc = subprocess.Popen([sys.executable, "-m", "collector", "run-once", "--config", str(config),
                                 "--data-dir", str(data_dir)], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if point == "timer":
            time.sleep(rng.uniform(0.0, 0.5))
            proc.send_signal(signal.SIGKILL)
        code = proc.wait(timeout=60)
        outcomes["killed" if code == -signal.SIGKILL else "finished anyway"] += 1
        by_point[point] = by_point.get(point, 0) + (code == -signal.SIGKILL)
        for name in ("network_stats.db", "dhcp_leases.db"):
            if (data_dir / name).exists():
                assert integrity(data_dir / name) == "ok", (round_no, point, name)
        if round_no % 15 == 14:
            # Now and then a clean run, then a roam: it must be counted right after kills.
            fleet.advance(1800)
            assert collect(fleet, config, data_dir).code == 0
            assert stored_usage(data_dir) == everything_since(start, truth_of(fleet)), round_no
            mac = sorted(fleet.routers["ap2"].stations)[0]
            fleet.advance(60)
            fleet.roam(mac, "ap2", "main")
            fleet.advance(60)
            fleet.roam(mac, "main", "ap2")
    fleet.advance(1800)
    assert collect(fleet, config, data_dir).code == 0
    assert stored_usage(data_dir) == everything_since(start, truth_of(fleet))
    assert outcomes["killed"] >= 100, outcomes
    assert all(by_point[p] > 0 for p in POINTS), by_point
    print(f"\ncrash matrix: {outcomes}, kills by point {by_point}")


def _blackhole() -> socket.socket:
    """A TCP port that accepts connections (in the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.mark.slow
def test_hostile_routers_fail_alone_within_their_deadline(fleet, data_dir, tmp_path):
    fleet.add_router("good")
    fleet.join("good", "02:00:00:00:03:01")
    modes = ("dribble", "dribble-headers", "gzip-bomb", "huge", "redirect-loop", "http429",
             "http500", "binary", "hang")
    for mode in modes:
        fleet.add_router(mode, dhcp=False).slow_seconds = 20
        fleet.join(mode, "02:00:00:00:03:02")
        fleet.set_fault(mode, mode)
    hole = _blackhole()
    document = fleet.config(SETTINGS)
    document["routers"]["blackhole"] = {"ap_stats": f"http://127.0.0.1:{hole.getsockname()[1]}/x"}
    document["routers"]["closed"] = {"ap_stats": f"http://127.0.0.1:{_closed_port()}/x"}
    config = tmp_path / "routers.json"
    config.write_text(json.dumps(document))
    try:
        started = time.monotonic()
        proc, maxrss_mb = run_once_measured(config, data_dir, cli_env(fleet.now), timeout=60)
        elapsed = time.monotonic() - started
    finally:
        hole.close()
    assert proc.returncode == 1, proc.stderr
    lines = {line.split(":")[0]: line for line in proc.stderr.splitlines()}
    expected = {
        "dribble": "answer not complete within 2s",
        "dribble-headers": "no complete answer within 2s",
        "gzip-bomb": "byte cap (decompressed)",
        "huge": "byte cap",
        "redirect-loop": "more than 3 redirects",
        "http429": "HTTP 429",
        "http500": "HTTP 500",
        "hang": "no answer within 2s",
        "blackhole": "no answer within 2s",
        "closed": "connection refused",
    }
    for router, message in expected.items():
        assert "FAILED" in lines[router] and message in lines[router], lines[router]
    # Binary junk and NUL bytes are rejected lines, not a failure; the station still counts.
    assert "ap_stats 1 stations, 3 line(s) rejected" in lines["binary"]
    assert "FAILED" not in lines["good"]
    # Bounded by one deadline (2 s, plus grace and start-up), not by the sum of the faults
    # (the hanging router alone would take 20 s).
    assert elapsed < 15, elapsed
    assert maxrss_mb < 120, f"peak memory {maxrss_mb:.0f} MB with a gzip bomb and a huge body"
    assert set(stored_usage(data_dir)) >= {"02:00:00:00:03:01", "main_wan"}
    print(f"\nhostile routers: {len(expected) + 1} faults, run took {elapsed:.1f}s, "
          f"peak RSS {maxrss_mb:.0f} MB")


def test_missing_database_beside_an_existing_one_is_refused(fleet, data_dir, tmp_path):
    fleet.add_router("main")
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    assert collect(fleet, config, data_dir).code == 0
    stats_before = (data_dir / "network_stats.db").read_bytes()
    (data_dir / "dhcp_leases.db").unlink()
    fleet.advance(1800)
    result = collect(fleet, config, data_dir)
    assert result.code == 3
    assert "dhcp_leases.db: missing while network_stats.db exists" in result.stderr
    assert not (data_dir / "dhcp_leases.db").exists()
    assert (data_dir / "network_stats.db").read_bytes() == stats_before


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts a tmpfs / switches user")


@pytest.mark.slow
@needs_root
def test_data_directory_not_writable(fleet):
    # Outside pytest's private (0700) temporary tree, so that `nobody` can read the config.
    shared = Path(tempfile.mkdtemp(prefix="netstat-perm-"))
    try:
        shared.chmod(0o755)
        fleet.add_router("main")
        config = fleet.write_config(shared / "routers.json", SETTINGS)
        config.chmod(0o644)
        locked = shared / "locked"
        locked.mkdir(mode=0o755)
        env = cli_env(fleet.now, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
        proc = subprocess.run([*as_user("nobody", "nogroup", shared / "stage"), "-m", "collector",
                               "run-once", "--config", str(config), "--data-dir", str(locked)],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 3, proc.stderr
        assert f"{locked}: data directory is not writable by this user" in proc.stderr
        assert list(locked.iterdir()) == []
    finally:
        shutil.rmtree(shared)


@needs_root
@pytest.mark.slow
def test_disk_full_fails_cleanly_and_the_next_run_counts_everything(fleet, tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], check=True)
    try:
        data_dir = mount / "data"
        fleet.add_router("main")
        fleet.join("main", "02:00:00:00:04:01", hostname="x")
        config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
        assert collect(fleet, config, data_dir).code == 0
        start = truth_of(fleet)
        filler = mount / "filler"
        with open(filler, "wb", buffering=0) as f:  # fill the file system to the last block
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        before = {p.name: p.read_bytes() for p in data_dir.iterdir() if p.suffix == ".db"}
        for i in range(200):  # enough new devices that the commit needs new pages
            fleet.join("main", f"02:00:00:00:05:{i:02x}", hostname="h" * 200 + str(i))
        fleet.advance(1800)
        fleet.transfer("main", "02:00:00:00:04:01", 10, 20, wan_router="main")
        result = collect(fleet, config, data_dir)
        assert result.code == 3, result.stderr
        assert "full" in result.stderr
        assert {p.name: p.read_bytes() for p in data_dir.iterdir() if p.suffix == ".db"} == before
        filler.unlink()  # (even reading a WAL database needs room for its -shm file)
        for name in before:
            assert integrity(data_dir / name) == "ok"
        fleet.advance(1800)
        assert collect(fleet, config, data_dir).code == 0
        assert stored_usage(data_dir)["02:00:00:00:04:01"] == (10, 20)
        assert stored_usage(data_dir)["main_wan"] == everything_since(start, truth_of(fleet))["main_wan"]
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_uptime_jump_and_clock_step_never_give_negative_or_misplaced_bytes(fleet, data_dir, tmp_path):
    fleet.add_router("main")
    fleet.join("main", "02:00:00:00:06:01")
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    assert collect(fleet, config, data_dir).code == 0
    fleet.advance(1800)
    fleet.routers["main"].booted_at -= 10**8  # the router's uptime leaps forward: not a reboot
    fleet.transfer("main", "02:00:00:00:06:01", 5, 6, wan_router="main")
    assert collect(fleet, config, data_dir).code == 0
    fleet.advance(1800)
    fleet.routers["main"].booted_at += 10**8 + 1700  # and back below its old value: a reboot
    result = collect(fleet, config, data_dir)
    assert "main: rebooted" in result.stderr
    conn = sqlite3.connect(data_dir / "network_stats.db")
    negatives = conn.execute("SELECT count(*) FROM usage_day WHERE rx_bytes < 0 OR tx_bytes < 0").fetchone()
    periods = [r[0] for r in conn.execute("SELECT DISTINCT period FROM usage_period")]
    conn.close()
    assert negatives == (0,)
    assert periods == ["2026-11"]


HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "\"quoted' & <b>bold</b>",
    "bell\x07esc\x1b[31mred",
    "\u202eevil\u202c-rtl",
    "x" * 10_000,
]


def test_hostile_strings_survive_collector_database_and_report(fleet, data_dir, tmp_path):
    router_name = "<script>alert('r')</script>\u202e"
    fleet.add_router(router_name)
    for i, name in enumerate(HOSTILE):
        fleet.join(router_name, f"02:00:00:00:07:{i:02x}", hostname=name)
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    assert collect(fleet, config, data_dir).code == 0
    fleet.advance(1800)
    for i in range(len(HOSTILE)):
        fleet.transfer(router_name, f"02:00:00:00:07:{i:02x}", 1000 * (i + 1), 10**6 * (i + 1))
    result = collect(fleet, config, data_dir)
    assert result.code == 0, result.stderr
    conn = sqlite3.connect(data_dir / "dhcp_leases.db")
    stored = dict(conn.execute("SELECT mac_address, hostname FROM dhcp_leases"))
    conn.close()
    assert [stored[f"02:00:00:00:07:{i:02x}"] for i in range(len(HOSTILE))] == HOSTILE
    conn = sqlite3.connect(data_dir / "network_stats.db")
    assert {r[0] for r in conn.execute("SELECT router FROM usage_period")} == {router_name}
    conn.close()

    as_json = run_cli("report", "--json", "--data-dir", str(data_dir), now=fleet.now)
    assert as_json.code == 0
    names = {c["mac"]: c["hostname"] for c in json.loads(as_json.stdout)["clients"]}
    assert [names[f"02:00:00:00:07:{i:02x}"] for i in range(len(HOSTILE))] == HOSTILE

    table = run_cli("report", "--data-dir", str(data_dir), now=fleet.now)
    assert table.code == 0
    assert "\x1b" not in table.stdout and "\x07" not in table.stdout and "\u202e" not in table.stdout
    assert "bell\\x07esc\\x1b[31mred" in table.stdout and "\\u202eevil" in table.stdout
    assert "<img src=x onerror=alert(1)>" in table.stdout
    assert max(len(line) for line in table.stdout.splitlines()) < 200  # the 10 kB name is clipped
