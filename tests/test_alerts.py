"""The alert rules, the forecast and the `devices` / `alerts` configuration: pure, no I/O
beyond the temporary files a configuration names."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from support import invoke

from collector import alerts
from collector.config import Alerts, DeviceLabel, parse_config
from collector.errors import ConfigError
from collector.periods import period_containing

GIB = 1024**3
ZONE = ZoneInfo("Europe/Berlin")
ROUTERS = {"main": {"ap_stats": "http://127.0.0.1:1/cgi-bin/totalwifi.cgi"}}


def _at(*args) -> float:
    return datetime(*args, tzinfo=ZONE).timestamp()


def _facts(at: float, **kw) -> alerts.Facts:
    period = period_containing(at, ZONE, 1)
    return alerts.Facts(at=at, zone=ZONE, period=period, wan_bytes=kw.pop("wan_bytes", 0),
                        cap_bytes=kw.pop("cap_bytes", None), measured_from=kw.pop("measured_from", None),
                        **kw)


# --- The forecast ------------------------------------------------------------------------------


def test_the_forecast_is_a_straight_line_through_the_period_so_far():
    period = period_containing(_at(2026, 11, 11), ZONE, 1)  # 1 Nov to 1 Dec: 30 days
    # 10 days measured from the period's start, 5 GiB used: 0.5 GiB a day, 20 days left.
    outlook = alerts.forecast(5 * GIB, period, None, _at(2026, 11, 11))
    assert outlook.bytes == 15 * GIB
    assert outlook.measured_seconds == 10 * 86400
    assert outlook.note == "at the pace of the last 10.0 days (512.00 MiB a day)"


def test_the_pace_is_measured_from_the_first_run_when_the_collector_started_mid_period():
    period = period_containing(_at(2026, 11, 25), ZONE, 1)
    first_run = _at(2026, 11, 21)
    outlook = alerts.forecast(4 * GIB, period, first_run, _at(2026, 11, 25))
    assert outlook.bytes == 4 * GIB + 6 * GIB  # 1 GiB a day over 4 days, 6 days left


def test_too_early_to_tell_says_so_and_how_long_it_has_measured():
    period = period_containing(_at(2026, 11, 3), ZONE, 1)
    outlook = alerts.forecast(50 * GIB, period, None, _at(2026, 11, 3, 12))
    assert outlook.bytes is None
    assert outlook.note == "too early to tell: 2.5 of the 3 days of measuring a forecast needs"


def test_the_forecast_alert_needs_the_pace_above_the_cap_and_the_cap_not_yet_reached():
    rules = Alerts(thresholds_percent=(100,))
    at = _at(2026, 11, 11)  # 10 of 30 days
    kinds = lambda used: [a.kind for a in alerts.due(rules, _facts(at, wan_bytes=used,  # noqa: E731
                                                                   cap_bytes=30 * GIB))]
    assert kinds(9 * GIB) == []  # ends at 27 GiB
    assert kinds(11 * GIB) == ["forecast"]  # ends at 33 GiB
    assert kinds(30 * GIB) == ["cap"]  # reached: the cap alert says it, not the forecast
    assert [a.kind for a in alerts.due(Alerts(thresholds_percent=(100,), forecast=False),
                                       _facts(at, wan_bytes=11 * GIB, cap_bytes=30 * GIB))] == []


# --- Thresholds, limits, subjects ---------------------------------------------------------------


def test_each_threshold_crossed_is_its_own_alert_and_none_without_a_cap():
    at = _at(2026, 11, 2)
    rules = Alerts(thresholds_percent=(50, 80, 100))
    due = alerts.due(rules, _facts(at, wan_bytes=85, cap_bytes=100))
    assert [(a.kind, a.subject, a.threshold, a.period) for a in due] == [
        ("cap", "wan", "50", "2026-11"), ("cap", "wan", "80", "2026-11")]
    assert "85 B of the 100 B cap (85.0%)" in due[1].body
    assert "As of 2026-11-02 00:00 CET." in due[1].body
    assert alerts.due(rules, _facts(at, wan_bytes=10**15)) == []


def test_owner_totals_add_every_device_of_the_owner_and_skip_devices_without_one():
    labels = {"aa:00:00:00:00:01": DeviceLabel("phone", "Kids"),
              "aa:00:00:00:00:02": DeviceLabel("tablet", "Kids"),
              "aa:00:00:00:00:03": DeviceLabel("tv", "")}
    facts = _facts(_at(2026, 11, 2), labels=labels, device_bytes={
        "aa:00:00:00:00:01": 60, "aa:00:00:00:00:02": 50, "aa:00:00:00:00:03": 1000,
        "aa:00:00:00:00:04": 7})
    assert facts.owner_bytes() == {"Kids": 110}
    rules = Alerts(thresholds_percent=(100,), owner_limits_bytes=(("Kids", 100), ("Nobody", 1)),
                   device_limits_bytes=(("aa:00:00:00:00:03", 1000), ("aa:00:00:00:00:04", 8)))
    due = alerts.due(rules, facts)
    assert [(a.kind, a.subject) for a in due] == [("device_limit", "aa:00:00:00:00:03"),
                                                  ("owner_limit", "Kids")]
    assert due[0].title == "netstat-collect: tv (aa:00:00:00:00:03) at 100% of its monthly limit"


def test_hostile_names_are_escaped_and_cut_in_every_message():
    hostile = "<b>x</b>\x1b]0;owned\x07\u202e" + "y" * 500
    mac = "aa:00:00:00:00:01"
    facts = _facts(_at(2026, 11, 2), labels={mac: DeviceLabel(hostile, hostile)},
                   device_bytes={mac: 10},
                   new_devices=[alerts.NewDevice(mac, hostile, hostile, hostile)],
                   failing=[alerts.Failing(hostile, "ap_stats", _at(2026, 11, 1), hostile)])
    rules = Alerts(thresholds_percent=(100,), device_limits_bytes=((mac, 1),),
                   owner_limits_bytes=((hostile, 1),), new_device=True, router_down_minutes=1)
    due = alerts.due(rules, facts)
    assert {a.kind for a in due} == {"device_limit", "owner_limit", "new_device", "down"}
    for a in due:
        for text in (a.title, a.body):
            assert not any(ch in text for ch in "\x1b\x07\u202e"), text
            assert "y" * (2 * alerts.QUOTE_CHARS) not in text  # an error may be twice as long
        assert "\\x1b]0;owned\\x07\\u202e" in a.body


def test_outages_are_told_after_the_limit_and_recoveries_only_when_the_outage_was():
    since = _at(2026, 11, 2, 10)
    failing = [alerts.Failing("attic", "ap_stats", since, "HTTP 500")]
    rules = Alerts(router_down_minutes=45)
    assert alerts.due(rules, _facts(since + 44 * 60, failing=failing)) == []
    down = alerts.due(rules, _facts(since + 45 * 60, failing=failing))
    assert [(a.kind, a.period, a.subject) for a in down] == [
        ("down", "2026-11-02T09:00:00Z", "attic/ap_stats")]
    assert "failing for 45 min, since 2026-11-02 10:00 CET: HTTP 500" in down[0].body
    back = [alerts.Recovered("attic", "ap_stats", since, alerted=True),
            alerts.Recovered("attic", "wan_stats", since, alerted=False)]
    told = alerts.due(rules, _facts(since + 3 * 86400, recovered=back))
    assert [(a.kind, a.subject) for a in told] == [("recovered", "attic/ap_stats")]
    assert "after 3 days 0 h of failing" in told[0].body
    assert alerts.due(Alerts(router_down_minutes=None), _facts(since + 86400, failing=failing)) == []


def test_messages_of_one_run_are_combined_for_a_target():
    assert alerts.combined([("t", "b")]) == ("t", "b")
    title, body = alerts.combined([("t1", "b1"), ("t2", "b2")])
    assert title == "netstat-collect: 2 alerts" and body == "t1\nb1\n\nt2\nb2"


# --- Configuration ------------------------------------------------------------------------------


def _config(tmp_path: Path, **sections):
    return parse_config({"routers": ROUTERS, **sections}, str(tmp_path / "routers.json"))


def test_devices_are_keyed_by_normalised_mac_and_a_string_is_a_name(tmp_path):
    config = _config(tmp_path, devices={"AA-BB-CC-DD-EE-01": {"name": " Anna's phone ", "owner": "Anna"},
                                        "aa:bb:cc:dd:ee:02": "printer"})
    assert config.devices == {"aa:bb:cc:dd:ee:01": DeviceLabel("Anna's phone", "Anna"),
                              "aa:bb:cc:dd:ee:02": DeviceLabel("printer", "")}
    assert config.alerts is None


@pytest.mark.parametrize("devices, where, what", [
    ({"aa:bb:cc:dd:ee": {}}, 'devices."aa:bb:cc:dd:ee"', "not a MAC address"),
    ({"aa:bb:cc:dd:ee:01\n": {}}, 'devices."aa:bb:cc:dd:ee:01\\n"', "not a MAC address"),
    ({"aa:bb:cc:dd:ee:01": {}, "AA-BB-CC-DD-EE-01": {}}, 'devices."AA-BB-CC-DD-EE-01"',
     'the same device as "aa:bb:cc:dd:ee:01"'),
    ({"aa:bb:cc:dd:ee:01": {"ownr": "x"}}, 'devices."aa:bb:cc:dd:ee:01".ownr', "unknown key"),
    ({"aa:bb:cc:dd:ee:01": {"name": 5}}, 'devices."aa:bb:cc:dd:ee:01".name', "must be a string"),
    ({"aa:bb:cc:dd:ee:01": {"owner": "o" * 201}}, 'devices."aa:bb:cc:dd:ee:01".owner',
     "is 201 characters long; at most 200"),
    ([], "devices", "must be an object"),
])
def test_a_bad_devices_entry_is_an_error_naming_the_key(tmp_path, devices, where, what):
    with pytest.raises(ConfigError) as error:
        _config(tmp_path, devices=devices)
    assert f"routers.json: {where}: {what}" in str(error.value)


def test_an_invalid_mac_in_devices_makes_run_once_exit_2_before_writing(tmp_path):
    config = tmp_path / "routers.json"
    config.write_text(json.dumps({"routers": ROUTERS, "devices": {"not-a-mac": "x"}}))
    result = invoke("run-once", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert result.code == 2 and 'devices."not-a-mac": not a MAC address' in result.stderr
    assert not (tmp_path / "data").exists()


def test_alerts_read_their_targets_from_the_file_and_never_quote_them(tmp_path):
    notify = tmp_path / "notify.urls"
    notify.write_text("# comment\n\n  mailto://me:pw1234@example.com  \njson://127.0.0.1:1/x\n")
    notify.chmod(0o640)
    config = _config(tmp_path, devices={"aa:bb:cc:dd:ee:01": {"owner": "Anna"}},
                     alerts={"notify_file": str(notify), "thresholds_percent": [100, 50, 100],
                             "owner_limits_gib": {"Anna": 1.5, "Bob": 2},
                             "device_limits_gib": {"AA:BB:CC:DD:EE:01": 0.5}})
    rules = config.alerts
    assert [(t.label, t.url.reveal()) for t in rules.targets] == [
        ("mailto #1", "mailto://me:pw1234@example.com"), ("json #2", "json://127.0.0.1:1/x")]
    assert rules.notify_problem == ""
    assert "pw1234" not in repr(rules)
    assert rules.thresholds_percent == (50, 100)
    assert rules.owner_limits_bytes == (("Anna", int(1.5 * GIB)), ("Bob", 2 * GIB))
    assert rules.device_limits_bytes == (("aa:bb:cc:dd:ee:01", GIB // 2),)
    assert rules.forecast and not rules.new_device and rules.router_down_minutes == 60
    assert any('alerts.owner_limits_gib."Bob": no device in "devices" has this owner' in w
               for w in config.warnings)
    assert not any("readable by every user" in w for w in config.warnings)
    notify.chmod(0o644)
    config = _config(tmp_path, alerts={"notify_file": str(notify)})
    assert any(f"{notify} is readable by every user of this machine: chmod o-r" in w
               for w in config.warnings)


@pytest.mark.parametrize("alerts_doc, what", [
    ({"thresholds_percent": 80}, "alerts.thresholds_percent: must be a list"),
    ({"thresholds_percent": [0]}, "alerts.thresholds_percent: must be an integer from 1 to 1000"),
    ({"device_limits_gib": {"nope": 1}}, 'alerts.device_limits_gib."nope": not a MAC address'),
    ({"owner_limits_gib": {"x": -1}}, 'alerts.owner_limits_gib."x": must be a number'),
    ({"router_down_minutes": 0}, "alerts.router_down_minutes: must be a number from 1"),
    ({"new_device": "yes"}, "alerts.new_device: must be true or false"),
    ({"deadline_seconds": 0.5}, "alerts.deadline_seconds: must be a number from 1 to 300"),
])
def test_a_bad_alerts_entry_is_an_error_naming_the_key(tmp_path, alerts_doc, what):
    with pytest.raises(ConfigError) as error:
        _config(tmp_path, alerts=alerts_doc)
    assert what in str(error.value)


def test_a_bad_notify_file_is_a_warning_that_never_stops_the_counting(tmp_path):
    """Notifications must not stop the accounting: an unreadable file, a line that is no URL
    and a URL given twice are warnings (check-config and notify-test fail on them)."""
    notify = tmp_path / "notify.urls"
    notify.write_text("json://127.0.0.1:1/x\nmy password is hunter2\njson://127.0.0.1:1/x\n"
                      "json://127.0.0.1:1/\x00\n")
    notify.chmod(0o600)
    config = _config(tmp_path, alerts={"notify_file": str(notify)})
    assert [t.label for t in config.alerts.targets] == ["json #1"]
    problem = config.alerts.notify_problem
    assert f"{notify} line 2: not an Apprise URL" in problem and "hunter2" not in problem
    assert f"{notify} line 3: the same URL as an earlier line; skipped" in problem
    assert f"{notify} line 4: not an Apprise URL" in problem
    assert sum(str(notify) in w for w in config.warnings) == 3
    missing = _config(tmp_path, alerts={"notify_file": "/nonexistent/notify.urls"})
    assert missing.alerts.targets == ()
    assert missing.alerts.notify_problem == "cannot read /nonexistent/notify.urls: No such file or directory"
    assert any("alerts are recorded but not sent" in w for w in missing.warnings)


def test_names_owners_and_owner_keys_must_be_storable_text(tmp_path):
    for section in ({"devices": {"aa:bb:cc:dd:ee:01": {"owner": "Kids\ud800"}}},
                    {"alerts": {"owner_limits_gib": {"Kids\udfff": 1}}}):
        with pytest.raises(ConfigError, match="holds a lone surrogate"):
            _config(tmp_path, **section)


def test_router_down_alerts_can_be_switched_off_with_null(tmp_path):
    assert _config(tmp_path, alerts={"router_down_minutes": None}).alerts.router_down_minutes is None
