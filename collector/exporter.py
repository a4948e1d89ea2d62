"""Reading prometheus-node-exporter-lua's text (format 0.0.4). Pure: bytes in, samples out.

Only the metrics the collector needs are parsed, line by line, and what the exporter really
prints is tolerated:

- label order varies between lines, and label values are not escaped (an SSID may hold `"`
  or `,`): labels are split at `",name="`, and a line naming a label we need twice (an SSID
  made to look like one) is rejected rather than guessed at;
- `# TYPE` lines are printed when a collector starts, possibly far from its samples: they are
  read only as the mark that a collector ran;
- with `omit_zero_values`, a zero counter has no line: a counter whose `# TYPE` line was
  printed and that has no line for a station is 0.

One bad line is a rejected line (the answer is not complete, rule 3), not a failed router.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from collector.errors import ParseError
from collector.parse import (
    MAX_COUNTER,
    Body,
    Parsed,
    StationSample,
    WanSample,
    _lines,
    normalise_mac,
    reject_entry,
)

# Ask the exporter for only these collectors (its `collect[]` query parameter).
COLLECTORS = ("hostapd_stations", "netdev", "time", "cpu")
QUERY = "&".join(f"collect[]={name}" for name in COLLECTORS)

STATION_RX = "hostapd_station_receive_bytes_total"  # received by the AP: the device's upload
STATION_TX = "hostapd_station_transmit_bytes_total"
STATION_CONNECTED = "hostapd_station_connected_seconds_total"
STATION_METRICS = (STATION_RX, STATION_TX, STATION_CONNECTED)
WAN_RX = "node_network_receive_bytes_total"
WAN_TX = "node_network_transmit_bytes_total"
TIME = "node_time_seconds"
BOOT_TIME = "node_boot_time_seconds"
# The exporter's own report per collector run: 1, or 0 when the collector raised an error.
SUCCESS = "node_scrape_collector_success"
WANTED = frozenset((*STATION_METRICS, WAN_RX, WAN_TX, TIME, BOOT_TIME, SUCCESS))
# The wifi_stations collector: stations, but no byte counters (iwinfo's Lua binding never sets
# them on current OpenWrt).
WIFI_STATIONS_PREFIX = "wifi_station"

_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_SPLIT_RE = re.compile(r'",(?=[a-zA-Z_][a-zA-Z0-9_]*=")')
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="(.*)', re.S)
_TYPE_RE = re.compile(r"#\s*TYPE\s+([a-zA-Z_:][a-zA-Z0-9_:]*)")


@dataclass
class Metrics:
    """What one scrape said that the collector needs, with its rejected lines per endpoint."""

    stations: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)  # (vif, mac)
    devices: dict[str, dict[str, int]] = field(default_factory=dict)  # netdev device -> metric
    clock: dict[str, float] = field(default_factory=dict)  # node_time_seconds, node_boot_...
    typed: set[str] = field(default_factory=set)  # metrics with a # TYPE line
    succeeded: dict[str, bool] = field(default_factory=dict)  # collector -> it ran without error
    wifi_stations_only_seen: bool = False
    station_lines: Parsed = field(default_factory=Parsed)  # rejected hostapd lines
    wan_lines: Parsed = field(default_factory=Parsed)  # rejected netdev and time lines


def _labels(block: str) -> dict[str, str] | None:
    """Label name -> value, with values unescaped as the exporter prints them; None when a
    name repeats (an unescaped value that looks like a label) or the block does not parse."""
    labels: dict[str, str] = {}
    pieces = _LABEL_SPLIT_RE.split(block.rstrip(","))
    for number, piece in enumerate(pieces):
        match = _LABEL_RE.fullmatch(piece)
        if match is None:
            return None
        name, value = match.groups()
        if number == len(pieces) - 1:
            if not value.endswith('"'):
                return None
            value = value[:-1]
        if name in labels:
            return None
        labels[name] = value
    return labels


def _value(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _counter(value: Decimal) -> int | None:
    """A byte counter: a non-negative integer (Lua may print a large one as 1.2345e+14)."""
    if value < 0 or value != value.to_integral_value() or value > MAX_COUNTER:
        return None
    return int(value)


def parse_metrics(body: Body) -> Metrics:
    """One pass over the exporter's text, keeping only the metrics in WANTED."""
    metrics = Metrics()
    for number, line in _raw_lines(body):
        if line.startswith("#"):
            typed = _TYPE_RE.match(line)
            if typed:
                metrics.typed.add(typed.group(1))
            continue
        name_match = _NAME_RE.match(line)
        name = name_match.group(0) if name_match else ""
        if name not in WANTED:
            if name.startswith(WIFI_STATIONS_PREFIX):
                metrics.wifi_stations_only_seen = True
            continue
        station_metric = name in STATION_METRICS
        target = metrics.station_lines if station_metric else metrics.wan_lines
        rest = line[len(name):]
        labels: dict[str, str] | None = {}
        if rest.startswith("{"):
            end = rest.rfind("}")
            labels = _labels(rest[1:end]) if end > 0 else None
            rest = rest[end + 1:] if end > 0 else ""
        fields = rest.split()
        value = _value(fields[0]) if labels is not None and 1 <= len(fields) <= 2 else None
        if value is None:
            reject_entry(target, f"line {number}", line, "expected NAME{LABELS} VALUE")
            continue
        if station_metric:
            _station_line(metrics, number, line, name, labels, value)
        elif name == SUCCESS:
            if labels.get("collector"):
                metrics.succeeded[labels["collector"]] = value == 1
        elif name in (WAN_RX, WAN_TX):
            device, counter = labels.get("device"), _counter(value)
            if not device or counter is None:
                reject_entry(target, f"line {number}", line, "expected a device and a byte count")
                continue
            seen = metrics.devices.setdefault(device, {})
            if name in seen:
                reject_entry(target, f"line {number}", line, "repeated metric")
                continue
            seen[name] = counter
        elif name not in metrics.clock:
            metrics.clock[name] = float(value)
    return metrics


def _station_line(metrics: Metrics, number: int, line: str, name: str, labels: dict,
                  value: Decimal) -> None:
    target = metrics.station_lines
    mac = normalise_mac(labels.get("station", ""))
    counter = _counter(value)
    if mac is None:
        reject_entry(target, f"line {number}", line, "bad or missing station label")
        return
    if counter is None:
        reject_entry(target, f"line {number}", line, "value must be a non-negative integer")
        return
    station = metrics.stations.setdefault((labels.get("vif", ""), mac), {})
    if name in station:
        reject_entry(target, f"line {number}", line, "repeated metric for this station")
        return
    station[name] = counter


def _raw_lines(body: Body):
    """parse._lines skips lines starting with `#`; the exporter's # TYPE lines are needed."""
    yield from _lines(body, keep_comments=True)


def stations_of(metrics: Metrics) -> Parsed[StationSample]:
    """The stations of every access point interface; ParseError without the hostapd collector.

    A MAC listed on two interfaces at once is one station: the one with the shortest
    connected seconds (its current association) is kept, as for ubus.
    """
    parsed: Parsed[StationSample] = metrics.station_lines
    if metrics.succeeded.get("hostapd_stations") is False:
        raise ParseError("the hostapd_stations collector failed on the router "
                         "(node_scrape_collector_success 0): is hostapd running with its ubus object?")
    if not metrics.stations and not (metrics.typed & set(STATION_METRICS)):
        if metrics.wifi_stations_only_seen:
            raise ParseError("only the wifi_stations collector answered, which has no byte counters: "
                             "install prometheus-node-exporter-lua-hostapd_stations")
        raise ParseError("no hostapd_stations collector in the answer: install "
                         "prometheus-node-exporter-lua-hostapd_stations (wifi_stations has no byte "
                         "counters)")
    kept: dict[str, StationSample] = {}
    for (_vif, mac), values in metrics.stations.items():
        rx, tx, connected = (_omitted_zero(metrics, values, name) for name in STATION_METRICS)
        if rx is None or tx is None:
            reject_entry(parsed, mac, mac, "no byte counters for this station")
            continue
        station = StationSample(mac, rx, tx, connected)
        old = kept.get(mac)
        if old is None or (connected is not None and (old.connected_seconds is None
                                                      or connected < old.connected_seconds)):
            kept[mac] = station
    parsed.items = list(kept.values())
    if parsed.rejected_count and not parsed.items:
        raise ParseError(f"no station could be read, first: {parsed.rejected[0]}")
    return parsed


def _omitted_zero(metrics: Metrics, values: dict[str, int], name: str) -> int | None:
    """A counter's value; with omit_zero_values, no line for a counter whose collector printed
    its # TYPE line means 0; None when the exporter does not know the metric at all."""
    return values.get(name, 0 if name in metrics.typed else None)


def wan_of(metrics: Metrics, device: str) -> Parsed[WanSample]:
    """The WAN device's counters, and the uptime from node_time_seconds - node_boot_time_seconds."""
    parsed: Parsed[WanSample] = metrics.wan_lines
    if metrics.succeeded.get("netdev") is False:
        raise ParseError("the netdev collector failed on the router (node_scrape_collector_success 0)")
    values = metrics.devices.get(device)
    if values is None:
        known = ", ".join(sorted(metrics.devices)[:8]) or "none"
        raise ParseError(f"no netdev counters for device {device!r} (devices: {known})")
    rx, tx = _omitted_zero(metrics, values, WAN_RX), _omitted_zero(metrics, values, WAN_TX)
    if rx is None or tx is None:
        raise ParseError(f"device {device!r} lacks {WAN_RX} or {WAN_TX}")
    uptime = None
    if TIME in metrics.clock and BOOT_TIME in metrics.clock:
        seconds = metrics.clock[TIME] - metrics.clock[BOOT_TIME]
        uptime = int(seconds) if seconds >= 0 else None
    parsed.items = [WanSample(rx, tx, uptime)]
    return parsed
