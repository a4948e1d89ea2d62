"""A simulated uhttpd /ubus (JSON-RPC 2.0) answering from a Fleet's routers, built to OpenWrt's
sources: rpcd's session login and its 300 s sessions, uhttpd's -32002 for an expired session and
for a call the login's ACL does not grant, -32000 for an object no package provides, batches,
rpcd-mod-iwinfo's assoclist (and, for a router with `counter_bits=32`, rpcd before 2023, whose
byte counters JSON shows as signed 32-bit numbers), netifd's interface and device status,
procd's system info and rpcd-mod-luci's leases.

Faults come from a table (FAULTS): each names how the answer to one call changes.
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collector.sim.routers import Fleet, SimRouter

USERNAME = "netstat"
PASSWORD = "sim-ubus-password"
SESSION_SECONDS = 300
RADIOS = ("phy0-ap0", "phy1-ap0")
WAN_DEVICE = "pppoe-wan"
ERROR_ACCESS_DENIED = {"code": -32002, "message": "Access denied"}
ERROR_NOT_FOUND = {"code": -32000, "message": "Object not found"}
STATUS_PERMISSION_DENIED = 6
STATUS_NOT_FOUND = 4

# Faults of the "ubus" endpoint, beyond the HTTP ones every endpoint has.
FAULTS = (
    "ubus-expire",  # a session expires before its first call; the next login's does not
    "ubus-acl",  # the login's ACL grants no iwinfo call: -32002 even after a fresh login
    "ubus-no-luci",  # rpcd-mod-luci not installed: luci-rpc is -32000
    "ubus-stale",  # a station is also listed on the other radio, left over while it moved
    "ubus-bad-entry",  # one assoclist entry has no byte counters: a rejected entry
)


def _signed_32(value: int) -> int:
    value %= 2**32
    return value - 2**32 if value >= 2**31 else value


def radio_of(mac: str) -> str:
    return RADIOS[int(mac[-2:], 16) % len(RADIOS)]


class UbusSim:
    """The sessions of every simulated router; `answer` handles one POST body."""

    def __init__(self, fleet: Fleet):
        self.fleet = fleet
        self.sessions: dict[str, tuple[str, str, float]] = {}  # id -> router, user, expires
        self.doomed: dict[str, bool] = {}  # router -> its last session was made expired

    def answer(self, router: SimRouter, raw: bytes) -> bytes:
        try:
            document = json.loads(raw)
        except ValueError:
            return json.dumps({"jsonrpc": "2.0", "id": None,
                               "error": {"code": -32700, "message": "Parse error"}}).encode()
        if isinstance(document, list):
            return json.dumps([self._one(router, m) for m in document]).encode()
        return json.dumps(self._one(router, document)).encode()

    def _one(self, router: SimRouter, message: dict) -> dict:
        number = message.get("id") if isinstance(message, dict) else None
        params = message.get("params") if isinstance(message, dict) else None
        if not isinstance(params, list) or len(params) != 4 or not isinstance(params[3], dict):
            return {"jsonrpc": "2.0", "id": number, "error": {"code": -32602, "message": "Invalid params"}}
        session, obj, method, args = params
        reply = self._call(router, session, obj, method, args)
        if isinstance(reply, dict) and "code" in reply:
            return {"jsonrpc": "2.0", "id": number, "error": reply}
        return {"jsonrpc": "2.0", "id": number, "result": reply}

    def _call(self, router: SimRouter, session: str, obj: str, method: str, args: dict):
        fleet = self.fleet
        fault = router.faults.get("ubus", "ok")
        if (obj, method) == ("session", "login"):
            if args.get("username") != USERNAME or args.get("password") != router.ubus_password:
                return [STATUS_PERMISSION_DENIED]
            sid = secrets.token_hex(16)
            expired = fault == "ubus-expire" and not self.doomed.get(router.key, False)
            self.doomed[router.key] = expired
            expires = fleet.now - 1 if expired else fleet.now + SESSION_SECONDS
            self.sessions[sid] = (router.key, USERNAME, expires)
            return [0, {"ubus_rpc_session": sid, "timeout": SESSION_SECONDS, "expires": SESSION_SECONDS,
                        "acls": {}, "data": {"username": USERNAME}}]
        known = self.sessions.get(session)
        if known is None or known[0] != router.key or known[2] < fleet.now:
            return ERROR_ACCESS_DENIED
        self.sessions[session] = (known[0], known[1], fleet.now + SESSION_SECONDS)  # used: renewed
        if fault == "ubus-acl" and obj == "iwinfo":
            return ERROR_ACCESS_DENIED
        if fault == "ubus-no-luci" and obj == "luci-rpc":
            return ERROR_NOT_FOUND
        handler = _CALLS.get((obj, method))
        if handler is None:
            return ERROR_NOT_FOUND
        return handler(fleet, router, args)


def _devices(fleet: Fleet, router: SimRouter, args: dict):
    return [0, {"devices": list(RADIOS)}] if router.has_ap else [0, {"devices": []}]


def _entry(router: SimRouter, mac: str, rx: int, tx: int, connected: int) -> dict:
    count = _signed_32 if router.counter_bits == 32 else (lambda v: v % 2**64)
    return {"mac": mac.upper(), "signal": -52, "signal_avg": -51, "noise": -95, "inactive": 120,
            "connected_time": connected, "thr": 390000, "authorized": True, "authenticated": True,
            "preamble": "short", "wme": True, "mfp": False, "tdls": False,
            "rx": {"drop_misc": 0, "packets": rx // 1000, "bytes": count(rx), "ht": False, "vht": True,
                   "mhz": 80, "rate": 866700, "mcs": 9, "40mhz": False, "short_gi": True, "nss": 2},
            "tx": {"failed": 0, "retries": 3, "packets": tx // 1000, "bytes": count(tx), "ht": False,
                   "vht": True, "mhz": 80, "rate": 780000, "mcs": 8, "40mhz": False,
                   "short_gi": True, "nss": 2}}


def _assoclist(fleet: Fleet, router: SimRouter, args: dict):
    device = args.get("device")
    if device not in RADIOS or not router.has_ap:
        return [STATUS_NOT_FOUND]
    fault = router.faults.get("ubus", "ok")
    now = fleet.now
    results = [_entry(router, s.mac, s.rx_bytes, s.tx_bytes, int(now - s.associated_at))
               for s in router.stations.values() if radio_of(s.mac) == device]
    stations = list(router.stations.values())
    if fault == "ubus-stale" and stations and radio_of(stations[0].mac) != device:
        # Left over on the radio it moved from: older, with the counters of that association.
        results.append(_entry(router, stations[0].mac, 1, 1, int(now - stations[0].associated_at) + 600))
    if fault == "ubus-bad-entry" and results and device == RADIOS[0]:
        results[0] = {**results[0], "rx": {"packets": 1}}
    return [0, {"results": results}]


def _interface_wan(fleet: Fleet, router: SimRouter, args: dict):
    if not router.has_wan:
        return ERROR_NOT_FOUND  # no interface called wan on an access point
    return [0, {"up": True, "pending": False, "available": True, "autostart": True,
                "uptime": int(fleet.now - router.booted_at), "l3_device": WAN_DEVICE,
                "proto": "pppoe", "device": "wan", "metric": 0}]


def _device_status(fleet: Fleet, router: SimRouter, args: dict):
    if args.get("name") != WAN_DEVICE or not router.has_wan:
        return [STATUS_NOT_FOUND]
    return [0, {"external": False, "present": True, "type": "Network device", "up": True,
                "statistics": {"collisions": 0, "rx_frame_errors": 0, "tx_compressed": 0,
                               "multicast": 0, "rx_bytes": router.wan_rx % 2**64,
                               "tx_bytes": router.wan_tx % 2**64, "rx_packets": router.wan_rx // 1400,
                               "tx_packets": router.wan_tx // 1400}}]


def _system_info(fleet: Fleet, router: SimRouter, args: dict):
    return [0, {"localtime": int(fleet.now), "uptime": int(fleet.now - router.booted_at),
                "load": [1024, 2048, 512], "memory": {"total": 262144000, "free": 131072000}}]


def _leases(fleet: Fleet, router: SimRouter, args: dict):
    leases = []
    for mac, (ip, host, _client_id) in router.leases.items():
        lease = {"expires": 43200, "macaddr": mac.upper(), "ipaddr": ip}
        if host:
            lease["hostname"] = host  # rpcd-mod-luci leaves it out for an unnamed client
        leases.append(lease)
    return [0, {"dhcp_leases": leases}]


_CALLS = {
    ("iwinfo", "devices"): _devices,
    ("iwinfo", "assoclist"): _assoclist,
    ("network.interface.wan", "status"): _interface_wan,
    ("network.device", "status"): _device_status,
    ("system", "info"): _system_info,
    ("luci-rpc", "getDHCPLeases"): _leases,
}
