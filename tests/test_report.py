"""`netstat-collect report` as a subprocess, over databases the real collector wrote."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict

import pytest
from support import (
    ESCAPE_HOST,
    FORMULA_HOST,
    HOSTILE_DEVICES,
    HOSTILE_HOSTNAMES,
    LAPTOP,
    LONG_NAME,
    MARKUP_HOST,
    NONAME,
    SCENARIO_LABELS,
    TABLET,
    UNKNOWN,
    ZOE,
    run_cli,
)

from collector.report import human_bytes  # the units; what they are is test_text's and the demo's

MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


def report(scenario, *args: str):
    return run_cli("report", "--data-dir", str(scenario.data_dir), *args, now=scenario.now)


def table_rows(stdout: str) -> list[tuple[str, ...]]:
    """The device rows: columns are separated by two or more spaces."""
    return [tuple(re.split(r" {2,}", line.strip())) for line in stdout.splitlines()
            if MAC.search(line)]


def owner_rows(stdout: str) -> list[tuple[str, ...]]:
    """The rows between the two rules under the `owner` header, then the total line."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("owner "))
    rules = [i for i, line in enumerate(lines) if i > start and set(line) <= {"-", " "} and line]
    body = lines[rules[0] + 1:rules[1]] + lines[rules[1] + 1:]
    return [tuple(re.split(r" {2,}", line.strip())) for line in body]


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_report_lists_devices_by_total_in_binary_units(api_scenario):
    r = report(api_scenario, "--period", "2026-11")
    assert r.code == 0, r.stderr
    # The configured name and owner (support.SCENARIO_DEVICES), the DHCP hostname beside them.
    assert r.stdout.splitlines()[5].split() == ["name", "hostname", "owner", "ip", "mac", "download",
                                                "upload", "total"]
    assert table_rows(r.stdout) == [
        ("Anna's laptop", "laptop", "Anna", "10.0.0.11", LAPTOP, "250.00 MiB", "3.00 MiB", "253.00 MiB"),
        ("-", "-", "Anna", "-", TABLET, "7.86 MiB", "609.66 KiB", "8.45 MiB"),
        ("Printer", "-", "Ben", "10.0.0.12", NONAME, "3.00 MiB", "200.00 KiB", "3.20 MiB"),
        ("Zoë's tablet", "Zoë/tablet", "-", "10.0.0.15", ZOE, "1.18 MiB", "1.43 MiB", "2.61 MiB"),
        ("-", "-", "-", "10.0.0.13", UNKNOWN, "19.53 KiB", "9.77 KiB", "29.30 KiB"),
    ]
    assert re.split(r" {2,}", r.stdout.splitlines()[-1]) == [
        "all devices", "262.05 MiB", "5.23 MiB", "267.29 MiB"]


def test_report_shows_the_periods_wan_total(api_scenario):
    r = report(api_scenario, "--period", "2026-11")
    wan = next(line for line in r.stdout.splitlines() if line.startswith("WAN"))
    assert wan.split() == ["WAN", "download", "262.05", "MiB", "upload", "5.23", "MiB",
                           "total", "267.29", "MiB"]
    assert r.stdout.startswith("Billing period 2026-11  (2026-11-01 to 2026-12-01, end exclusive)\n")


def test_report_defaults_to_the_current_period(api_scenario):
    r = report(api_scenario)
    assert r.stdout.startswith("Billing period 2026-12  (2026-12-01 to 2027-01-01")
    assert [row[4] for row in table_rows(r.stdout)] == [LAPTOP, TABLET, NONAME, UNKNOWN, ZOE]


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


# --- Per owner, and the other formats ---------------------------------------------------------


@pytest.mark.parametrize("period", ["2026-11", "2026-12"])
def test_report_by_owner_sums_each_owners_devices(api_scenario, period):
    # What the scenario moved, grouped by the owner the configuration gives each device.
    by_owner: dict = defaultdict(lambda: [0, 0, 0])  # owner -> devices, download, upload
    for mac, (rx, tx) in api_scenario.periods[period].items():
        if mac != "main_wan":
            group = by_owner[SCENARIO_LABELS[mac][1]]
            group[0] += 1
            group[1] += tx
            group[2] += rx
    expected = [("(no owner)" if owner is None else owner, str(n), human_bytes(down), human_bytes(up),
                 human_bytes(down + up))
                for owner, (n, down, up) in sorted(by_owner.items(), key=lambda kv: -(kv[1][1] + kv[1][2]))]
    r = report(api_scenario, "--period", period, "--by", "owner")
    assert r.code == 0, r.stderr
    devices, download, upload = (sum(g[i] for g in by_owner.values()) for i in range(3))
    assert owner_rows(r.stdout) == [*expected, ("all devices", str(devices), human_bytes(download),
                                                human_bytes(upload), human_bytes(download + upload))]
    assert {row[0] for row in expected} == {"Anna", "Ben", "(no owner)"}


@pytest.mark.parametrize("by, route", [("device", "usage"), ("owner", "owners")])
@pytest.mark.parametrize("period", ["2026-11", None])
def test_report_json_and_csv_are_the_apis_answers(api_scenario, api_server, by, route, period):
    args = ("--by", by) + (("--period", period) if period else ())
    params = {"period": period} if period else {}
    as_json = report(api_scenario, *args, "--format", "json")
    assert as_json.code == 0, as_json.stderr
    assert json.loads(as_json.stdout) == api_server.get(f"/api/v1/{route}", params=params).json()
    as_csv = report(api_scenario, *args, "--format", "csv")
    assert as_csv.code == 0, as_csv.stderr
    api = api_server.get(f"/api/v1/{route}", params={**params, "format": "csv"})
    # run_cli reads text, with universal newlines: the report's CRLF arrive as LF.
    assert as_csv.stdout == api.text.replace("\r\n", "\n")
    assert len(csv_rows(as_csv.stdout)) == len(api_server.get(f"/api/v1/{route}", params=params).json()[
        "clients" if by == "device" else "owners"]) > 0


def test_report_json_flag_is_format_json(api_scenario):
    assert report(api_scenario, "--json").stdout == report(api_scenario, "--format", "json").stdout
    r = report(api_scenario, "--json", "--format", "csv")
    assert (r.code, r.stdout) == (2, "")
    assert "--json is --format json; it cannot go with --format csv" in r.stderr


# --- Hostile names: from DHCP and from the configuration ------------------------------------------


def _hostile_report(hostile_names, *args: str):
    data_dir, now = hostile_names
    r = run_cli("report", "--data-dir", str(data_dir), *args, now=now)
    assert r.code == 0, r.stderr
    # No control or bidi character reaches the terminal, in any format.
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]", r.stdout)
    return r.stdout


def test_hostile_names_are_escaped_in_the_report_table(hostile_names):
    rows = {row[4]: row for row in table_rows(_hostile_report(hostile_names))}
    name, hostname, owner = rows[FORMULA_HOST][:3]
    assert (name, owner) == ("-", "-")  # configured: nothing; its owner group is "(no owner)"
    assert hostname.endswith("\u2026") and HOSTILE_HOSTNAMES[FORMULA_HOST].startswith(hostname[:-1])
    assert rows[ESCAPE_HOST][:3] == ("+cmd|' /C calc'!A0", "\\x1b[31mred\\x1b[0m", "@SUM(1+1)")
    assert rows[MARKUP_HOST][:3] == ("-2+3\\x1b]0;pwned\\x07", "<img src=x onerror=alert(1)>",
                                     "<b>Anna</b>")
    # 200 characters are cut, with an ellipsis, to keep the table readable.
    name, hostname, owner = rows[LONG_NAME][:3]
    assert name.startswith("WWWWWWWWWW") and name.endswith("\u2026") and len(name) < 50
    assert (hostname, owner) == ("-x", "\\u202eevil\\u200f")


def test_hostile_owners_are_escaped_in_the_owner_table(hostile_names):
    owners = [row[0] for row in owner_rows(_hostile_report(hostile_names, "--by", "owner"))]
    assert sorted(owners) == sorted(["(no owner)", "@SUM(1+1)", "<b>Anna</b>", "\\u202eevil\\u200f",
                                     "all devices"])


def test_hostile_names_are_inert_in_the_report_csv(hostile_names):
    rows = {row["mac"]: row for row in csv_rows(_hostile_report(hostile_names, "--format", "csv"))}
    assert {mac: (row["name"], row["owner"], row["hostname"]) for mac, row in rows.items()} == {
        FORMULA_HOST: ("", "", "'" + HOSTILE_HOSTNAMES[FORMULA_HOST]),
        ESCAPE_HOST: ("'+cmd|' /C calc'!A0", "'@SUM(1+1)", "\\x1b[31mred\\x1b[0m"),
        MARKUP_HOST: ("'-2+3\\x1b]0;pwned\\x07", "<b>Anna</b>", "<img src=x onerror=alert(1)>"),
        # The whole name: a spreadsheet has room for it.
        LONG_NAME: (HOSTILE_DEVICES[LONG_NAME]["name"], "\\u202eevil\\u200f", "'-x"),
    }
    owners = csv_rows(_hostile_report(hostile_names, "--by", "owner", "--format", "csv"))
    assert sorted(row["owner"] for row in owners) == sorted(["", "'@SUM(1+1)", "<b>Anna</b>",
                                                             "\\u202eevil\\u200f"])
