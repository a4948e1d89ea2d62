"""The router's CGI scripts, run for real under BusyBox sh and read by the collector's parsers.

Each script runs with a clean environment, as uhttpd gives it, and a PATH made of
a directory of BusyBox applet links and, first, a directory of stub `iw`, `uci`,
`ubus` and `jsonfilter` commands that print the fixtures in tests/fixtures/router.
No network, no real /proc: every path the scripts read is pointed at a fixture.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from collector.errors import ParseError
from collector.parse import (
    Lease,
    StationSample,
    WanSample,
    parse_ap_stats,
    parse_dhcp_leases,
    parse_wan_stats,
)

REPO = Path(__file__).resolve().parent.parent
CGI_BIN = REPO / "router" / "cgi-bin"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "router"
BUSYBOX = Path("/bin/busybox")
# Every external command the scripts and the stubs run; the scripts must need no other.
APPLETS = ("sh", "awk", "cat", "sed")
PROC_UPTIME_SECONDS = 356789  # tests/fixtures/router/proc_uptime.txt: "356789.42 ..."


# --- running a script ------------------------------------------------------------


@dataclass
class CgiResponse:
    returncode: int
    headers: dict[str, str]
    body: str
    stderr: str

    @property
    def status(self) -> str | None:
        return self.headers.get("status")

    def describe(self) -> str:
        return f"headers={self.headers!r} body={self.body!r} stderr={self.stderr!r}"


def split_cgi(raw: str) -> tuple[dict[str, str], str]:
    """CGI output to ({lowercased header name: value}, body). Fails if there is no blank line."""
    head, sep, body = raw.replace("\r\n", "\n").partition("\n\n")
    assert sep, f"no blank line after the CGI header: {raw!r}"
    headers = {}
    for line in head.split("\n"):
        name, colon, value = line.partition(":")
        assert colon, f"bad CGI header line {line!r} in {raw!r}"
        headers[name.strip().lower()] = value.strip()
    return headers, body


@pytest.fixture(scope="session")
def applet_dir(tmp_path_factory) -> Path:
    """A directory with links to the BusyBox applets the scripts may use, and nothing else."""
    if not (BUSYBOX.is_file() and os.access(BUSYBOX, os.X_OK)):
        pytest.fail(
            f"{BUSYBOX} is missing: these tests run the router scripts under BusyBox sh "
            "(Debian: apt-get install -y busybox)",
            pytrace=False,
        )
    directory = tmp_path_factory.mktemp("applets")
    for applet in APPLETS:
        (directory / applet).symlink_to(BUSYBOX)
    return directory


@pytest.fixture
def stub_dir(tmp_path) -> Path:
    directory = tmp_path / "stubs"
    directory.mkdir()
    return directory


@pytest.fixture
def run_cgi(applet_dir, stub_dir):
    def run(script: str, **env: str) -> CgiResponse:
        clean_env = {"PATH": f"{stub_dir}:{applet_dir}", **env}
        done = subprocess.run(
            [str(BUSYBOX), "sh", str(CGI_BIN / script)],
            env=clean_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=False,
        )
        stdout = done.stdout.decode()
        headers, body = split_cgi(stdout)
        return CgiResponse(done.returncode, headers, body, done.stderr.decode())

    return run


def fixture(name: str) -> str:
    path = FIXTURES / name
    assert path.is_file(), f"missing fixture {path}"
    return str(path)


def sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def write_stub(directory: Path, name: str, cases: dict[str, str], failure: str, code: int) -> None:
    """A BusyBox-sh command that prints a fixture file for each exact argument list in `cases`.

    Any other invocation prints `failure` on stderr and exits with `code`, as the
    real tool does for an unknown device, interface or option.
    """
    lines = [f"#!{BUSYBOX} sh", 'case "$*" in']
    for args, path in cases.items():
        lines.append(f"{sh_quote(args)}) cat {sh_quote(path)} ;;")
    lines.append(f"*) echo {sh_quote(failure)} >&2; exit {code} ;;")
    lines.append("esac")
    stub = directory / name
    stub.write_text("\n".join(lines) + "\n")
    stub.chmod(0o755)


def stub_iw(directory: Path, dev: str, dumps: dict[str, str]) -> None:
    cases = {"dev": fixture(dev)}
    for iface, dump in dumps.items():
        cases[f"dev {iface} station dump"] = fixture(dump)
    write_stub(directory, "iw", cases, "command failed: No such device (-19)", 237)


def stub_uci(directory: Path, values: dict[str, str]) -> None:
    """`uci -q get KEY` prints values[KEY]; any other key is unset (exit 1, silent with -q)."""
    lines = [f"#!{BUSYBOX} sh", '[ "$1" = -q ] && shift', '[ "$1" = get ] || exit 1', 'case "$2" in']
    for key, value in values.items():
        lines.append(f"{sh_quote(key)}) echo {sh_quote(value)} ;;")
    lines += ["*) exit 1 ;;", "esac"]
    stub = directory / "uci"
    stub.write_text("\n".join(lines) + "\n")
    stub.chmod(0o755)


def stub_ubus(directory: Path, wan_status: str) -> None:
    write_stub(
        directory,
        "ubus",
        {"call network.interface.wan status": fixture(wan_status)},
        "Command failed: Not found",
        4,
    )


def stub_jsonfilter(directory: Path) -> None:
    """OpenWrt's jsonfilter, for `-s JSON -e @.KEY` only (what wan.cgi may call)."""
    stub = directory / "jsonfilter"
    stub.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "args = sys.argv[1:]\n"
        "if len(args) != 4 or args[0] != '-s' or args[2] != '-e' or not args[3].startswith('@.'):\n"
        "    sys.exit('jsonfilter stub: unexpected arguments %r' % args)\n"
        "value = json.loads(args[1]).get(args[3][2:])\n"
        "if value is None:\n"
        "    sys.exit(1)\n"
        "print(value)\n"
    )
    stub.chmod(0o755)


def assert_ok(response: CgiResponse) -> None:
    assert response.status is None, response.describe()
    assert response.headers == {"content-type": "text/plain"}, response.describe()


def assert_error(response: CgiResponse, status: str, *words: str) -> None:
    assert response.headers == {"status": status, "content-type": "text/plain"}, response.describe()
    assert response.body.startswith("error: "), response.describe()
    assert response.body.count("\n") == 1, response.describe()
    for word in words:
        assert word in response.body, response.describe()


SERVER_ERROR = "500 Internal Server Error"
UNAVAILABLE = "503 Service Unavailable"


# --- totalwifi.cgi -------------------------------------------------------------------

ONE_RADIO = [
    StationSample("3c:22:fb:12:34:56", 48217345, 1073741824, 86399),
    StationSample("a4:83:e7:01:02:03", 0, 3120, 4),
]
TWO_RADIOS = [
    # phy1-ap0: 5 GHz "Home"; rx is 2**53 + 1, which awk arithmetic would round.
    StationSample("f0:18:98:66:77:88", 9007199254740993, 21474836480, 1209600),
    StationSample("a4:83:e7:01:02:03", 2048, 4096, 12),
    # phy0-ap1: 2.4 GHz "Guest".
    StationSample("5e:1f:0a:33:44:55", 123456, 654321, 75),
    # phy0-ap0: 2.4 GHz "Home".
    StationSample("3c:22:fb:12:34:56", 48217345, 1073741824, 86399),
    StationSample("dc:a6:32:aa:bb:cc", 7340032, 15728640, 600),
]
TWO_RADIO_DUMPS = {
    "phy1-ap0": "station_dump_phy1-ap0.txt",
    "phy0-ap1": "station_dump_phy0-ap1.txt",
    "phy0-ap0": "station_dump_phy0-ap0.txt",
    "phy0-sta0": "station_dump_phy0-sta0.txt",
}


def test_totalwifi_one_radio(run_cgi, stub_dir):
    stub_iw(stub_dir, "iw_dev_one_radio.txt", {"wlan0": "station_dump_wlan0.txt"})
    response = run_cgi("totalwifi.cgi")
    assert_ok(response)
    parsed = parse_ap_stats(response.body)
    assert (parsed.items, parsed.rejected) == (ONE_RADIO, [])


def test_totalwifi_two_radios_and_several_ssids(run_cgi, stub_dir):
    stub_iw(stub_dir, "iw_dev_two_radios.txt", TWO_RADIO_DUMPS)
    response = run_cgi("totalwifi.cgi")
    assert_ok(response)
    parsed = parse_ap_stats(response.body)
    assert (parsed.items, parsed.rejected) == (TWO_RADIOS, [])


def test_totalwifi_skips_client_mode_uplink(run_cgi, stub_dir):
    """phy0-sta0 is the router's own uplink to another AP: that AP is no device of ours."""
    stub_iw(stub_dir, "iw_dev_two_radios.txt", TWO_RADIO_DUMPS)
    response = run_cgi("totalwifi.cgi")
    assert "00:11:22:33:44:55" not in response.body, response.describe()


def test_totalwifi_no_clients_is_empty_200(run_cgi, stub_dir):
    empty = "station_dump_empty.txt"
    stub_iw(stub_dir, "iw_dev_two_radios.txt", dict.fromkeys(TWO_RADIO_DUMPS, empty))
    response = run_cgi("totalwifi.cgi")
    assert_ok(response)
    assert response.body == "", response.describe()


def test_totalwifi_station_on_two_interfaces_is_listed_once(run_cgi, stub_dir):
    """A phone just roamed to 5 GHz and is still listed on 2.4 GHz: the parser rejects duplicates."""
    dumps = dict(TWO_RADIO_DUMPS, **{"phy0-ap0": "station_dump_roaming_phy0-ap0.txt"})
    stub_iw(stub_dir, "iw_dev_two_radios.txt", dumps)
    response = run_cgi("totalwifi.cgi")
    parsed = parse_ap_stats(response.body)
    assert parsed.rejected == [], response.describe()
    assert [s.mac for s in parsed.items].count("a4:83:e7:01:02:03") == 1


def test_totalwifi_without_iw_is_500(run_cgi):
    response = run_cgi("totalwifi.cgi")  # the stub directory holds no iw
    assert_error(response, SERVER_ERROR, "iw not found")


def test_totalwifi_failed_station_dump_is_503(run_cgi, stub_dir):
    dumps = {k: v for k, v in TWO_RADIO_DUMPS.items() if k != "phy0-ap1"}
    stub_iw(stub_dir, "iw_dev_two_radios.txt", dumps)
    response = run_cgi("totalwifi.cgi")
    assert_error(response, UNAVAILABLE, "phy0-ap1")


def test_totalwifi_station_without_counters_is_500(run_cgi, stub_dir):
    stub_iw(stub_dir, "iw_dev_one_radio.txt", {"wlan0": "station_dump_no_counters.txt"})
    response = run_cgi("totalwifi.cgi")
    assert_error(response, SERVER_ERROR, "3c:22:fb:12:34:56")


# --- wan.cgi ------------------------------------------------------------------------

PROC_NET_DEV = {  # tests/fixtures/router/proc_net_dev.txt: device -> (rx bytes, tx bytes)
    "pppoe-wan": (52340987654, 4123456789),
    "eth0.2": (53876543210, 4298765432),
    "eth1": (9007199254740993, 18014398509481985),
    "wan": (61234567890, 5123456789),
    "usb0": (734003200, 52428800),
    "wwan0": (1048576000, 104857600),
}


@pytest.fixture
def run_wan(run_cgi, tmp_path):
    """wan.cgi on the fixture /proc, with no config file unless one is given."""

    def run(**env: str) -> CgiResponse:
        paths = {
            "NETSTAT_PROC_NET_DEV": fixture("proc_net_dev.txt"),
            "NETSTAT_PROC_UPTIME": fixture("proc_uptime.txt"),
            "NETSTAT_CONF": str(tmp_path / "no-such.conf"),
        }
        return run_cgi("wan.cgi", **{**paths, **env})

    return run


def expected_wan(device: str) -> WanSample:
    rx, tx = PROC_NET_DEV[device]
    return WanSample(rx, tx, PROC_UPTIME_SECONDS)


def wan_sample(response: CgiResponse) -> WanSample:
    assert_ok(response)
    parsed = parse_wan_stats(response.body)
    assert parsed.rejected == [], response.describe()
    (sample,) = parsed.items
    return sample


def test_wan_from_ubus_l3_device(run_wan, stub_dir):
    """PPPoE: the counters are those of pppoe-wan, not of the Ethernet device under it."""
    stub_ubus(stub_dir, "ubus_wan_status_up.json")
    stub_uci(stub_dir, {"network.wan.device": "eth1"})
    assert wan_sample(run_wan()) == expected_wan("pppoe-wan")


def test_wan_from_ubus_with_jsonfilter(run_wan, stub_dir):
    stub_ubus(stub_dir, "ubus_wan_status_up.json")
    stub_jsonfilter(stub_dir)
    assert wan_sample(run_wan()) == expected_wan("pppoe-wan")


def test_wan_from_ubus_device_when_no_l3_device(run_wan, stub_dir):
    stub_ubus(stub_dir, "ubus_wan_status_down.json")
    stub_uci(stub_dir, {"network.wan.device": "eth1"})
    assert wan_sample(run_wan()) == expected_wan("eth0.2")


def test_wan_from_uci_device(run_wan, stub_dir):
    """No ubus at all; uci's device wins over the older ifname option. Counters past 2**53 stay exact."""
    stub_uci(stub_dir, {"network.wan.device": "eth1", "network.wan.ifname": "eth0.2"})
    assert wan_sample(run_wan()) == expected_wan("eth1")


def test_wan_from_uci_ifname(run_wan, stub_dir):
    """ubus knows no wan interface; OpenWrt 19.07's network.wan.ifname is used."""
    write_stub(stub_dir, "ubus", {}, "Command failed: Not found", 4)
    stub_uci(stub_dir, {"network.wan.ifname": "eth0.2"})
    assert wan_sample(run_wan()) == expected_wan("eth0.2")


def test_wan_from_wan_device_environment(run_wan, stub_dir):
    stub_ubus(stub_dir, "ubus_wan_status_up.json")
    assert wan_sample(run_wan(WAN_DEVICE="usb0")) == expected_wan("usb0")


def test_wan_from_config_file(run_wan, stub_dir):
    stub_ubus(stub_dir, "ubus_wan_status_up.json")
    assert wan_sample(run_wan(NETSTAT_CONF=fixture("netstat-collect.conf"))) == expected_wan("wwan0")


def test_wan_environment_beats_config_file(run_wan):
    response = run_wan(WAN_DEVICE="usb0", NETSTAT_CONF=fixture("netstat-collect.conf"))
    assert wan_sample(response) == expected_wan("usb0")


def test_wan_falls_back_to_device_named_wan(run_wan):
    """No setting, no ubus, no uci: a DSA router's port literally named wan."""
    assert wan_sample(run_wan()) == expected_wan("wan")


def test_wan_missing_device_is_500(run_wan):
    response = run_wan(NETSTAT_PROC_NET_DEV=fixture("proc_net_dev_no_wan.txt"))
    assert_error(response, SERVER_ERROR, "no WAN device found", "WAN_DEVICE")


def test_wan_configured_device_not_in_proc_is_500(run_wan, stub_dir):
    """pppoe-wan is gone while PPPoE redials: say so, and do not switch to other counters."""
    stub_ubus(stub_dir, "ubus_wan_status_up.json")
    response = run_wan(NETSTAT_PROC_NET_DEV=fixture("proc_net_dev_no_wan.txt"))
    assert_error(response, SERVER_ERROR, "pppoe-wan", "l3_device")


def test_wan_missing_uptime_is_500(run_wan, tmp_path):
    response = run_wan(NETSTAT_PROC_UPTIME=str(tmp_path / "no-uptime"))
    assert_error(response, SERVER_ERROR, "uptime")


def test_wan_error_body_is_a_parse_error_for_the_collector(run_wan):
    """Belt and braces: if the status were lost, the parser still refuses the error text."""
    response = run_wan(NETSTAT_PROC_NET_DEV=fixture("proc_net_dev_no_wan.txt"))
    with pytest.raises(ParseError):
        parse_wan_stats(response.body)


# --- dhcp.cgi -----------------------------------------------------------------------

LEASES = [  # tests/fixtures/router/dhcp.leases
    Lease("3c:22:fb:12:34:56", "192.168.1.120", "MacBook-Air", "01:3c:22:fb:12:34:56", 1716990000),
    Lease("dc:a6:32:aa:bb:cc", "192.168.1.135", "raspberrypi", "", 1716993600),
    Lease("5e:1f:0a:33:44:55", "192.168.1.142", "", "01:5e:1f:0a:33:44:55", 1716987000),
    Lease("f0:18:98:66:77:88", "192.168.1.10", "", "", 0),
]


def test_dhcp_leases(run_cgi):
    response = run_cgi("dhcp.cgi", NETSTAT_LEASE_FILE=fixture("dhcp.leases"))
    assert_ok(response)
    parsed = parse_dhcp_leases(response.body)
    # ignored: the duid line and the DHCPv6 lease.
    assert (parsed.items, parsed.rejected, parsed.ignored) == (LEASES, [], 2)


def test_dhcp_body_is_the_lease_file_unchanged(run_cgi):
    response = run_cgi("dhcp.cgi", NETSTAT_LEASE_FILE=fixture("dhcp.leases"))
    assert response.body == Path(fixture("dhcp.leases")).read_text()


def test_dhcp_lease_file_from_uci(run_cgi, stub_dir):
    stub_uci(stub_dir, {"dhcp.@dnsmasq[0].leasefile": fixture("dhcp.leases")})
    response = run_cgi("dhcp.cgi")
    assert_ok(response)
    assert parse_dhcp_leases(response.body).items == LEASES


def test_dhcp_empty_lease_file_is_empty_200(run_cgi):
    response = run_cgi("dhcp.cgi", NETSTAT_LEASE_FILE=fixture("dhcp_empty.leases"))
    assert_ok(response)
    assert response.body == ""


def test_dhcp_missing_lease_file_is_500(run_cgi, tmp_path):
    missing = str(tmp_path / "dhcp.leases")
    response = run_cgi("dhcp.cgi", NETSTAT_LEASE_FILE=missing)
    assert_error(response, SERVER_ERROR, missing)
