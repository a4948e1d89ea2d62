"""The ubus and exporter readers alone (pure): the formats' quirks, as properties where it pays,
and the ACL file we ship, which must grant exactly the calls the collector makes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import REPO

from collector import exporter, ubus
from collector.errors import FetchError, ParseError

MACS = st.lists(st.integers(0, 2**48 - 1), min_size=1, max_size=6, unique=True).map(
    lambda ns: [":".join(f"{n >> s & 0xff:02x}" for s in range(40, -1, -8)) for n in ns])
# SSIDs as the exporter prints them: unescaped, so `"` and `,` and `}` and spaces included.
SSIDS = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=32)
COUNTERS = st.integers(0, 2**63 - 1)


def exporter_text(stations, ssid, rng, omit_zero=False) -> str:
    names = (exporter.STATION_RX, exporter.STATION_TX, exporter.STATION_CONNECTED)
    lines = [f"# TYPE {n} counter" for n in names]
    for mac, values in stations.items():
        for name, value in zip(names, values, strict=True):
            if omit_zero and value == 0:
                continue
            labels = [("vif", "phy0-ap0"), ("ssid", ssid), ("bssid", "02:00:00:00:00:ff"),
                      ("channel", "36"), ("station", mac)]
            rng.shuffle(labels)
            lines.append(name + "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "} " + str(value))
    rng.shuffle(lines)  # TYPE lines anywhere, samples in any order
    return "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None)
@given(MACS, st.data(), SSIDS, st.booleans(), st.randoms(use_true_random=False))
def test_exporter_stations_whatever_the_label_order_ssid_and_zeros(macs, data, ssid, omit_zero, rng):
    stations = {mac: (data.draw(COUNTERS), data.draw(COUNTERS), data.draw(st.integers(0, 10**7)))
                for mac in macs}
    parsed = exporter.stations_of(exporter.parse_metrics(exporter_text(stations, ssid, rng, omit_zero)))
    if '",' in ssid and "=" in ssid:
        # An SSID that may look like a label: its lines are rejected or read right, never misread.
        assert {s.mac for s in parsed.items} <= set(macs)
    else:
        assert parsed.rejected_count == 0
        got = {s.mac: (s.rx_bytes, s.tx_bytes, s.connected_seconds) for s in parsed.items}
        assert got == stations


def test_exporter_counters_lua_printed_in_exponent_form_are_read_as_integers():
    text = ('# TYPE hostapd_station_receive_bytes_total counter\n'
            'hostapd_station_receive_bytes_total{station="02:00:00:00:00:01",vif="w"} 1.2345678901234e+14\n'
            'hostapd_station_transmit_bytes_total{station="02:00:00:00:00:01",vif="w"} 7\n'
            'hostapd_station_transmit_bytes_total{station="02:00:00:00:00:02",vif="w"} 1.5\n')
    parsed = exporter.stations_of(exporter.parse_metrics(text))
    assert [(s.mac, s.rx_bytes) for s in parsed.items] == [("02:00:00:00:00:01", 123456789012340)]
    assert parsed.rejected_count == 1  # 1.5 bytes


def test_exporter_same_station_on_two_interfaces_keeps_the_current_association():
    def lines(vif, rx, seconds):
        return (f'hostapd_station_receive_bytes_total{{vif="{vif}",station="02:00:00:00:00:01"}} {rx}\n'
                f'hostapd_station_transmit_bytes_total{{station="02:00:00:00:00:01",vif="{vif}"}} {rx}\n'
                f'hostapd_station_connected_seconds_total{{vif="{vif}",station="02:00:00:00:00:01"}} '
                f'{seconds}\n')
    parsed = exporter.stations_of(exporter.parse_metrics(lines("a", 999, 5000) + lines("b", 10, 30)))
    assert [(s.rx_bytes, s.connected_seconds) for s in parsed.items] == [(10, 30)]


def test_exporter_wan_and_uptime():
    text = ('node_network_receive_bytes_total{device="pppoe-wan"} 1000\n'
            '# TYPE node_network_transmit_bytes_total counter\n'
            'node_time_seconds 1700000100.75\nnode_boot_time_seconds 1700000000\n')
    wan = exporter.wan_of(exporter.parse_metrics(text), "pppoe-wan").items[0]
    assert (wan.rx_bytes, wan.tx_bytes, wan.uptime_seconds) == (1000, 0, 100)  # tx: omitted zero
    with pytest.raises(ParseError, match="no netdev counters for device 'eth1'"):
        exporter.wan_of(exporter.parse_metrics(text), "eth1")


@given(st.integers(-(2**31), 2**31 - 1))
def test_ubus_signed_32bit_counters_read_modulo_2_32(printed):
    value, signed = ubus._byte_count(printed)
    assert value == printed % 2**32 and signed == (printed < 0)


class FakeUbus:
    """Answers POSTed documents from a table of (object, method) -> reply; counts round trips."""

    def __init__(self, replies, expire_first=False):
        self.replies = replies
        self.posts = []
        self.expire_first = expire_first

    def __call__(self, document):
        self.posts.append(document)
        if isinstance(document, dict):
            return json.dumps({"jsonrpc": "2.0", "id": 1,
                               "result": [0, {"ubus_rpc_session": "a" * 32, "timeout": 300}]}).encode()
        answers = []
        for message in document:
            _, obj, method, args = message["params"]
            reply = self.replies[(obj, method)]
            if self.expire_first:
                reply = {"error": {"code": -32002, "message": "Access denied"}}
            answers.append({"jsonrpc": "2.0", "id": message["id"], **reply})
        self.expire_first = False
        return json.dumps(answers).encode()


def replies_table():
    station = {"mac": "AA:BB:CC:DD:EE:01", "connected_time": 60, "rx": {"bytes": 5}, "tx": {"bytes": 6}}
    return {
        ("iwinfo", "devices"): {"result": [0, {"devices": ["phy0-ap0", "phy1-ap0"]}]},
        ("iwinfo", "assoclist"): {"result": [0, {"results": [station]}]},
        ("system", "info"): {"result": [0, {"uptime": 42}]},
        ("network.interface.wan", "status"): {"result": [0, {"l3_device": "pppoe-wan"}]},
        ("network.device", "status"): {"result": [0, {"statistics": {"rx_bytes": 1, "tx_bytes": 2}}]},
        ("luci-rpc", "getDHCPLeases"): {"result": [0, {"dhcp_leases": [
            {"expires": False, "macaddr": "AA:BB:CC:DD:EE:01", "ipaddr": "192.0.2.5"}]}]},
    }


def test_ubus_conversation_is_a_login_and_two_batches_with_every_call_the_acl_grants():
    post = FakeUbus(replies_table())
    replies = ubus.converse(post, ubus.Plan("netstat", "pw", wan=True, wan_device="", dhcp=True))
    assert len(post.posts) == 3
    made = {(m["params"][1], m["params"][2]) for batch in post.posts[1:] for m in batch}
    acl = json.loads((REPO / "router/acl.d/netstat.json").read_text())
    granted = {(obj, method) for obj, methods in acl["netstat"]["read"]["ubus"].items()
               for method in methods}
    assert made == granted == set(ubus.CALLS)
    assert all(isinstance(m["params"][3], dict) for batch in post.posts[1:] for m in batch)
    stations = ubus.read_stations(replies)
    # The same MAC on both radios: one station.
    got = [(s.mac, s.rx_bytes, s.connected_seconds) for s in stations.items]
    assert got == [("aa:bb:cc:dd:ee:01", 5, 60)]
    assert ubus.read_wan(replies).items[0].uptime_seconds == 42
    assert ubus.read_leases(replies, 1000.0).items[0].expires_at == 0  # false: infinite


def test_ubus_expired_session_logs_in_again_once():
    post = FakeUbus(replies_table(), expire_first=True)
    replies = ubus.converse(post, ubus.Plan("netstat", "pw", wan=False, wan_device="", dhcp=False))
    assert [isinstance(p, dict) for p in post.posts] == [True, False, True, False, False]
    assert ubus.read_stations(replies).items


def test_ubus_refused_login_names_the_fix_and_never_the_password():
    def post(document):
        return b'{"jsonrpc":"2.0","id":1,"result":[6]}'
    with pytest.raises(FetchError) as refused:
        ubus.converse(post, ubus.Plan("netstat", "s3cret-pw", wan=False, wan_device="", dhcp=False))
    assert "config login" in str(refused.value) and "s3cret-pw" not in str(refused.value)
    assert "s3cret-pw" not in repr(ubus.Plan("netstat", "s3cret-pw", wan=False, wan_device="", dhcp=False))


@pytest.mark.parametrize("body", [b"<html>login</html>", b"[1, 2", b'{"jsonrpc": "2.0"}', b"[]"])
def test_ubus_answers_of_the_wrong_shape_fail_clearly(body):
    calls = []

    def post(document):
        calls.append(document)
        return body if len(calls) > 1 else json.dumps(
            {"jsonrpc": "2.0", "id": 1, "result": [0, {"ubus_rpc_session": "b" * 32}]}).encode()
    try:
        replies = ubus.converse(post, ubus.Plan("u", "p", wan=False, wan_device="", dhcp=False))
    except FetchError as e:
        assert "not JSON" in str(e)
        return
    with pytest.raises(ParseError):
        ubus.read_stations(replies)
