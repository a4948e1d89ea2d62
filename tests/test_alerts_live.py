"""Alerts end to end: simulated routers on 127.0.0.1, the real run-once, Apprise delivering to
a real SMTP server (aiosmtpd) and a real HTTP webhook receiver on 127.0.0.1.

Each alert must arrive once per period, subject and threshold; a receiver that is down,
hangs or refuses changes no byte of accounting, and gets the alert on a later run, once.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from receivers import alert_config, caught_sending, run_later, smtp_server, webhook_server
from support import (
    collect,
    invoke,
    run_once_measured,
    stored_usage,
    truth_of,
    write_config,
)

from api.app import create_app

GIB = 1024**3
A = "02:00:00:00:aa:01"
B = "02:00:00:00:aa:02"
C = "02:00:00:00:aa:03"
D = "02:00:00:00:aa:04"
HOSTILE = "<img src=x onerror=alert(1)>\x1b[31m\u202e" + "x" * 300


def _ledger(data_dir: Path) -> list[tuple]:
    conn = sqlite3.connect(f"file:{data_dir / 'network_stats.db'}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT a.kind, a.subject, a.threshold, d.target, d.sent_at IS NOT NULL, d.attempts "
            "FROM alerts a LEFT JOIN alert_deliveries d ON d.alert = a.id ORDER BY a.id, d.target"
        ).fetchall()
    finally:
        conn.close()


def test_three_lines_of_configuration_mail_the_80_percent_alert_once(fleet, tmp_path, data_dir):
    fleet.add_router("main")
    fleet.join("main", A, hostname="laptop")
    with smtp_server() as mailbox:
        # The user's three lines: the cap, alerts.notify_file, and the URL in that file.
        config = alert_config(fleet, tmp_path, [mailbox.url()], cap_gib=1.0,
                        public_url="https://stats.example.net/")
        assert collect(fleet, config, data_dir).code == 0  # first contact: baselines
        fleet.transfer("main", A, 0, int(0.5 * GIB), wan_router="main")
        assert run_later(fleet, config, data_dir).code == 0
        assert mailbox.messages == []  # 50 %: nothing to say
        fleet.transfer("main", A, 0, int(0.31 * GIB), wan_router="main")
        result = run_later(fleet, config, data_dir)
        assert result.code == 0
        assert "notify mailto #1: sent" in result.stderr
        assert mailbox.subjects() == ["netstat-collect: WAN at 80% of the monthly cap"]
        body = mailbox.bodies()[0]
        used = truth_of(fleet)["main_wan"]
        assert sum(used) == int(0.5 * GIB) + int(0.31 * GIB)
        assert f"({100 * sum(used) / GIB:.1f}%)" in body and "billing period 2026-11" in body
        assert "Dashboard: https://stats.example.net/" in body
        assert mailbox.messages[0].get_content_type() == "text/plain"
        for _ in range(3):  # later runs, still above 80 %: not again
            fleet.transfer("main", A, 0, 1000, wan_router="main")
            assert run_later(fleet, config, data_dir).code == 0
        assert len(mailbox.messages) == 1
        fleet.transfer("main", A, 0, int(0.2 * GIB), wan_router="main")
        assert run_later(fleet, config, data_dir).code == 0
        assert mailbox.subjects()[1:] == ["netstat-collect: WAN at 100% of the monthly cap"]
        assert run_later(fleet, config, data_dir).code == 0
        assert len(mailbox.messages) == 2
        # A new period: the thresholds count again.
        fleet.advance(16 * 86400)
        fleet.transfer("main", A, 0, int(0.9 * GIB), wan_router="main")
        assert run_later(fleet, config, data_dir).code == 0
        assert len(mailbox.messages) == 2 + 1
        assert "billing period 2026-12" in mailbox.bodies()[2]
    assert stored_usage(data_dir) == truth_of(fleet)


@pytest.mark.slow
def test_a_target_down_hanging_or_refusing_changes_no_byte_and_gets_the_alert_later_once(
        fleet, tmp_path, data_dir):
    fleet.add_router("main")
    fleet.join("main", A)
    with smtp_server() as mailbox, webhook_server() as hook:
        # json #2 is a port nothing listens on: down all along.
        config = alert_config(fleet, tmp_path, [hook.url(), "json://127.0.0.1:9/down", mailbox.url()],
                        alerts={"deadline_seconds": 2})
        assert collect(fleet, config, data_dir).code == 0
        hook.mode = "hang"
        fleet.transfer("main", A, 7, int(0.85 * GIB), wan_router="main")
        started = time.monotonic()
        result = run_later(fleet, config, data_dir)
        took = time.monotonic() - started
        assert result.code == 0, result.stderr  # delivery never changes the exit code
        assert "notify json #1: FAILED (no answer within 2s); retried next run" in result.stderr
        assert "notify json #2: FAILED" in result.stderr and "notify mailto #3: sent" in result.stderr
        assert took < 2 + 10  # the hang costs the deadline, not the receiver's whole hang
        assert hook.posts == [] and hook.attempts == 1 and len(mailbox.messages) == 1
        assert stored_usage(data_dir) == truth_of(fleet)  # committed before any delivery

        hook.mode = "refuse"
        result = run_later(fleet, config, data_dir)
        assert "notify json #1: FAILED" in result.stderr and "mailto" not in result.stderr
        assert hook.posts == [] and hook.attempts == 2 and len(mailbox.messages) == 1

        hook.mode = "ok"
        result = run_later(fleet, config, data_dir)
        assert "notify json #1: sent" in result.stderr
        assert [p["title"] for p in hook.posts] == ["netstat-collect: WAN at 80% of the monthly cap"]
        for _ in range(2):
            result = run_later(fleet, config, data_dir)
            assert "notify json #1" not in result.stderr  # never twice
        assert len(hook.posts) == 1 and len(mailbox.messages) == 1
        assert stored_usage(data_dir) == truth_of(fleet)
        # json #2 never got it; the ledger says so, with the attempts.
        deliveries = {row[3]: row[4:] for row in _ledger(data_dir)}
        assert deliveries["json #1"] == (1, 3) and deliveries["mailto #3"] == (1, 1)
        assert deliveries["json #2"][0] == 0 and deliveries["json #2"][1] == 5

    # The API says the same, for whoever wonders why a message did not come.
    client = create_app({"DATA_DIR": str(data_dir), "NOW": fleet.now}).test_client()
    answer = client.get("/api/v1/alerts").get_json()
    assert [(a["kind"], a["threshold"]) for a in answer["alerts"]] == [("cap", "80")]
    shown = {d["target"]: d for d in answer["alerts"][0]["deliveries"]}
    assert (shown["json #1"]["status"], shown["json #1"]["attempts"]) == ("sent", 3)
    assert (shown["json #2"]["status"], shown["json #2"]["attempts"]) == ("pending", 5)
    assert "Connection error" in shown["json #2"]["last_error"]
    assert {t["target"]: (t["sent"], t["pending"], t["given_up"]) for t in answer["targets"]} == {
        "json #1": (1, 0, 0), "json #2": (0, 1, 0), "mailto #3": (1, 0, 0)}
    later = create_app({"DATA_DIR": str(data_dir), "NOW": fleet.now + 4 * 86400}).test_client()
    deliveries = later.get("/api/v1/alerts").get_json()["alerts"][0]["deliveries"]
    shown = {d["target"]: d["status"] for d in deliveries}
    assert shown == {"json #1": "sent", "json #2": "given_up", "mailto #3": "sent"}
    assert client.get("/api/v1/alerts?limit=0").status_code == 400
    # And /metrics, for a Prometheus rule on notifications that keep failing.
    from prometheus_client.parser import text_string_to_metric_families

    metrics = client.get("/metrics").get_data(as_text=True)
    counts = {(m.labels["target"], m.labels["status"]): m.value
              for family in text_string_to_metric_families(metrics)
              if family.name == "netstat_alert_deliveries" for m in family.samples}
    assert counts == {("json #1", "sent"): 1, ("json #1", "pending"): 0, ("json #1", "given_up"): 0,
                      ("json #2", "sent"): 0, ("json #2", "pending"): 1, ("json #2", "given_up"): 0,
                      ("mailto #3", "sent"): 1, ("mailto #3", "pending"): 0, ("mailto #3", "given_up"): 0}
    later_metrics = later.get("/metrics").get_data(as_text=True)
    given_up = {m.labels["target"]: m.value for family in text_string_to_metric_families(later_metrics)
                if family.name == "netstat_alert_deliveries" for m in family.samples
                if m.labels["status"] == "given_up"}
    assert given_up == {"json #1": 0, "json #2": 1, "mailto #3": 0}


@pytest.mark.slow
def test_the_forecast_fires_when_the_pace_says_so_and_not_before_three_days(fleet, tmp_path, data_dir):
    fleet.add_router("main")
    fleet.join("main", A)
    with webhook_server() as hook:
        config = alert_config(fleet, tmp_path, [hook.url()], cap_gib=20.0)
        assert collect(fleet, config, data_dir).code == 0  # 15 Nov 12:00: the pace starts here
        titles = []
        for _ in range(4):
            fleet.transfer("main", A, 0, GIB, wan_router="main")
            run_later(fleet, config, data_dir, advance=86400)
            titles.append([p["title"] for p in hook.posts])
        # 1 GiB a day from 15 Nov 12:00 to 1 Dec: 3 GiB by day 3, 3 + 12.5 = 15.5 GiB at the
        # end, below the 20 GiB cap: no forecast, however long it is watched.
        assert titles[-1] == []
        fleet.transfer("main", A, 0, 3 * GIB, wan_router="main")
        run_later(fleet, config, data_dir, advance=86400)
        # 5 days, 7 GiB: 7 + 7/5 * 10.5 = 21.7 GiB, above the cap.
        assert [p["title"] for p in hook.posts] == [
            "netstat-collect: the WAN is on course to pass the monthly cap"]
        message = hook.posts[0]["message"]
        assert "At this pace the period ends at 21.70 GiB, above the 20.00 GiB cap" in message
        assert "at the pace of the last 5.0 days (1.40 GiB a day)" in message
        fleet.transfer("main", A, 0, GIB, wan_router="main")
        run_later(fleet, config, data_dir, advance=86400)
        assert len(hook.posts) == 1


@pytest.mark.slow
def test_an_early_burst_gives_no_forecast_until_three_days_are_measured(fleet, tmp_path, data_dir):
    fleet.add_router("main")
    fleet.join("main", A)
    with webhook_server() as hook:
        config = alert_config(fleet, tmp_path, [hook.url()], cap_gib=20.0,
                        alerts={"thresholds_percent": [100]})
        assert collect(fleet, config, data_dir).code == 0
        fleet.transfer("main", A, 0, 5 * GIB, wan_router="main")
        run_later(fleet, config, data_dir, advance=86400)  # 5 GiB in one day: 80 GiB at this pace
        result = invoke("run-once", "--config", str(config), "--data-dir", str(data_dir), "--dry-run",
                        now=fleet.now + 1)
        assert "alert would raise" not in result.stderr
        run_later(fleet, config, data_dir, advance=86400)
        assert hook.posts == []
        run_later(fleet, config, data_dir, advance=86400)  # day 3: now it may say so
        assert [p["title"] for p in hook.posts] == [
            "netstat-collect: the WAN is on course to pass the monthly cap"]


def test_dry_run_says_which_alerts_would_fire_and_sends_nothing(fleet, tmp_path, data_dir):
    fleet.add_router("main")
    fleet.join("main", A)
    with webhook_server() as hook:
        config = alert_config(fleet, tmp_path, [hook.url()])
        assert collect(fleet, config, data_dir).code == 0
        fleet.transfer("main", A, 0, GIB, wan_router="main")
        fleet.advance(1800)
        before = _ledger(data_dir)
        result = invoke("run-once", "--config", str(config), "--data-dir", str(data_dir), "--dry-run",
                        now=fleet.now)
        assert result.code == 0
        assert "alert would raise: netstat-collect: WAN at 80% of the monthly cap" in result.stderr
        assert "alert would raise: netstat-collect: WAN at 100% of the monthly cap" in result.stderr
        assert hook.attempts == 0 and _ledger(data_dir) == before == []
        result = collect(fleet, config, data_dir)
        assert result.stderr.count("alert raised:") == 2
        # Both thresholds crossed in one run: one message saying both.
        assert [p["title"] for p in hook.posts] == ["netstat-collect: 2 alerts"]
        assert "80%" in hook.posts[0]["message"] and "100%" in hook.posts[0]["message"]


def test_a_new_device_fires_once_and_its_hostile_name_stays_inert(fleet, tmp_path, data_dir):
    fleet.add_router("main")
    fleet.join("main", A, hostname="laptop")
    with smtp_server() as mailbox, webhook_server() as hook:
        config = alert_config(fleet, tmp_path, [hook.url(), mailbox.url()], cap_gib=None,
                        alerts={"new_device": True},
                        devices={B: {"name": "<script>alert(2)</script>\x07\u2028owner's"}})
        assert collect(fleet, config, data_dir).code == 0
        assert run_later(fleet, config, data_dir).code == 0
        assert hook.posts == []  # the devices there when it started looking are not "new"
        fleet.join("main", B, hostname=HOSTILE[:60], ip="10.0.0.99")
        assert run_later(fleet, config, data_dir).code == 0
        assert [p["title"] for p in hook.posts] == [f"netstat-collect: new device {B}"]
        message = hook.posts[0]["message"]
        assert "\x1b" not in message and "\u202e" not in message
        assert "\\x1b[31m" in message and "\\u202e" in message and "IP 10.0.0.99" in message
        assert "<script>alert(2)</script>\\x07\\u2028owner's" in message  # the configured name
        assert "\x07" not in message and "\u2028" not in message
        mail = mailbox.messages[0]
        assert mail.get_content_type() == "text/plain"
        assert not any(ch in mail.get_content() for ch in "\x1b\x07\u2028\u202e")
        assert "\n" not in str(mail["Subject"])
        for _ in range(2):
            fleet.transfer("main", B, 10, 10)
            assert run_later(fleet, config, data_dir).code == 0
        assert len(hook.posts) == 1 and len(mailbox.messages) == 1
        # Switched off, a device joins; switched on again, it is learnt, not announced.
        without = json.loads(config.read_text())
        del without["alerts"]
        plain = write_config(tmp_path / "plain.json", without)
        fleet.join("main", C)
        assert run_later(fleet, plain, data_dir).code == 0
        assert run_later(fleet, config, data_dir).code == 0
        fleet.join("main", D)
        assert run_later(fleet, config, data_dir).code == 0
        assert [p["title"] for p in hook.posts][1:] == [f"netstat-collect: new device {D}"]


@pytest.mark.slow
def test_a_router_down_longer_than_the_limit_fires_once_and_recovers_once(fleet, tmp_path, data_dir):
    fleet.add_router("main")
    fleet.add_router("attic", wan=False, dhcp=False)
    fleet.join("attic", A)
    with webhook_server() as hook:
        config = alert_config(fleet, tmp_path, [hook.url()], cap_gib=None,
                        alerts={"router_down_minutes": 60})
        assert collect(fleet, config, data_dir).code == 0
        fleet.set_fault("attic", "down")
        codes = [run_later(fleet, config, data_dir).code for _ in range(2)]  # 0 and 30 min down
        assert codes == [1, 1] and hook.posts == []
        assert run_later(fleet, config, data_dir).code == 1  # 60 min
        assert [p["title"] for p in hook.posts] == ["netstat-collect: router attic ap_stats failing"]
        assert "failing for 60 min, since 2026-11-15 12:30 UTC" in hook.posts[0]["message"]
        for _ in range(2):
            assert run_later(fleet, config, data_dir).code == 1
        assert len(hook.posts) == 1
        fleet.set_fault("attic", "ok")
        fleet.transfer("attic", A, 5, 5)
        assert run_later(fleet, config, data_dir).code == 0
        assert [p["title"] for p in hook.posts][1:] == [
            "netstat-collect: router attic ap_stats answers again"]
        assert "after 2 h 30 min of failing (since 2026-11-15 12:30 UTC)" in hook.posts[1]["message"]
        assert run_later(fleet, config, data_dir).code == 0
        assert len(hook.posts) == 2
        # A short hiccup, under the limit: neither down nor recovered is told.
        fleet.set_fault("attic", "down")
        run_later(fleet, config, data_dir)
        fleet.set_fault("attic", "ok")
        run_later(fleet, config, data_dir)
        assert len(hook.posts) == 2
    assert stored_usage(data_dir)[A] == truth_of(fleet)[A]


@pytest.mark.slow
def test_device_and_owner_limits_count_the_owners_devices_together(fleet, tmp_path, data_dir):
    fleet.add_router("main")
    fleet.join("main", A)
    fleet.join("main", B)
    with webhook_server() as hook:
        config = alert_config(fleet, tmp_path, [hook.url()], cap_gib=None,
                        devices={A: {"name": "Kid's phone", "owner": "Kids"},
                                 B.upper(): {"name": "Kid's tablet", "owner": "Kids"}},
                        alerts={"thresholds_percent": [100], "owner_limits_gib": {"Kids": 1},
                                "device_limits_gib": {A: 0.75}})
        assert collect(fleet, config, data_dir).code == 0
        fleet.transfer("main", A, 0, int(0.6 * GIB))
        fleet.transfer("main", B, 0, int(0.3 * GIB))
        run_later(fleet, config, data_dir)
        assert hook.posts == []  # 0.9 GiB of the owner's 1 GiB, 0.6 of the phone's 0.75
        fleet.transfer("main", B, 0, int(0.2 * GIB))
        run_later(fleet, config, data_dir)
        assert [p["title"] for p in hook.posts] == [
            "netstat-collect: owner Kids at 100% of its monthly limit"]
        fleet.transfer("main", A, 0, int(0.2 * GIB))
        run_later(fleet, config, data_dir)
        assert [p["title"] for p in hook.posts][1:] == [
            f"netstat-collect: Kid's phone ({A}) at 100% of its monthly limit"]


def test_notify_test_sends_one_message_to_each_target_and_says_which_failed(fleet, tmp_path):
    fleet.add_router("main")
    with smtp_server() as mailbox, webhook_server() as hook:
        secret = "s3cr3t-token-4711"
        config = alert_config(fleet, tmp_path, [mailbox.url(), hook.url(secret), f"json://127.0.0.1:9/{secret}"])
        result = invoke("notify-test", "--config", str(config))
        assert result.code == 1
        lines = result.stdout.splitlines()
        assert lines[:2] == ["mailto #1: sent", "json #2: sent"]
        assert lines[2].startswith("json #3: FAILED (")
        assert lines[3] == "2 target(s) took the message, 1 failed"
        assert secret not in result.stdout + result.stderr
        assert mailbox.subjects() == ["netstat-collect: test message"]
        assert [p["title"] for p in hook.posts] == ["netstat-collect: test message"]
    assert not (tmp_path / "data").exists()  # writes nothing


def test_notify_test_without_targets_is_a_usage_error(fleet, tmp_path):
    fleet.add_router("main")
    config = write_config(tmp_path / "routers.json", fleet.config())
    result = invoke("notify-test", "--config", str(config))
    assert result.code == 2 and "alerts.notify_file: no notification target" in result.stderr


def test_check_config_validates_every_target_without_sending_and_hides_secrets(fleet, tmp_path):
    fleet.add_router("main")
    secret = "hunter2hunter2"
    with webhook_server() as hook:
        config = alert_config(fleet, tmp_path, [hook.url(), f"nosuchservice://user:{secret}@example.com/x"])
        (tmp_path / "notify.urls").chmod(0o644)
        result = invoke("check-config", "--config", str(config))
        assert hook.attempts == 0
    assert result.code == 1
    assert "notify json #1: OK (valid, nothing sent)" in result.stdout
    assert "notify nosuchservice #2: PROBLEM: not a URL Apprise understands" in result.stdout
    assert "1 notification target(s) OK, 1 with problems" in result.stdout
    assert "notify.urls is readable by every user of this machine: chmod o-r" in result.stderr
    assert secret not in result.stdout + result.stderr


@pytest.mark.slow
def test_a_run_killed_while_a_target_hangs_keeps_its_bytes_and_delivers_later_once(
        fleet, tmp_path, data_dir):
    """The commit comes before delivery: kill -9 during a hanging delivery loses nothing."""
    with webhook_server() as hook:
        config, process = caught_sending(fleet, tmp_path, data_dir, hook, A, hang_seconds=30)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.stderr.close()
        assert stored_usage(data_dir) == truth_of(fleet)
        assert [row[:5] for row in _ledger(data_dir)] == [
            ("cap", "wan", "80", "json #1", 0), ("cap", "wan", "100", "json #1", 0)]
        hook.mode = "ok"
        assert run_later(fleet, config, data_dir).code == 0
        assert run_later(fleet, config, data_dir).code == 0
        assert [p["title"] for p in hook.posts] == ["netstat-collect: 2 alerts"]
        assert stored_usage(data_dir) == truth_of(fleet)
        assert json.loads(json.dumps(hook.posts))  # plain JSON, as the receiver parsed it


@pytest.mark.slow
def test_a_target_flooding_its_answer_costs_the_run_neither_memory_nor_time(fleet, tmp_path, data_dir):
    """A 500 whose body never ends: the sending child hits its address-space cap (or the
    deadline) and the target counts as failed; the run itself stays small and on time."""
    fleet.add_router("main")
    fleet.join("main", A)
    with webhook_server() as hook:
        config = alert_config(fleet, tmp_path, [hook.url()], alerts={"deadline_seconds": 20})
        assert collect(fleet, config, data_dir).code == 0
        hook.mode = "flood"
        fleet.transfer("main", A, 3, GIB, wan_router="main")
        fleet.advance(1800)
        env = {k: v for k, v in os.environ.items() if not k.startswith("NETSTAT_")}
        env.update(NETSTAT_NOW=repr(fleet.now), TZ="UTC")
        started = time.monotonic()
        process, _ = run_once_measured(config, data_dir, env)
        took = time.monotonic() - started
        assert process.returncode == 0
        assert "notify json #1: FAILED (" in process.stderr
        assert took < 20 + 10
        assert stored_usage(data_dir) == truth_of(fleet)
        assert _ledger(data_dir)[0][4:] == (0, 1)  # not sent, one attempt: retried next run
        hook.mode = "ok"
        assert run_later(fleet, config, data_dir).code == 0
        assert len(hook.posts) == 1


@pytest.mark.slow
def test_an_upgrade_from_schema_2_keeps_totals_and_announces_no_old_device(fleet, tmp_path, data_dir):
    """A data directory from before names and alerts (schema 2): the upgrade adds the tables,
    the first run with new_device on learns the network, later devices are announced."""
    fleet.add_router("main")
    fleet.join("main", A, hostname="laptop")
    fleet.join("main", B, hostname="printer")
    plain = write_config(tmp_path / "plain.json", fleet.config({"timezone": "UTC"}))
    assert collect(fleet, plain, data_dir).code == 0
    fleet.transfer("main", A, 100, 200, wan_router="main")
    assert run_later(fleet, plain, data_dir).code == 0
    fleet.set_fault("main", "http500", ["ap_stats"])
    assert run_later(fleet, plain, data_dir).code == 1
    # Back to schema 2, as the previous release left it.
    for name, version in (("network_stats.db", 2), ("dhcp_leases.db", 2)):
        conn = sqlite3.connect(data_dir / name)
        if name == "network_stats.db":
            for table in ("devices", "known_devices", "alert_deliveries", "alerts"):
                conn.execute(f"DROP TABLE {table}")
            conn.execute("ALTER TABLE router_endpoints DROP COLUMN failing_since")
            conn.execute("ALTER TABLE periods DROP COLUMN counted_from")
        conn.execute(f"PRAGMA user_version = {version}")
        conn.commit()
        conn.close()
    fleet.set_fault("main", "ok")
    with webhook_server() as hook:
        config = alert_config(fleet, tmp_path, [hook.url()], cap_gib=None, alerts={"new_device": True},
                        devices={A: {"name": "Anna's laptop", "owner": "Anna"}})
        fleet.transfer("main", B, 5, 5, wan_router="main")
        assert run_later(fleet, config, data_dir).code == 0
        conn = sqlite3.connect(f"file:{data_dir / 'network_stats.db'}?mode=ro", uri=True)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
        assert conn.execute("SELECT mac, name, owner FROM devices").fetchall() == [
            (A, "Anna's laptop", "Anna")]
        assert {m for (m,) in conn.execute("SELECT mac FROM known_devices")} == {A, B}
        conn.close()
        assert hook.posts == []
        fleet.join("main", C)
        assert run_later(fleet, config, data_dir).code == 0
        assert [p["title"] for p in hook.posts] == [f"netstat-collect: new device {C}"]
    assert stored_usage(data_dir) == truth_of(fleet)


@pytest.mark.slow
def test_report_and_usage_show_the_forecast_or_why_there_is_none(fleet, tmp_path, data_dir):
    fleet.add_router("main")
    fleet.join("main", A)
    config = write_config(tmp_path / "routers.json",
                          fleet.config({"timezone": "UTC", "monthly_cap_gib": 10}))
    start = fleet.now  # 15 Nov 12:00; the period ends 1 Dec 00:00, 15.5 days later
    assert collect(fleet, config, data_dir).code == 0
    fleet.transfer("main", A, 0, GIB, wan_router="main")
    run_later(fleet, config, data_dir, advance=86400)
    report = invoke("report", "--data-dir", str(data_dir), now=fleet.now)
    assert "Cap  10.00 GiB, 10.0% used" in report.stdout
    assert "Forecast: too early to tell: 1.0 of the 3 days of measuring a forecast needs" in report.stdout
    for _ in range(3):
        fleet.transfer("main", A, 0, GIB, wan_router="main")
        run_later(fleet, config, data_dir, advance=86400)
    used, measured, left = 4 * GIB, fleet.now - start, 15.5 * 86400 - (fleet.now - start)
    expected = used + round(used / measured * left)  # 4 GiB in 4 days, 11.5 days to go
    client = create_app({"DATA_DIR": str(data_dir), "NOW": fleet.now}).test_client()
    wan = client.get("/api/v1/usage").get_json()["wan"]
    assert wan["forecast_bytes"] == expected == int(15.5 * GIB)
    assert wan["forecast_note"] == "at the pace of the last 4.0 days (1.00 GiB a day)"
    report = invoke("report", "--data-dir", str(data_dir), now=fleet.now)
    assert ("Forecast: 15.50 GiB at the period's end, above the cap (at the pace of the last "
            "4.0 days (1.00 GiB a day))") in report.stdout
    past = invoke("report", "--data-dir", str(data_dir), "--period", "2026-10", now=fleet.now)
    assert "Forecast" not in past.stdout
