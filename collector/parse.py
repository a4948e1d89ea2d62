"""Parsers for the three router endpoints. Pure: bytes in, values out, no I/O.

Every parser returns what it could read plus how many lines it rejected, with the
first few as examples, so a run can report bad router output once instead of
crashing on it or silently dropping it. Only a count and a few examples are kept:
an answer of two million garbage lines costs no more memory than a clean one.

The formats are exactly what the README documents: fields are separated by ASCII
spaces and tabs only (never NBSP, U+2028 or other Unicode spaces a hostile line may
carry); lines end in LF, CRLF or a lone CR; a UTF-8 byte order mark at the very
start of an answer is skipped; a key that may appear once (`wan:`, `uptime:`) is
read from its first line and every repeat is rejected.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from collector.errors import ParseError

# SQLite stores signed 64-bit integers; a counter beyond that cannot be stored
# exactly, and no real interface gets there (it is 9.2 EB).
MAX_COUNTER = 2**63 - 1
_MAC_RE = re.compile(r"[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}")
_FIELDS_RE = re.compile(r"[ \t]+")
_HOST_AND_ID_RE = re.compile(r"^(.*?)[ \t]+([^ \t]+)$")
_REJECTED_LINE_MAX = 120
# How many rejected lines an answer keeps as examples; the rest are only counted.
REJECTED_EXAMPLES = 5
_UPTIME_RE = re.compile(r"([0-9]+)(\.[0-9]+)?")
_BOM = "\ufeff"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StationSample:
    """One Wi-Fi station's cumulative counters as the access point reports them.

    `rx_bytes` is what the access point received from the station (the device's
    upload); `tx_bytes` is what it sent to the station (the device's download).
    """

    mac: str
    rx_bytes: int
    tx_bytes: int
    connected_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class WanSample:
    """The WAN interface's cumulative counters; `rx_bytes` is the download."""

    rx_bytes: int
    tx_bytes: int
    uptime_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class Lease:
    """One IPv4 DHCP lease. Empty strings stand for dnsmasq's `*` (none)."""

    mac: str
    ip: str
    hostname: str
    client_id: str
    expires_at: int  # unix time; 0 means an infinite lease


@dataclass(frozen=True, slots=True)
class Rejected:
    """One rejected line, cut to a readable length; `repr` escapes its control characters."""

    line_no: int
    line: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line_no}: {self.reason}: {self.line!r}"


@dataclass
class Parsed(Generic[T]):
    items: list[T] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)  # the first REJECTED_EXAMPLES only
    rejected_count: int = 0  # every rejected line
    ignored: int = 0  # lines skipped on purpose (dnsmasq's duid line, DHCPv6 leases)

    @property
    def complete(self) -> bool:
        """True when every line was read: only then does a missing item mean it is gone."""
        return self.rejected_count == 0


def normalise_mac(text: str) -> str | None:
    """`AA-BB-CC-DD-EE-FF` or `aa:bb:...` to `aa:bb:cc:dd:ee:ff`; None if it is no MAC.

    Only ASCII spaces and tabs around it are allowed: str.strip() would also take
    NBSP and other Unicode spaces, which no router or user means as part of a MAC.
    """
    lowered = text.strip(" \t").lower()
    if not _MAC_RE.fullmatch(lowered):
        return None
    return lowered.replace("-", ":")


def _counter(text: str) -> int | None:
    if not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value <= MAX_COUNTER else None


Body = bytes | bytearray | str | list[bytes]  # a list: the chunks as they were read


def _lines(body: Body):
    """Numbered, stripped, non-empty lines, ending in LF, CRLF or a lone CR.

    Walks the body (or its chunks, as fetched) a chunk at a time, decoding each line
    alone: an answer at the size cap is never copied whole into a str and a list of
    lines. Splits on LF (then on CR within a line) only: str.splitlines() would also
    split on characters such as U+2028 that a hostile hostname may carry. A lone CR
    ends a line because some tools write old Mac line endings, and reading such an
    answer as one long rejected line would tell the accounting nothing.
    """
    chunks = body if isinstance(body, list) else [body]
    number = 0
    pending = None  # the start of a line that continues in the next chunk
    for chunk in chunks:
        data = pending + chunk if pending else chunk
        pieces = data.split("\n" if isinstance(data, str) else b"\n")
        pending = pieces.pop()
        number = yield from _clean(number, pieces)
    if pending:
        yield from _clean(number, [pending])


def _clean(number: int, pieces: list):
    """Number, decode and strip LF-separated pieces; a CR inside one ends a line too."""
    for raw in pieces:
        if not isinstance(raw, str):
            raw = raw.decode("utf-8", errors="replace")
        if number == 0 and raw.startswith(_BOM):
            raw = raw[1:]  # a byte order mark before the first line, as some editors write
        parts = raw.split("\r") if "\r" in raw else (raw,)
        if len(parts) > 1 and not parts[-1]:
            parts.pop()  # CRLF: the CR before the LF ends no extra line
        for part in parts:
            number += 1
            line = part.strip(" \t")
            if line and line[0] != "#":
                yield number, line
    return number


def _fields(line: str) -> list[str]:
    """The line's fields, separated by ASCII spaces and tabs only."""
    return _FIELDS_RE.split(line)


def _reject(parsed: Parsed, number: int, line: str, reason: str) -> None:
    parsed.rejected_count += 1
    if len(parsed.rejected) < REJECTED_EXAMPLES:
        shown = line if len(line) <= _REJECTED_LINE_MAX else line[:_REJECTED_LINE_MAX] + "..."
        parsed.rejected.append(Rejected(number, shown, reason))


def parse_ap_stats(body: Body) -> Parsed[StationSample]:
    """Parse totalwifi.cgi: `MAC RX_BYTES TX_BYTES [CONNECTED_SECONDS]` per line."""
    parsed: Parsed[StationSample] = Parsed()
    seen: set[str] = set()
    for number, line in _lines(body):
        if "\x00" in line:
            _reject(parsed, number, line, "NUL byte in line")
            continue
        fields = _fields(line)
        if len(fields) not in (3, 4):
            _reject(parsed, number, line, f"expected 3 or 4 fields, got {len(fields)}")
            continue
        mac = normalise_mac(fields[0])
        if mac is None:
            _reject(parsed, number, line, "bad MAC address")
            continue
        numbers = [_counter(f) for f in fields[1:]]
        if any(n is None for n in numbers):
            _reject(parsed, number, line, "counters must be non-negative integers")
            continue
        if mac in seen:
            _reject(parsed, number, line, "station listed twice")
            continue
        seen.add(mac)
        connected = numbers[2] if len(numbers) == 3 else None
        parsed.items.append(StationSample(mac, numbers[0], numbers[1], connected))
    return parsed


def parse_wan_stats(body: Body) -> Parsed[WanSample]:
    """Parse wan.cgi: a line `wan: RX_BYTES TX_BYTES`, optionally `uptime: SECONDS`.

    Raises ParseError when there is no usable `wan:` line: without it the
    endpoint gave us nothing, which is a failure, not an empty answer.
    """
    parsed: Parsed[WanSample] = Parsed()
    counters: tuple[int, int] | None = None
    uptime: int | None = None
    for number, line in _lines(body):
        fields = _fields(line)
        key = fields[0].lower()
        if key == "wan:":
            values = [_counter(f) for f in fields[1:]]
            if len(values) != 2 or any(v is None for v in values):
                _reject(parsed, number, line, "expected `wan: RX_BYTES TX_BYTES`")
            elif counters is not None:
                _reject(parsed, number, line, "second `wan:` line")
            else:
                counters = (values[0], values[1])
        elif key == "uptime:":
            # /proc/uptime has hundredths; whole seconds are all we need.
            match = _UPTIME_RE.fullmatch(fields[1]) if len(fields) == 2 else None
            value = _counter(match.group(1)) if match else None
            if value is None:
                _reject(parsed, number, line, "expected `uptime: SECONDS`")
            elif uptime is not None:
                _reject(parsed, number, line, "second `uptime:` line")
            else:
                uptime = value
        else:
            _reject(parsed, number, line, "unknown line")
    if counters is None:
        raise ParseError("no valid `wan: RX_BYTES TX_BYTES` line in the answer")
    parsed.items.append(WanSample(counters[0], counters[1], uptime))
    return parsed


def parse_dhcp_leases(body: Body) -> Parsed[Lease]:
    """Parse dnsmasq's lease file: `EXPIRY MAC IP HOSTNAME CLIENT_ID` per IPv4 lease.

    A hostname with spaces in it is kept whole (only the last field is the client id).

    The `duid ...` line and DHCPv6 leases (an IAID where the MAC would be) are
    counted as ignored, not rejected: they are valid, just not ours.
    """
    parsed: Parsed[Lease] = Parsed()
    for number, line in _lines(body):
        if "\x00" in line:
            _reject(parsed, number, line, "NUL byte in line")
            continue
        fields = _FIELDS_RE.split(line, maxsplit=3)
        if fields[0].lower() == "duid":
            parsed.ignored += 1
            continue
        # The hostname is everything between the IP and the last field (the client
        # id): dnsmasq never writes spaces there, but a name that has them must not
        # shift the client id into it.
        tail = _HOST_AND_ID_RE.match(fields[3]) if len(fields) == 4 else None
        if tail is None:
            got = len(fields) + (len(_FIELDS_RE.split(fields[3])) - 1 if len(fields) == 4 else 0)
            _reject(parsed, number, line, f"expected 5 fields, got {got}")
            continue
        expiry_text, mac_text, ip_text = fields[:3]
        hostname, client_id = tail.groups()
        expiry = _counter(expiry_text)
        if expiry is None:
            _reject(parsed, number, line, "expiry must be a non-negative integer")
            continue
        mac = normalise_mac(mac_text)
        if mac is None:
            if ":" in ip_text:
                parsed.ignored += 1  # DHCPv6: IAID and an IPv6 address
            else:
                _reject(parsed, number, line, "bad MAC address")
            continue
        try:
            ip = str(ipaddress.IPv4Address(ip_text))
        except ValueError:
            _reject(parsed, number, line, "bad IPv4 address")
            continue
        parsed.items.append(
            Lease(
                mac=mac,
                ip=ip,
                hostname="" if hostname == "*" else hostname,
                client_id="" if client_id == "*" else client_id,
                expires_at=expiry,
            )
        )
    return parsed
