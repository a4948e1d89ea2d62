"""Reading a stock OpenWrt router through ubus over HTTP (uhttpd-mod-ubus, LuCI's JSON-RPC).

No I/O of its own: `converse` drives the conversation through a `post` function it is given
(collector/fetch.py supplies one with the deadline and size cap), and `read_answers` turns the
replies into the same samples as the CGI scripts give. Built to OpenWrt's sources:

- `POST /ubus` with JSON-RPC 2.0; a call is `["<session>", object, method, {args}]`. Its answer
  is `"result": [0, {...}]`, or `"result": [N]` with a ubus status (6: permission denied), or a
  JSON-RPC `"error"` (-32002: access denied, which is also what an expired session gets;
  -32000: object not found, a package missing).
- Login: `session login {"username", "password"}` in the null session answers
  `ubus_rpc_session`; it lasts `timeout` seconds (300) from its last use.
- A batch (a JSON array of calls) answers an array, one reply per call, matched by `id`.

A router costs three round trips: the login; the radio list, WAN interface, uptime and leases;
then every radio's station list and the WAN device's counters, which need the first batch.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from collector.errors import FetchError, ParseError
from collector.parse import (
    MAX_COUNTER,
    Lease,
    Parsed,
    StationSample,
    WanSample,
    normalise_mac,
    reject_entry,
)

NULL_SESSION = "0" * 32
STATUS_OK = 0
STATUS_PERMISSION_DENIED = 6
ERROR_ACCESS_DENIED = -32002  # also what an expired or unknown session gets
ERROR_NOT_FOUND = -32000
WRAP_32 = 2**32
# ubus status codes (libubus's enum ubus_msg_status), for messages.
STATUS_NAMES = {
    1: "invalid command", 2: "invalid argument", 3: "method not found", 4: "not found",
    5: "no data", 6: "permission denied", 7: "timeout", 8: "not supported", 9: "unknown error",
    10: "connection failed",
}
# What to fix, by the package that provides an object: -32000 means it is not installed.
PACKAGE_OF = {"iwinfo": "rpcd-mod-iwinfo", "luci-rpc": "rpcd-mod-luci", "system": "procd",
              "network.interface.wan": "netifd", "network.device": "netifd"}
PERMISSION_FIX = ("the login's ACL does not grant this call: install "
                  "/usr/share/rpcd/acl.d/netstat.json (router/README.md) and restart rpcd")

# The calls the collector makes, (object, method): router/acl.d/netstat.json grants exactly these.
CALLS = (
    ("iwinfo", "devices"),
    ("iwinfo", "assoclist"),
    ("system", "info"),
    ("network.interface.wan", "status"),
    ("network.device", "status"),
    ("luci-rpc", "getDHCPLeases"),
)

Post = Callable[[Any], bytes]  # sends one JSON document (a call or a batch), returns the answer


@dataclass(frozen=True)
class Plan:
    """What to ask one router for: its login and which endpoints it serves."""

    username: str
    password: str = field(repr=False)
    wan: bool
    wan_device: str  # "" to discover it from network.interface.wan
    dhcp: bool


@dataclass(frozen=True)
class Reply:
    """One call's outcome: its data, or why there is none."""

    data: dict | None
    error: str = ""


@dataclass
class Replies:
    """Every reply of a conversation, by call: ("iwinfo", "assoclist", "phy0-ap0") and so on."""

    calls: dict[tuple, Reply] = field(default_factory=dict)
    devices: list[str] = field(default_factory=list)  # the radios' interfaces, in order
    wan_device: str = ""
    logins: int = 0


def call(session: str, number: int, obj: str, method: str, args: dict | None = None) -> dict:
    """One JSON-RPC call object; the args object is required by uhttpd, `{}` when empty."""
    return {"jsonrpc": "2.0", "id": number, "method": "call",
            "params": [session, obj, method, args or {}]}


def login_call(username: str, password: str) -> dict:
    return call(NULL_SESSION, 1, "session", "login", {"username": username, "password": password})


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise FetchError("answer is not JSON: is this URL uhttpd's /ubus?") from None


def _status_text(status: Any) -> str:
    name = STATUS_NAMES.get(status, "unknown status") if isinstance(status, int) else "no status"
    return f"ubus status {status} ({name})"


def reply_of(message: Any, obj: str = "") -> Reply:
    """One JSON-RPC reply object as a Reply: its data, or a message saying what to fix."""
    if not isinstance(message, dict):
        return Reply(None, "reply is not a JSON object")
    if "error" in message:
        error = message["error"]
        code = error.get("code") if isinstance(error, dict) else None
        if code == ERROR_ACCESS_DENIED:
            return Reply(None, "access denied (-32002): session expired or call not granted")
        if code == ERROR_NOT_FOUND:
            package = PACKAGE_OF.get(obj, "")
            hint = f": is {package} installed?" if package else ""
            return Reply(None, f"ubus object {obj} not found (-32000){hint}")
        return Reply(None, f"JSON-RPC error {code}")
    result = message.get("result")
    if not isinstance(result, list) or not result or not isinstance(result[0], int):
        return Reply(None, "reply has no [status, data] result")
    if result[0] == STATUS_PERMISSION_DENIED:
        return Reply(None, f"permission denied (ubus status 6): {PERMISSION_FIX}")
    if result[0] != STATUS_OK:
        return Reply(None, _status_text(result[0]))
    data = result[1] if len(result) > 1 else {}
    if not isinstance(data, dict):
        return Reply(None, "reply data is not a JSON object")
    return Reply(data)


def _expired(reply: Reply) -> bool:
    return reply.error.startswith("access denied (-32002)")


def login(post: Post, plan: Plan) -> str:
    """A session id; FetchError saying what to fix when the login is refused."""
    reply = reply_of(_decode(post(login_call(plan.username, plan.password))), "session")
    if reply.data is None:
        if "permission denied" in reply.error or _expired(reply):
            raise FetchError(
                f"login as {plan.username!r} refused: wrong username or password, or no "
                "`config login` for it in /etc/config/rpcd (router/README.md)")
        raise FetchError(f"login failed: {reply.error}")
    session = reply.data.get("ubus_rpc_session")
    if not isinstance(session, str) or not session:
        raise FetchError("login answer has no ubus_rpc_session")
    return session


def _batch(post: Post, session: str, wanted: list[tuple]) -> list[Reply]:
    """One batch: a reply per wanted (object, method, args); a missing reply is an error."""
    messages = [call(session, number, obj, method, args)
                for number, (obj, method, args) in enumerate(wanted, 1)]
    answer = _decode(post(messages))
    if not isinstance(answer, list):
        # uhttpd answers a batch with an array; a single object is a refusal of the whole batch.
        return [reply_of(answer, obj) for obj, _, _ in wanted]
    by_id = {m.get("id"): m for m in answer if isinstance(m, dict)}
    return [reply_of(by_id.get(number), obj) if number in by_id else Reply(None, "no reply")
            for number, (obj, _, _) in enumerate(wanted, 1)]


def _calls(post: Post, plan: Plan, replies: Replies, session: list[str],
           wanted: list[tuple], keys: list[tuple]) -> None:
    """Run one batch; on an expired session log in again once and run it again."""
    if not wanted:
        return
    outcome = _batch(post, session[0], wanted)
    if any(_expired(r) for r in outcome) and replies.logins < 2:
        session[0] = login(post, plan)
        replies.logins += 1
        outcome = _batch(post, session[0], wanted)
    if replies.logins >= 2:
        # uhttpd answers -32002 both for an expired session and for a call the login's ACL
        # does not grant; after a fresh login only the second remains.
        outcome = [Reply(None, f"access denied (-32002) even after a fresh login: {PERMISSION_FIX}")
                   if _expired(r) else r for r in outcome]
    replies.calls.update(zip(keys, outcome, strict=True))


def converse(post: Post, plan: Plan) -> Replies:
    """Log in and ask for everything the plan needs, in as few round trips as it allows.

    Raises FetchError when the router cannot be talked to at all (login refused, not JSON);
    a call that fails alone is recorded in its Reply and fails only what needs it.
    """
    replies = Replies()
    session = [login(post, plan)]
    replies.logins = 1
    first: list[tuple] = [("iwinfo", "devices", {})]
    if plan.wan:
        first.append(("system", "info", {}))
        if not plan.wan_device:
            first.append(("network.interface.wan", "status", {}))
    if plan.dhcp:
        first.append(("luci-rpc", "getDHCPLeases", {"family": 4}))
    _calls(post, plan, replies, session, first, [(o, m) for o, m, _ in first])

    devices = replies.calls[("iwinfo", "devices")].data
    if devices is not None:
        listed = devices.get("devices")
        if isinstance(listed, list):
            replies.devices = [d for d in listed if isinstance(d, str)]
        else:
            replies.calls[("iwinfo", "devices")] = Reply(None, "no `devices` list")
    replies.wan_device = plan.wan_device
    if plan.wan and not plan.wan_device:
        status = replies.calls[("network.interface.wan", "status")].data or {}
        device = status.get("l3_device") or status.get("device")
        replies.wan_device = device if isinstance(device, str) else ""

    second = [("iwinfo", "assoclist", {"device": d}) for d in replies.devices]
    keys = [("iwinfo", "assoclist", d) for d in replies.devices]
    if plan.wan and replies.wan_device:
        second.append(("network.device", "status", {"name": replies.wan_device}))
        keys.append(("network.device", "status"))
    _calls(post, plan, replies, session, second, keys)
    for key in keys[:len(replies.devices)]:
        replies.calls[key] = _slim(replies.calls[key])
    return replies


def _slim(reply: Reply) -> Reply:
    """An assoclist reply with only what is read of each station: a fleet's replies are all held
    until the run parses them, and iwinfo sends some thirty fields per station."""
    results = reply.data.get("results") if reply.data is not None else None
    if not isinstance(results, list):
        return reply
    kept = []
    for entry in results:
        if isinstance(entry, dict):
            entry = {k: ({"bytes": v.get("bytes")} if k in ("rx", "tx") and isinstance(v, dict) else v)
                     for k, v in entry.items() if k in ("mac", "connected_time", "rx", "tx")}
        kept.append(entry)
    return Reply({"results": kept})


# --- From replies to samples (pure) ---------------------------------------------------------


def _byte_count(value: Any) -> tuple[int | None, bool]:
    """A byte counter as rpcd printed it: (value, printed as signed 32-bit).

    rpcd before 2023 put iwinfo's counters in as 32-bit integers, which JSON shows signed:
    a negative number is such a counter past 2 GiB, read modulo 2^32.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        return None, False
    if value < 0:
        return (value % WRAP_32, True) if value >= -(2**31) else (None, False)
    return (value, False) if value <= MAX_COUNTER else (None, False)


def read_stations(replies: Replies) -> Parsed[StationSample]:
    """Every radio's stations as one answer; ParseError when none could be read.

    A radio whose list failed is a rejected entry: the answer is not complete (rule 3). A MAC
    listed on two radios at once (a stale entry left while it moves) is one station: the
    entry with the shortest connected_time, its current association, is kept.
    """
    devices_reply = replies.calls.get(("iwinfo", "devices"), Reply(None, "not asked"))
    if devices_reply.data is None:
        raise ParseError(f"iwinfo devices: {devices_reply.error}")
    parsed: Parsed[StationSample] = Parsed()
    kept: dict[str, StationSample] = {}
    lists_read = 0
    for device in replies.devices:
        reply = replies.calls.get(("iwinfo", "assoclist", device), Reply(None, "no reply"))
        results = reply.data.get("results") if reply.data is not None else None
        if not isinstance(results, list):
            reject_entry(parsed, device, "", reply.error or "no `results` list")
            continue
        lists_read += 1
        for number, entry in enumerate(results, 1):
            station = _station(parsed, f"{device} #{number}", entry)
            if station is None:
                continue
            old = kept.get(station.mac)
            if old is None or _newer(station, old):
                kept[station.mac] = station
    if replies.devices and not lists_read:
        raise ParseError(f"no radio's station list could be read, first: {parsed.rejected[0]}")
    parsed.items = list(kept.values())
    return parsed


def _newer(station: StationSample, old: StationSample) -> bool:
    if station.connected_seconds is None:
        return False
    return old.connected_seconds is None or station.connected_seconds < old.connected_seconds


def _station(parsed: Parsed, where: str, entry: Any) -> StationSample | None:
    if not isinstance(entry, dict):
        reject_entry(parsed, where, repr(entry), "not a JSON object")
        return None
    mac = normalise_mac(entry.get("mac")) if isinstance(entry.get("mac"), str) else None
    if mac is None:
        reject_entry(parsed, where, repr(entry.get("mac")), "bad MAC address")
        return None
    rx = entry.get("rx") if isinstance(entry.get("rx"), dict) else {}
    tx = entry.get("tx") if isinstance(entry.get("tx"), dict) else {}
    (rx_bytes, rx_signed), (tx_bytes, tx_signed) = _byte_count(rx.get("bytes")), _byte_count(tx.get("bytes"))
    if rx_bytes is None or tx_bytes is None:
        reject_entry(parsed, where, mac, "rx.bytes and tx.bytes must be integers")
        return None
    connected = entry.get("connected_time")
    if isinstance(connected, bool) or not isinstance(connected, int) or connected < 0:
        connected = None
    parsed.signed_32bit = parsed.signed_32bit or rx_signed or tx_signed
    return StationSample(mac, rx_bytes, tx_bytes, connected)


def read_wan(replies: Replies) -> Parsed[WanSample]:
    """The WAN device's counters and the uptime; ParseError when the counters are missing."""
    if not replies.wan_device:
        status = replies.calls.get(("network.interface.wan", "status"), Reply(None, "not asked"))
        raise ParseError(f"network.interface.wan status: {status.error}" if status.data is None
                         else "interface wan has no l3_device (is it up?); set wan_device")
    reply = replies.calls.get(("network.device", "status"), Reply(None, "not asked"))
    if reply.data is None:
        raise ParseError(f"network.device status {replies.wan_device}: {reply.error}")
    statistics = reply.data.get("statistics")
    statistics = statistics if isinstance(statistics, dict) else {}
    rx, tx = statistics.get("rx_bytes"), statistics.get("tx_bytes")
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_COUNTER
               for v in (rx, tx)):
        raise ParseError(f"network.device status {replies.wan_device}: no statistics.rx_bytes "
                         "and tx_bytes")
    parsed: Parsed[WanSample] = Parsed()
    info = replies.calls.get(("system", "info"), Reply(None, "not asked"))
    uptime = info.data.get("uptime") if info.data is not None else None
    if isinstance(uptime, bool) or not isinstance(uptime, int) or uptime < 0:
        uptime = None
        reject_entry(parsed, "system info", "", info.error or "no `uptime`")
    parsed.items.append(WanSample(rx, tx, uptime))
    return parsed


def read_leases(replies: Replies, at: float) -> Parsed[Lease]:
    """luci-rpc's leases as dhcp.cgi's rows: seconds left become a unix time, false infinite."""
    reply = replies.calls.get(("luci-rpc", "getDHCPLeases"), Reply(None, "not asked"))
    leases = reply.data.get("dhcp_leases") if reply.data is not None else None
    if not isinstance(leases, list):
        raise ParseError(f"luci-rpc getDHCPLeases: {reply.error or 'no `dhcp_leases` list'}")
    parsed: Parsed[Lease] = Parsed()
    for number, entry in enumerate(leases, 1):
        where = f"lease #{number}"
        if not isinstance(entry, dict):
            reject_entry(parsed, where, repr(entry), "not a JSON object")
            continue
        mac = normalise_mac(entry["macaddr"]) if isinstance(entry.get("macaddr"), str) else None
        if mac is None:
            reject_entry(parsed, where, repr(entry.get("macaddr")), "bad MAC address")
            continue
        try:
            ip = str(ipaddress.IPv4Address(entry.get("ipaddr")))
        except ValueError:
            reject_entry(parsed, where, repr(entry.get("ipaddr")), "bad IPv4 address")
            continue
        expires = entry.get("expires")
        if expires is False:
            expires_at = 0  # infinite, as dnsmasq's 0
        elif isinstance(expires, int) and not isinstance(expires, bool) and 0 <= expires <= 2**40:
            expires_at = int(at) + expires
        else:
            reject_entry(parsed, where, repr(expires), "expires must be seconds left or false")
            continue
        hostname = entry.get("hostname")
        parsed.items.append(Lease(mac, ip, hostname if isinstance(hostname, str) else "", "",
                                  expires_at))
    return parsed
