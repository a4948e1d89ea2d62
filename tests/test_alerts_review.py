"""Alerts against what the adversarial review tried: a notify file with a line twice, fixed,
missing or appearing later; a run interrupted or killed while sending; a planted module in
the directory the run starts from; routers that invent MACs, join late or leave the
configuration; a period that holds the Go daemon's totals. Real routers on 127.0.0.1, the
real CLI, a real webhook receiver."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from receivers import alert_config, caught_sending, run_later, webhook_server
from support import collect, invoke, stored_usage, truth_of, write_config

from api.app import create_app

GIB = 1024**3
A = "02:00:00:00:bb:01"
B = "02:00:00:00:bb:02"


def _titles(hook) -> list[str]:
    return [p["title"] for p in hook.posts]


def test_a_url_given_twice_is_sent_once_and_never_stops_the_counting(fleet, tmp_path, data_dir):
    fleet.add_router("main")
    fleet.join("main", A)
    with webhook_server() as hook:
        config = alert_config(fleet, tmp_path, [hook.url(), hook.url()])
        first = collect(fleet, config, data_dir)
        assert first.code == 0 and "line 3: the same URL as an earlier line; skipped" in first.stderr
        fleet.transfer("main", A, 0, int(0.9 * GIB), wan_router="main")
        assert run_later(fleet, config, data_dir).code == 0
        assert _titles(hook) == ["netstat-collect: WAN at 80% of the monthly cap"]
    assert stored_usage(data_dir) == truth_of(fleet)


@pytest.mark.slow
def test_a_url_fixed_in_place_gets_the_alert_it_missed(fleet, tmp_path, data_dir):
    fleet.add_router("main")
    fleet.join("main", A)
    with webhook_server() as hook:
        config = alert_config(fleet, tmp_path, ["json://127.0.0.1:9/typo"], alerts={"deadline_seconds": 3})
        assert collect(fleet, config, data_dir).code == 0
        fleet.transfer("main", A, 0, int(0.85 * GIB), wan_router="main")
        assert "notify json #1: FAILED" in run_later(fleet, config, data_dir).stderr
        (tmp_path / "notify.urls").write_text(hook.url() + "\n")  # the port fixed
        assert "notify json #1: sent" in run_later(fleet, config, data_dir).stderr
        run_later(fleet, config, data_dir)
        assert _titles(hook) == ["netstat-collect: WAN at 80% of the monthly cap"]


def test_a_missing_notify_file_counts_on_and_its_alerts_go_out_once_it_is_back(fleet, tmp_path, data_dir):
    fleet.add_router("main")
    fleet.join("main", A)
    with webhook_server() as hook:
        config = alert_config(fleet, tmp_path, [hook.url()])
        (tmp_path / "notify.urls").rename(tmp_path / "moved.urls")
        first = collect(fleet, config, data_dir)
        assert first.code == 0
        assert "alerts.notify_file: cannot read" in first.stderr and "alerts are recorded but not sent" \
            in first.stderr
        fleet.transfer("main", A, 0, int(0.85 * GIB), wan_router="main")
        assert run_later(fleet, config, data_dir).code == 0
        assert stored_usage(data_dir) == truth_of(fleet) and hook.attempts == 0
        check = invoke("check-config", "--config", str(config))
        assert check.code == 1 and "notify file" in check.stdout and "PROBLEM: cannot read" in check.stdout
        assert invoke("notify-test", "--config", str(config)).code == 2
        (tmp_path / "moved.urls").rename(tmp_path / "notify.urls")
        assert run_later(fleet, config, data_dir).code == 0
        # A target appearing within the retry window owes the alerts of that window.
        assert _titles(hook) == ["netstat-collect: WAN at 80% of the monthly cap"]
        run_later(fleet, config, data_dir)
        assert len(hook.posts) == 1


@pytest.mark.slow
@pytest.mark.parametrize("above", [False, True])
def test_a_target_added_later_gets_new_alerts_and_no_one_gets_an_old_one_twice(
        fleet, tmp_path, data_dir, above):
    """Targets are only labels (`json #1`): a line added above renumbers the ones after it.
    An alert once owed to some target is owed to no other, so nothing is sent twice."""
    fleet.add_router("main")
    fleet.join("main", A)
    with webhook_server() as first, webhook_server() as second:
        config = alert_config(fleet, tmp_path, [first.url()])
        assert collect(fleet, config, data_dir).code == 0
        fleet.transfer("main", A, 0, int(0.85 * GIB), wan_router="main")
        run_later(fleet, config, data_dir)
        lines = [second.url(), first.url()] if above else [first.url(), second.url()]
        (tmp_path / "notify.urls").write_text("\n".join(lines) + "\n")
        run_later(fleet, config, data_dir)
        run_later(fleet, config, data_dir)
        assert _titles(first) == ["netstat-collect: WAN at 80% of the monthly cap"]
        assert _titles(second) == []
        fleet.transfer("main", A, 0, int(0.2 * GIB), wan_router="main")
        run_later(fleet, config, data_dir)
        assert _titles(first)[1:] == _titles(second) == ["netstat-collect: WAN at 100% of the monthly cap"]


@pytest.mark.slow
def test_a_module_planted_where_the_run_starts_is_not_run_by_the_sender(fleet, tmp_path, data_dir):
    """The sending process imports this installation's collector, not one in the directory
    the run was started from (python -c and -m put that directory first on the path)."""
    script = Path(sys.executable).with_name("netstat-collect")
    if not script.exists():
        pytest.skip(f"no console script beside {sys.executable}: the project is not installed there")
    planted = tmp_path / "planted"
    (planted / "collector").mkdir(parents=True)
    marker = tmp_path / "planted-ran"
    (planted / "collector" / "__init__.py").write_text("")
    (planted / "collector" / "notify.py").write_text(
        f"import os, sys\nopen({str(marker)!r}, 'w').write(sys.stdin.read())\n")
    fleet.add_router("main")
    with webhook_server() as hook:
        config = alert_config(fleet, tmp_path, [hook.url("user:hunter2-secret@x")])
        env = {k: v for k, v in os.environ.items() if not k.startswith("NETSTAT_")}
        env["TZ"] = "UTC"
        proc = subprocess.run([str(script), "notify-test", "--config", str(config)], cwd=planted,
                              env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert not marker.exists()
        assert _titles(hook) == ["netstat-collect: test message"]


def _senders_of(pid: int) -> list[int]:
    """Sending processes started by the run `pid` (their command line names it)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"collector.notify import _child" in a for a in argv) and str(pid).encode() in argv:
            found.append(int(entry))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_a_run_interrupted_while_sending_leaves_no_sender_behind(fleet, tmp_path, data_dir, how):
    with webhook_server() as hook:
        _, run = caught_sending(fleet, tmp_path, data_dir, hook, A, hang_seconds=20)
        assert _senders_of(run.pid)
        run.send_signal(how)
        run.wait(timeout=30)
        run.stderr.close()
        gone_by = time.monotonic() + 5
        while _senders_of(run.pid) and time.monotonic() < gone_by:
            time.sleep(0.05)
        assert _senders_of(run.pid) == []
        assert stored_usage(data_dir) == truth_of(fleet)  # committed before the sending began


@pytest.mark.slow
def test_a_sender_that_cannot_be_started_is_a_note_and_the_run_stands(fleet, tmp_path, data_dir,
                                                                      monkeypatch):
    """The interpreter gone after an upgrade (or no memory to fork): the run is committed."""
    fleet.add_router("main")
    fleet.join("main", A)
    with webhook_server() as hook:
        config = alert_config(fleet, tmp_path, [hook.url()])
        assert collect(fleet, config, data_dir).code == 0
        fleet.transfer("main", A, 0, GIB, wan_router="main")
        monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
        result = run_later(fleet, config, data_dir)
        assert result.code == 0
        assert "note: alerts not delivered this run: FileNotFoundError" in result.stderr
        monkeypatch.undo()
        run_later(fleet, config, data_dir)
        assert _titles(hook) == ["netstat-collect: 2 alerts"]
    assert stored_usage(data_dir) == truth_of(fleet)


@pytest.mark.slow
def test_a_router_inventing_macs_raises_one_alert_not_thousands(fleet, tmp_path, data_dir):
    fleet.add_router("main")
    fleet.join("main", A)
    with webhook_server() as hook:
        config = alert_config(fleet, tmp_path, [hook.url()], cap_gib=None, alerts={"new_device": True})
        assert collect(fleet, config, data_dir).code == 0
        for i in range(300):
            fleet.join("main", f"02:00:00:01:{i // 256:02x}:{i % 256:02x}", hostname=f"fake{i}")
        result = run_later(fleet, config, data_dir)
        assert result.stderr.count("alert raised") == 1
        assert _titles(hook) == ["netstat-collect: 300 new devices"]
        assert len(hook.posts[0]["message"]) < 2000


@pytest.mark.slow
def test_a_router_added_later_brings_its_devices_quietly(fleet, tmp_path, data_dir):
    fleet.add_router("main")
    fleet.add_router("attic", wan=False, dhcp=False)
    fleet.join("main", A)
    for i in range(5):
        fleet.join("attic", f"02:00:00:02:00:{i:02x}")
    with webhook_server() as hook:
        config = alert_config(fleet, tmp_path, [hook.url()], cap_gib=None, alerts={"new_device": True})
        only_main = __import__("json").loads(config.read_text())
        del only_main["routers"]["attic"]
        main_config = write_config(tmp_path / "main-only.json", only_main)
        assert collect(fleet, main_config, data_dir).code == 0
        assert run_later(fleet, config, data_dir).code == 0  # attic's first answer: 5 devices, learnt
        assert hook.posts == []
        fleet.join("attic", B)
        assert run_later(fleet, config, data_dir).code == 0
        assert _titles(hook) == [f"netstat-collect: new device {B}"]


@pytest.mark.slow
def test_an_outage_before_a_router_left_the_configuration_is_not_carried_over(fleet, tmp_path, data_dir):
    fleet.add_router("main")
    fleet.add_router("attic", wan=False, dhcp=False)
    with webhook_server() as hook:
        config = alert_config(fleet, tmp_path, [hook.url()], cap_gib=None, alerts={"router_down_minutes": 60})
        only_main = __import__("json").loads(config.read_text())
        del only_main["routers"]["attic"]
        main_config = write_config(tmp_path / "main-only.json", only_main)
        assert collect(fleet, config, data_dir).code == 0
        fleet.set_fault("attic", "down")
        assert run_later(fleet, config, data_dir).code == 1  # attic fails once, then leaves the config
        for _ in range(3):
            run_later(fleet, main_config, data_dir, advance=86400)
        assert run_later(fleet, config, data_dir).code == 1  # back, still down: a new outage
        assert hook.posts == []
        run_later(fleet, config, data_dir)
        run_later(fleet, config, data_dir)
        assert _titles(hook) == ["netstat-collect: router attic ap_stats failing"]
        assert "failing for 60 min" in hook.posts[0]["message"]


@pytest.mark.slow
def test_the_forecast_of_a_period_with_the_go_daemons_totals_is_measured_from_its_start(
        fleet, tmp_path, data_dir):
    """Upgraded on 15 Nov with 10 GiB already counted by the old daemon, then 0.5 GiB a day: the
    pace is 10 GiB over 14.5 days plus what came since, not 10 GiB over the days since."""
    data_dir.mkdir()
    stats = sqlite3.connect(data_dir / "network_stats.db")
    stats.executescript(f"""
        CREATE TABLE cumulative_stats (id TEXT PRIMARY KEY, rx_bytes INTEGER, tx_bytes INTEGER);
        CREATE TABLE monthly_stats (id TEXT PRIMARY KEY, rx_bytes INTEGER, tx_bytes INTEGER, timestamp TEXT);
        INSERT INTO monthly_stats VALUES ('main_wan', {10 * GIB}, 0, '2026-11-15 11:30:00');
    """)
    stats.close()
    sqlite3.connect(data_dir / "dhcp_leases.db").close()
    fleet.add_router("main")
    fleet.join("main", A)
    config = write_config(tmp_path / "routers.json",
                          fleet.config({"timezone": "UTC", "monthly_cap_gib": 30}))
    assert collect(fleet, config, data_dir).code == 0  # 15 Nov 12:00
    for _ in range(4):
        fleet.transfer("main", A, 0, GIB // 2, wan_router="main")
        run_later(fleet, config, data_dir, advance=86400)
    client = create_app({"DATA_DIR": str(data_dir), "NOW": fleet.now}).test_client()
    wan = client.get("/api/v1/usage").get_json()["wan"]
    used = 12 * GIB
    measured = 18.5 * 86400  # from 1 Nov 00:00 to 19 Nov 12:00
    assert wan["forecast_bytes"] == used + round(used / measured * (11.5 * 86400))
    assert wan["forecast_bytes"] < 30 * GIB


@pytest.mark.slow
def test_a_hostname_is_no_link_or_markup_where_a_service_reads_markdown_or_html(fleet, tmp_path, data_dir):
    """Messages are plain text; Apprise escapes them for a service that reads Markdown
    (Slack, Discord, ...) or HTML (e-mail as HTML): a DHCP hostname cannot become a link."""
    fleet.add_router("main")
    fleet.join("main", A)
    with webhook_server() as hook:
        config = alert_config(fleet, tmp_path, [hook.url("md?format=markdown"), hook.url("html?format=html")],
                        cap_gib=None, alerts={"new_device": True})
        assert collect(fleet, config, data_dir).code == 0
        fleet.join("main", B, hostname="[Pay now](https://evil.example/)<b>x</b>")
        assert run_later(fleet, config, data_dir).code == 0
        messages = sorted((p["message"] for p in hook.posts), key=lambda m: "&" in m)
        markdown, html = messages
        assert "\\[Pay now\\]\\(https://evil\\.example/\\)" in markdown
        assert "[Pay now](" not in markdown
        assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>" not in html


@pytest.mark.slow
def test_an_upgrade_from_schema_2_mid_period_forecasts_over_the_whole_period(fleet, tmp_path, data_dir):
    """2 GiB a day since 15 Nov, upgraded on 21 Nov: on 24 Nov the period holds 18 GiB and ends
    near 31 GiB at that pace, under a 40 GiB cap: no forecast alert (the re-review's case)."""
    fleet.add_router("main")
    fleet.join("main", A)
    with webhook_server() as hook:
        config = alert_config(fleet, tmp_path, [hook.url()], cap_gib=40)
        assert collect(fleet, config, data_dir).code == 0  # 15 Nov 12:00
        for _ in range(6):
            fleet.transfer("main", A, 0, 2 * GIB, wan_router="main")
            assert run_later(fleet, config, data_dir, advance=86400).code == 0
        for name in ("network_stats.db", "dhcp_leases.db"):  # back to schema 2
            conn = sqlite3.connect(data_dir / name)
            if name == "network_stats.db":
                for table in ("devices", "known_devices", "alert_deliveries", "alerts"):
                    conn.execute(f"DROP TABLE {table}")
                conn.execute("ALTER TABLE router_endpoints DROP COLUMN failing_since")
                conn.execute("ALTER TABLE periods DROP COLUMN counted_from")
            conn.execute("PRAGMA user_version = 2")
            conn.commit()
            conn.close()
        for _ in range(3):
            fleet.transfer("main", A, 0, 2 * GIB, wan_router="main")
            assert run_later(fleet, config, data_dir, advance=86400).code == 0
        assert hook.posts == []
        client = create_app({"DATA_DIR": str(data_dir), "NOW": fleet.now}).test_client()
        wan = client.get("/api/v1/usage").get_json()["wan"]
        start = fleet.now - 9 * 86400  # the first run, 15 Nov 12:00: nothing before it
        used = 18 * GIB
        left = datetime(2026, 12, 1, tzinfo=timezone.utc).timestamp() - fleet.now
        assert wan["forecast_bytes"] == used + round(used / (fleet.now - start) * left)


W = "02:00:00:00:cc:01"  # a wired printer: a DHCP lease, never a station


@pytest.mark.slow
def test_new_device_switched_on_while_leases_fail_does_not_announce_old_wired_devices(
        fleet, tmp_path, data_dir):
    fleet.add_router("main")
    fleet.join("main", A)
    fleet.join("main", W, hostname="printer")
    fleet.leave("main", W)
    plain = write_config(tmp_path / "plain.json", fleet.config({"timezone": "UTC"}))
    assert collect(fleet, plain, data_dir).code == 0  # the leases answered: the printer was there
    run_later(fleet, plain, data_dir)
    with webhook_server() as hook:
        config = alert_config(fleet, tmp_path, [hook.url()], cap_gib=None, alerts={"new_device": True})
        fleet.set_fault("main", "http500", ["dhcp_leases"])
        run_later(fleet, config, data_dir)  # the first run that looks: the leases fail this once
        fleet.set_fault("main", "ok")
        run_later(fleet, config, data_dir)
        assert hook.posts == []
        fleet.join("main", B, hostname="new-phone")
        run_later(fleet, config, data_dir)
        assert _titles(hook) == [f"netstat-collect: new device {B}"]
