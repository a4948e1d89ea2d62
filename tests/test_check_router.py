"""`check-router` and `check-config` against simulated routers on 127.0.0.1, good and broken."""

from support import run_cli

A = "02:00:00:00:00:0a"


def base_url(fleet, router):
    return fleet.url(router, "ap_stats").rsplit("/cgi-bin/", 1)[0]


def test_good_router_by_base_url(fleet):
    fleet.add_router("main")
    fleet.join("main", A, hostname="laptop")
    result = run_cli("check-router", base_url(fleet, "main"))
    assert result.code == 0, result.stdout
    out = result.stdout
    assert "ap_stats" in out and "1 stations parsed" in out
    assert "CONNECTED_SECONDS present: re-association is detected exactly" in out
    assert "uptime: 86400s: reboots are detected exactly" in out
    assert "1 IPv4 leases parsed, 1 lines ignored (duid, DHCPv6)" in out
    assert "3 endpoint(s) OK, 0 with problems" in out


def test_optional_fields_missing_are_reported_but_not_errors(fleet):
    fleet.add_router("old")
    fleet.join("old", A)
    fleet.set_fault("old", "no-connected", ["ap_stats"])
    fleet.set_fault("old", "no-uptime", ["wan_stats"])
    result = run_cli("check-router", fleet.url("old", "ap_stats"), fleet.url("old", "wan_stats"))
    assert result.code == 0
    assert "CONNECTED_SECONDS missing on 1 of 1 stations" in result.stdout
    assert "uptime: missing: reboots are only seen when a counter goes down" in result.stdout


def test_broken_routers_exit_nonzero_and_say_why(fleet):
    for name, fault in (("garbled", "garbage"), ("err", "http500"), ("gone", "down")):
        fleet.add_router(name)
        fleet.join(name, A)
        fleet.set_fault(name, fault)
    result = run_cli("check-router", fleet.url("garbled", "ap_stats"), fleet.url("err", "wan_stats"),
                     fleet.url("gone", "dhcp_leases"), "--timeout", "2")
    assert result.code == 1
    out = result.stdout
    assert "4 lines rejected:" in out and "bad MAC address: 'zz:zz:zz:zz:zz:zz 1 2'" in out
    assert "not reachable: HTTP 500" in out
    assert "not reachable: connection closed without an answer" in out
    assert "0 endpoint(s) OK, 3 with problems" in out


def test_wan_answer_without_wan_line_is_a_problem(fleet):
    fleet.add_router("main")
    fleet.set_fault("main", "empty", ["wan_stats"])
    result = run_cli("check-router", fleet.url("main", "wan_stats"))
    assert result.code == 1
    assert "unusable answer: no valid `wan: RX_BYTES TX_BYTES` line in the answer" in result.stdout


def test_closed_port(tmp_path):
    result = run_cli("check-router", "http://127.0.0.1:9/cgi-bin/wan.cgi", "--timeout", "2")
    assert result.code == 1
    assert "not reachable: connection refused" in result.stdout


def test_bad_url_is_a_usage_error():
    result = run_cli("check-router", "ftp://127.0.0.1/x")
    assert result.code == 2
    assert "not an http(s) URL" in result.stderr


def test_check_config_checks_every_configured_endpoint_and_writes_nothing(fleet, tmp_path):
    fleet.add_router("main")
    fleet.add_router("ap2", wan=False, dhcp=False)
    fleet.set_fault("ap2", "http500")
    config = fleet.write_config(tmp_path / "routers.json", {"timezone": "UTC"})
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_cli("check-config", "--config", str(config))
    assert result.code == 1
    assert result.stdout.count("\nmain ") + result.stdout.startswith("main ") == 3
    assert "ap2 ap_stats" in result.stdout and "not reachable: HTTP 500" in result.stdout
    assert "3 endpoint(s) OK, 1 with problems" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_check_config_reports_config_errors_with_exit_2(tmp_path):
    bad = tmp_path / "routers.json"
    bad.write_text('{"r": {"ap_stats": 5}}')
    result = run_cli("check-config", "--config", str(bad))
    assert result.code == 2
    assert "r.ap_stats: must be a URL string, got 5" in result.stderr
