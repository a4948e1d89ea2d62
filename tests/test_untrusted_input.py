"""What comes from outside: passwords in configured URLs, what routers send, large fleets,
paths on the command line. The real CLI as a subprocess against simulated routers on
127.0.0.1; the API through its app factory.

Figures printed here (with -s) feed docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import unicodedata
from contextlib import ExitStack
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from support import REPO, T0, bystander, collect, run_cli, stored_usage, write_config

from api.app import create_app
from collector.endpoints import ENDPOINT_NAMES
from collector.schema import sqlite_uri
from collector.sim.routers import Fleet
from collector.text import ERROR_LIMIT

SETTINGS = {"timezone": "UTC", "timeout_seconds": 2}
SECRET = "Pa55-w0rd-in-url"
LOCATION_SECRET = "an0ther-pa55"
A = "02:00:00:00:09:01"
API_PATHS = ("/", "/api/v1/", "/api/v1/usage", "/api/v1/periods", "/api/v1/leases", "/api/v1/routers",
             "/api/v1/wan/history", f"/api/v1/clients/{A}/history", "/api/v1/openapi.json",
             "/healthz", "/api.php?action=combined", "/api.php?action=leases")


def with_user_info(url: str, password: str = SECRET) -> str:
    return url.replace("http://", f"http://admin:{password}@", 1)


def api_answers(data_dir: Path, now: float) -> list[str]:
    client = create_app({"DATA_DIR": str(data_dir), "NOW": now}).test_client()
    answers = []
    for path in API_PATHS:
        with client.get(path) as response:
            answers.append(response.get_data(as_text=True))
    return answers


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def bad_characters(text: str) -> list[str]:
    """Control, format, separator and surrogate characters other than the newline."""
    return [ch for ch in text if ch != "\n" and unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp")]


# --- Item 4: credentials in URLs -----------------------------------------------------------------

def test_credentials_in_urls_are_never_printed_stored_or_served(fleet, data_dir, tmp_path):
    fleet.add_router("main")
    fleet.join("main", A, hostname="laptop")
    fleet.add_router("broken", wan=False, dhcp=False)
    fleet.set_fault("broken", "http500")
    fleet.add_router("away", wan=False, dhcp=False)
    fleet.set_fault("away", "redirect-away")
    with bystander("127.0.0.2") as other:
        fleet.routers["away"].location = with_user_info(other.url, LOCATION_SECRET) + "/steal"
        document = fleet.config(SETTINGS)
        for router in document["routers"].values():
            for endpoint in ENDPOINT_NAMES:
                router[endpoint] = with_user_info(router[endpoint]) if router[endpoint] else ""
        document["routers"]["closed"] = {
            "ap_stats": with_user_info(f"http://127.0.0.1:{closed_port()}/cgi-bin/totalwifi.cgi")}
        config = write_config(tmp_path / "routers.json", document)

        first = collect(fleet, config, data_dir)
        fleet.advance(1800)
        fleet.transfer("main", A, 10, 20, wan_router="main")
        dry = collect(fleet, config, data_dir, "--dry-run", "-v")
        second = collect(fleet, config, data_dir, "-v")
        base = fleet.url("main", "ap_stats").rsplit("/cgi-bin/", 1)[0]
        check_router = run_cli("check-router", "--timeout", "2", with_user_info(base),
                               with_user_info(fleet.url("away", "ap_stats")))
        check_config = run_cli("check-config", "--config", str(config))
    assert other.hits == []
    report = run_cli("report", "--data-dir", str(data_dir), now=fleet.now)
    report_json = run_cli("report", "--json", "--data-dir", str(data_dir), now=fleet.now)
    assert [first.code, dry.code, second.code, check_router.code, check_config.code] == [1, 1, 1, 1, 1]
    assert (report.code, report_json.code) == (0, 0)
    assert stored_usage(data_dir)[A] == (10, 20)  # the password still reaches the router

    printed = [first, dry, second, check_router, check_config, report, report_json]
    texts = [r.stdout + r.stderr for r in printed] + api_answers(data_dir, fleet.now)
    for text in texts:
        assert SECRET not in text and LOCATION_SECRET not in text, text
    for path in data_dir.iterdir():
        content = path.read_bytes()
        assert SECRET.encode() not in content and LOCATION_SECRET.encode() not in content, path
    # What is shown instead: the user name, and the host and port as the checks' label.
    assert f"main ap_stats {with_user_info(fleet.url('main', 'ap_stats'), '***')}: OK" in check_config.stdout
    label = base.removeprefix("http://").split("/")[0]
    assert f"\n{label} wan_stats {with_user_info(base, '***')}/cgi-bin/wan.cgi: OK" in check_router.stdout
    refused = f"redirect to {with_user_info(other.url, '***')}/steal refused"
    assert refused in second.stderr and refused in check_config.stdout
    assert "closed: ap_stats FAILED (connection refused)" in second.stderr


def test_bad_urls_with_credentials_are_configuration_errors_that_hide_them(tmp_path, data_dir):
    cases = {
        "r.ap_stats: not a valid URL: the port must be": f"http://admin:{SECRET}@127.0.0.1:65536/x",
        "r.ap_stats: not a valid URL: unbalanced [ ] around an IPv6 address": f"http://admin:{SECRET}@[::1/x",
        "r.ap_stats: not an http(s) URL": f"ftp://admin:{SECRET}@127.0.0.1/x",
    }
    for message, url in cases.items():
        config = write_config(tmp_path / "routers.json", {"r": {"ap_stats": url}})
        for args in (["run-once", "--data-dir", str(data_dir)], ["run-once", "--dry-run"], ["check-config"]):
            result = run_cli(*args, "--config", str(config), now=T0)
            assert result.code == 2, (args, url, result.stderr)
            assert message in result.stderr and "Traceback" not in result.stderr
            assert SECRET not in result.stdout + result.stderr
        result = run_cli("check-router", "--timeout", "2", url)
        assert result.code == 2 and SECRET not in result.stdout + result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert not data_dir.exists()


# --- Item 6: a URL that does not parse ------------------------------------------------------------

def test_an_unparsable_url_is_a_configuration_error_naming_the_key(tmp_path, data_dir):
    config = write_config(tmp_path / "routers.json",
                          {"routers": {"r1": {"ap_stats": "http://[::1/x"}}, "settings": SETTINGS})
    result = run_cli("run-once", "--config", str(config), "--data-dir", str(data_dir), now=T0)
    assert result.code == 2, result.stderr
    assert result.stderr.strip() == (f"Error: {config}: routers.r1.ap_stats: not a valid URL: unbalanced "
                                     "[ ] around an IPv6 address")
    result = run_cli("check-router", "http://[::1/x")
    assert (result.code, result.stderr.strip()) == (
        2, "Error: URL 1: not a valid URL: unbalanced [ ] around an IPv6 address")


# --- Item 5: what a router sends, on a terminal and in the databases --------------------------------

def test_a_routers_status_line_reaches_logs_escaped_and_cut(fleet, data_dir, tmp_path):
    fleet.add_router("evil", dhcp=False)
    fleet.join("evil", A)
    fleet.set_fault("evil", "reason-escapes", ["wan_stats"])
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    run = collect(fleet, config, data_dir)
    assert run.code == 1, run.stderr
    check = run_cli("check-router", fleet.url("evil", "wan_stats"))
    assert check.code == 1
    conn = sqlite3.connect(data_dir / "network_stats.db")
    (stored,) = conn.execute(
        "SELECT last_error FROM router_endpoints WHERE endpoint = 'wan_stats'").fetchone()
    conn.close()
    client = create_app({"DATA_DIR": str(data_dir), "NOW": fleet.now}).test_client()
    served = client.get("/api/v1/routers").get_json()["routers"][0]["endpoints"]
    (served_error,) = [e["last_error"] for e in served if e["endpoint"] == "wan_stats"]

    for text in (run.stderr, check.stdout, stored, served_error):
        assert bad_characters(text) == [], text[:300]
        assert max(len(line) for line in text.splitlines()) < 1000
    assert stored == served_error and len(stored) <= ERROR_LIMIT
    assert stored.startswith("HTTP 503 \\x1b]0;pwned\\x07"), stored[:80]
    assert "evil: ap_stats 1 stations; wan_stats FAILED (HTTP 503 \\x1b]0;pwned" in run.stderr


# --- Item 8: a large fleet under cron's file limit ------------------------------------------------

def _limit_files(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    return apply


@pytest.mark.slow
def test_a_fleet_larger_than_the_file_limit_fetches_every_endpoint(tmp_path, data_dir):
    """300 routers x 3 endpoints under soft = hard = 256 descriptors: every endpoint answers.

    The routers answer after 50 ms and are spread over 30 servers (30 host:port pairs, as
    distinct routers are), so requests overlap and connections to many hosts are open at once.
    """
    servers, per_server, limit = 30, 10, 256
    routers = servers * per_server
    with ExitStack() as stack:
        document = {"settings": SETTINGS, "routers": {}}
        for s in range(servers):
            fleet = stack.enter_context(Fleet(now=T0))
            for i in range(s * per_server, (s + 1) * per_server):
                fleet.add_router(f"r{i}").delay = 0.05
                fleet.join(f"r{i}", f"02:00:00:01:{i >> 8:02x}:{i & 0xff:02x}")
            document["routers"].update(fleet.config()["routers"])
        config = write_config(tmp_path / "routers.json", document)
        env = {k: v for k, v in os.environ.items() if not k.startswith("NETSTAT_")}
        env["NETSTAT_NOW"] = repr(T0)
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "collector", "run-once", "--config", str(config),
                               "--data-dir", str(data_dir)], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=300, preexec_fn=_limit_files(limit))
        elapsed = time.monotonic() - started
    failed = [line for line in proc.stderr.splitlines() if "FAILED" in line]
    assert failed == [] and proc.returncode == 0, (len(failed), failed[:3], proc.stderr[-2000:])
    conn = sqlite3.connect(data_dir / "network_stats.db")
    assert conn.execute("SELECT endpoints_ok, endpoints_failed FROM runs").fetchall() == [(routers * 3, 0)]
    conn.close()
    print(f"\nfile limit {limit}: {routers} routers on {servers} servers, {routers * 3} endpoints, "
          f"all fetched; the run took {elapsed:.1f}s")


# --- Item 9: a data directory whose name means something in a URI ----------------------------------

def test_dry_run_reads_a_data_directory_named_like_a_uri(fleet, tmp_path):
    fleet.add_router("main")
    fleet.join("main", A)
    config = fleet.write_config(tmp_path / "routers.json", SETTINGS)
    data_dir = tmp_path / "d#x?mode=rwc%41"
    assert collect(fleet, config, data_dir).code == 0
    fleet.advance(1800)
    fleet.transfer("main", A, 5, 6)
    before = sorted(p.name for p in tmp_path.iterdir())
    dry = collect(fleet, config, data_dir, "--dry-run")
    assert dry.code == 0, dry.stderr
    assert f"router main {A}: would add rx 5 tx 6" in dry.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no file `d` beside it
    report = run_cli("report", "--json", "--data-dir", str(data_dir), now=fleet.now)
    assert report.code == 0 and json.loads(report.stdout)["period"]["label"] == "2026-11"


NAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
                min_size=1, max_size=30).filter(lambda name: name not in (".", ".."))


@settings(max_examples=60, deadline=None)
@given(NAMES)
@example("d#x?mode=rwc%41")
@example("\udcff not utf-8")  # a byte that is not UTF-8, as os.fsdecode gives it
def test_sqlite_uri_names_exactly_the_file(name):
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch) / name
        directory.mkdir()
        conn = sqlite3.connect(sqlite_uri(directory / "x.db", mode="rwc"), uri=True)
        conn.execute("CREATE TABLE t (a)")
        conn.close()
        assert [p.name for p in Path(scratch).iterdir()] == [name]
        assert [p.name for p in directory.iterdir()] == ["x.db"]
