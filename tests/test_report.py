"""`netstat-collect report` as a subprocess, over databases the real collector wrote."""

from __future__ import annotations

import json
import re

import pytest
from support import LAPTOP, NONAME, TABLET, UNKNOWN, ZOE, run_cli

MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


def report(scenario, *args: str):
    return run_cli("report", "--data-dir", str(scenario.data_dir), *args, now=scenario.now)


def table_rows(stdout: str) -> list[tuple[str, ...]]:
    """The device rows: columns are separated by two or more spaces."""
    return [tuple(re.split(r" {2,}", line.strip())) for line in stdout.splitlines()
            if MAC.search(line)]


def test_report_lists_devices_by_total_in_binary_units(api_scenario):
    r = report(api_scenario, "--period", "2026-11")
    assert r.code == 0, r.stderr
    assert table_rows(r.stdout) == [
        ("laptop", "10.0.0.11", LAPTOP, "250.00 MiB", "3.00 MiB", "253.00 MiB"),
        ("-", "-", TABLET, "7.86 MiB", "609.66 KiB", "8.45 MiB"),
        ("-", "10.0.0.12", NONAME, "3.00 MiB", "200.00 KiB", "3.20 MiB"),
        ("Zoë/tablet", "10.0.0.15", ZOE, "1.18 MiB", "1.43 MiB", "2.61 MiB"),
        ("-", "10.0.0.13", UNKNOWN, "19.53 KiB", "9.77 KiB", "29.30 KiB"),
    ]


def test_report_shows_the_periods_wan_total(api_scenario):
    r = report(api_scenario, "--period", "2026-11")
    wan = next(line for line in r.stdout.splitlines() if line.startswith("WAN"))
    assert wan.split() == ["WAN", "download", "262.05", "MiB", "upload", "5.23", "MiB",
                           "total", "267.29", "MiB"]
    assert r.stdout.startswith("Billing period 2026-11  (2026-11-01 to 2026-12-01, end exclusive)\n")


def test_report_defaults_to_the_current_period(api_scenario):
    r = report(api_scenario)
    assert r.stdout.startswith("Billing period 2026-12  (2026-12-01 to 2027-01-01")
    assert [row[2] for row in table_rows(r.stdout)] == [LAPTOP, TABLET, NONAME, UNKNOWN, ZOE]


@pytest.mark.parametrize("period", ["2026-11", "2026-12", None])
def test_report_json_is_the_api_usage_object(api_scenario, api_server, period):
    args = ("--period", period) if period else ()
    r = report(api_scenario, "--json", *args)
    assert r.code == 0, r.stderr
    api = api_server.get("/api/v1/usage", params={"period": period} if period else None)
    assert json.loads(r.stdout) == api.json()


def test_report_without_a_database_says_so(tmp_path):
    r = run_cli("report", "--data-dir", str(tmp_path))
    assert (r.code, r.stdout) == (3, "")
    assert r.stderr == (f"Error: {tmp_path / 'network_stats.db'}: no such database "
                        "(has the collector run yet?)\n")


def test_report_rejects_a_bad_period(api_scenario):
    r = report(api_scenario, "--period", "2026-13")
    assert (r.code, r.stderr) == (
        2, "Error: --period: period must be a month YYYY-MM from 1970-01 to 9998-12, "
           "got '2026-13'\n")
