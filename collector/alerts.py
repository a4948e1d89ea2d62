"""Which alerts are due, and their messages. Pure: facts in, alerts out; no clock, no I/O.

storage.py gathers the facts inside a run's transaction and records each alert once per
(kind, period, subject, threshold); run.py hands the new ones to notify.py after the
commit. Everything router- or user-written that a message quotes (names, owners,
hostnames, errors) goes through text.printable: a message is plain text, one line per
fact, and nothing in it can carry markup or control characters to a phone or a mail client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from collector.config import Alerts, DeviceLabel
from collector.periods import Period
from collector.report import human_bytes
from collector.text import printable

# The pace of the first days says little (a weekend, one big download): no forecast before
# this much of the period has been measured.
FORECAST_MIN_SECONDS = 3 * 86400
# How much of a name, owner, hostname or error a message quotes.
QUOTE_CHARS = 64

# A delivery that keeps failing is retried by every run for this long after its alert was
# raised, then given up (and shown as such): a cap alert days late is noise.
DELIVERY_RETRY_SECONDS = 3 * 86400

# More new devices than this in one run are told as one alert listing the first of them:
# a router inventing MACs must not send thousands of messages.
NEW_DEVICES_TOLD = 10
# One message lists at most this many alerts; the rest are in /api/v1/alerts.
ALERTS_PER_MESSAGE = 20

KINDS = ("cap", "forecast", "device_limit", "owner_limit", "new_device", "down", "recovered")


@dataclass(frozen=True)
class Forecast:
    """Where the period ends at this pace; `bytes` is None when it is too early to tell."""

    bytes: int | None
    measured_seconds: float  # how long the pace was measured over
    note: str  # how it was made, or why there is none yet


def forecast(used: int, period: Period, measured_from: float | None, at: float) -> Forecast:
    """A straight line through this period's traffic: what is used plus its pace over the
    time left.

    The pace is what is used over the time it was counted over: from `measured_from` (see
    reads.counted_from: the period's start for the Go daemon's totals, else the run before
    the period's first run; a collector installed mid-period has not seen the days before)
    up to `at`. None before FORECAST_MIN_SECONDS of measuring.
    """
    start, end = period.start.timestamp(), period.end.timestamp()
    # Not clamped to the period's start: the first deltas of a period were moved since the
    # run before it, and what the period holds was moved over all of that time.
    since = start if measured_from is None else measured_from
    measured = max(0.0, min(at, end) - since)
    if measured < FORECAST_MIN_SECONDS:
        days = FORECAST_MIN_SECONDS / 86400
        return Forecast(None, measured, f"too early to tell: {measured / 86400:.1f} of the "
                        f"{days:.0f} days of measuring a forecast needs")
    left = max(0.0, end - at)
    projected = used + round(used / measured * left)
    return Forecast(projected, measured, f"at the pace of the last {measured / 86400:.1f} days "
                    f"({human_bytes(round(used / measured * 86400))} a day)")


@dataclass(frozen=True)
class Failing:
    """An endpoint that failed this run, and since when it has been failing."""

    router: str
    endpoint: str
    since: float
    error: str


@dataclass(frozen=True)
class Recovered:
    """An endpoint that answered this run after failing since `since`."""

    router: str
    endpoint: str
    since: float
    alerted: bool  # a "down" alert was raised for this outage: only then is recovery told


@dataclass(frozen=True)
class NewDevice:
    mac: str
    router: str
    hostname: str = ""
    ip: str = ""


@dataclass
class Facts:
    """What the alerts are judged on, as of one run (gathered by storage.alert_facts)."""

    at: float
    zone: ZoneInfo
    period: Period
    wan_bytes: int  # download + upload, this period so far
    cap_bytes: int | None
    measured_from: float | None  # the first run in this period
    device_bytes: dict[str, int] = field(default_factory=dict)  # mac -> bytes this period
    labels: dict[str, DeviceLabel] = field(default_factory=dict)
    hostnames: dict[str, str] = field(default_factory=dict)  # mac -> DHCP hostname, as known
    new_devices: list[NewDevice] = field(default_factory=list)
    failing: list[Failing] = field(default_factory=list)
    recovered: list[Recovered] = field(default_factory=list)
    public_url: str = ""

    def owner_bytes(self) -> dict[str, int]:
        """Bytes per owner; devices without one are left out (an owner limit names an owner)."""
        totals: dict[str, int] = {}
        for mac, used in self.device_bytes.items():
            owner = self.labels.get(mac, DeviceLabel()).owner
            if owner:
                totals[owner] = totals.get(owner, 0) + used
        return totals


@dataclass(frozen=True)
class Alert:
    kind: str  # one of KINDS
    period: str  # the billing period's label, or (down, recovered) the outage's start in UTC
    subject: str  # "wan", a MAC, an owner, "router/endpoint"
    threshold: str  # "80" (percent), "cap", "" where there is none
    title: str
    body: str


def due(rules: Alerts, facts: Facts) -> list[Alert]:
    """Every alert whose condition holds now. The caller keeps the ones not raised before."""
    found: list[Alert] = []
    found += _cap(rules, facts)
    found += _limits(rules, facts)
    if rules.new_device and len(facts.new_devices) > NEW_DEVICES_TOLD:
        found.append(_many_new_devices(facts))
    elif rules.new_device:
        found += [_new_device(d, facts) for d in facts.new_devices]
    if rules.router_down_minutes is not None:
        found += _outages(rules.router_down_minutes, facts)
    return found


def _when(at: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(at, zone).strftime("%Y-%m-%d %H:%M %Z")


def _period_text(period: Period) -> str:
    return (f"billing period {period.label} ({period.start:%Y-%m-%d} to {period.end:%Y-%m-%d}, "
            "end exclusive)")


def _footer(facts: Facts) -> str:
    lines = [f"As of {_when(facts.at, facts.zone)}."]
    if facts.public_url:
        lines.append(f"Dashboard: {facts.public_url}")
    return "\n".join(lines)


def _percent(used: int, of: int) -> str:
    return f"{100 * used / of:.1f}%"


def device_label(mac: str, facts: Facts) -> str:
    """`Anna's phone (aa:bb:...)`: the configured name, else the hostname, with the MAC."""
    name = facts.labels.get(mac, DeviceLabel()).name or facts.hostnames.get(mac, "")
    return f"{printable(name, QUOTE_CHARS)} ({mac})" if name else mac


def _cap(rules: Alerts, facts: Facts) -> list[Alert]:
    cap = facts.cap_bytes
    if cap is None:
        return []
    found = []
    used = facts.wan_bytes
    for percent in rules.thresholds_percent:
        if used * 100 >= cap * percent:
            found.append(Alert(
                "cap", facts.period.label, "wan", str(percent),
                f"netstat-collect: WAN at {percent}% of the monthly cap",
                f"The WAN has used {human_bytes(used)} of the {human_bytes(cap)} cap "
                f"({_percent(used, cap)}) in {_period_text(facts.period)}.\n{_footer(facts)}",
            ))
    if rules.forecast and used < cap:
        outlook = forecast(used, facts.period, facts.measured_from, facts.at)
        if outlook.bytes is not None and outlook.bytes > cap:
            found.append(Alert(
                "forecast", facts.period.label, "wan", "cap",
                "netstat-collect: the WAN is on course to pass the monthly cap",
                f"At this pace the period ends at {human_bytes(outlook.bytes)}, above the "
                f"{human_bytes(cap)} cap ({_percent(outlook.bytes, cap)}); used so far "
                f"{human_bytes(used)} in {_period_text(facts.period)}, {outlook.note}.\n"
                f"{_footer(facts)}",
            ))
    return found


def _limits(rules: Alerts, facts: Facts) -> list[Alert]:
    found = []
    owners = facts.owner_bytes() if rules.owner_limits_bytes else {}
    subjects = [("device_limit", mac, limit, facts.device_bytes.get(mac, 0), device_label(mac, facts))
                for mac, limit in rules.device_limits_bytes]
    subjects += [("owner_limit", owner, limit, owners.get(owner, 0),
                  f"owner {printable(owner, QUOTE_CHARS)}")
                 for owner, limit in rules.owner_limits_bytes]
    for kind, subject, limit, used, label in subjects:
        for percent in rules.thresholds_percent:
            if used * 100 >= limit * percent:
                found.append(Alert(
                    kind, facts.period.label, subject, str(percent),
                    f"netstat-collect: {label} at {percent}% of its monthly limit",
                    f"{label} has used {human_bytes(used)} of its {human_bytes(limit)} limit "
                    f"({_percent(used, limit)}) in {_period_text(facts.period)}.\n{_footer(facts)}",
                ))
    return found


def _new_device(device: NewDevice, facts: Facts) -> Alert:
    seen = []
    if device.hostname:
        seen.append(f"hostname {printable(device.hostname, QUOTE_CHARS)}")
    if device.ip:
        seen.append(f"IP {printable(device.ip, QUOTE_CHARS)}")
    details = f" ({', '.join(seen)})" if seen else ""
    return Alert(
        "new_device", facts.period.label, device.mac, "",
        f"netstat-collect: new device {device.mac}",
        f"A device never seen before appeared: {device_label(device.mac, facts)}{details}, "
        f"on router {printable(device.router, QUOTE_CHARS)}.\n{_footer(facts)}",
    )


def _many_new_devices(facts: Facts) -> Alert:
    shown = [device_label(d.mac, facts) for d in facts.new_devices[:NEW_DEVICES_TOLD]]
    count = len(facts.new_devices)
    return Alert(
        "new_device", facts.period.label, f"{count} devices at {outage_label(facts.at)}", "",
        f"netstat-collect: {count} new devices",
        f"{count} devices never seen before appeared in one run, among them: {', '.join(shown)}. "
        f"So many at once may be a router reporting made-up stations.\n{_footer(facts)}",
    )


def outage_label(since: float) -> str:
    """An outage's identity: when it began, in UTC (stable whatever the configured zone)."""
    return datetime.fromtimestamp(since, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours < 48 else f"{hours // 24} days {hours % 24} h"


def _outages(limit_minutes: float, facts: Facts) -> list[Alert]:
    found = []
    for f in facts.failing:
        if facts.at - f.since >= limit_minutes * 60:
            where = f"{printable(f.router, QUOTE_CHARS)} {f.endpoint}"
            found.append(Alert(
                "down", outage_label(f.since), f"{f.router}/{f.endpoint}", "",
                f"netstat-collect: router {printable(f.router, QUOTE_CHARS)} {f.endpoint} failing",
                f"{where} has been failing for {_duration(facts.at - f.since)}, since "
                f"{_when(f.since, facts.zone)}: {printable(f.error, 2 * QUOTE_CHARS)}. Its traffic "
                f"is counted once it answers again.\n{_footer(facts)}",
            ))
    for r in facts.recovered:
        if r.alerted:
            where = f"{printable(r.router, QUOTE_CHARS)} {r.endpoint}"
            found.append(Alert(
                "recovered", outage_label(r.since), f"{r.router}/{r.endpoint}", "",
                f"netstat-collect: router {printable(r.router, QUOTE_CHARS)} {r.endpoint} answers again",
                f"{where} answers again after {_duration(facts.at - r.since)} of failing (since "
                f"{_when(r.since, facts.zone)}).\n{_footer(facts)}",
            ))
    return found


def combined(messages: list[tuple[str, str]]) -> tuple[str, str]:
    """One message for the (title, body) pairs a target is due in one run, listing at most
    ALERTS_PER_MESSAGE of them."""
    if len(messages) == 1:
        return messages[0]
    title = f"netstat-collect: {len(messages)} alerts"
    body = "\n\n".join(f"{t}\n{b}" for t, b in messages[:ALERTS_PER_MESSAGE])
    if len(messages) > ALERTS_PER_MESSAGE:
        body += f"\n\n... and {len(messages) - ALERTS_PER_MESSAGE} more: see /api/v1/alerts."
    return title, body
