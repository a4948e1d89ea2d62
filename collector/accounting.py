"""Turning cumulative counters into exact deltas, and deltas into billing periods.

Pure: no I/O, no clock reads. Every time is a unix timestamp passed in by the
caller, so the rules can be property-tested on invented histories.

The rules (README, "How bytes are counted"):
1. Baselines are kept per (router, device) and per router WAN.
2. First successful contact with a router's endpoint records baselines and counts nothing.
3. A station new to a router already known counts in full: station counters start
   at association. A station missing from a complete answer has left, and its
   baseline goes, unless the router reports connected seconds: then its baseline is
   kept (up to MISSING_BASELINE_KEEP_SECONDS) and rule 5 judges it when it is listed
   again. An answer with rejected lines is not complete: it drops no baseline.
4. A counter that went down was reset (64-bit: count the new value) or wrapped
   (32-bit: count 2^32 - old + new) unless there is evidence of a reset.
5. Evidence of a reset: the router's uptime went down, or is shorter than the time
   since a baseline was sampled (that baseline predates the reboot); a station's
   connected seconds shorter than the time since its baseline (it re-associated).
6. A delta above max_rate over the elapsed time is impossible: count 0, rebaseline.
   The elapsed time is what we measured: the time since the baseline was read, or
   for a new station since the router's last successful answer. A router's uptime
   or connected seconds can only shorten it, never lengthen it.
7. A failed fetch changes nothing; the next success counts the whole gap.
8. Each delta belongs to the period containing its poll time, in the configured zone.
9. main_wan is the sum of every router's WAN deltas.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from collector.parse import StationSample, WanSample
from collector.periods import local_day, period_containing
from collector.schema import WAN

WRAP_32 = 2**32
# Uptime and connected seconds are whole seconds read on the router some time
# before the answer reaches us; differences below this are measurement noise,
# not evidence of a reset.
SLACK_SECONDS = 2.0
# How long the baseline of a station missing from its router's answers is kept when
# that router reports connected seconds (rule 3). Its return is judged by those
# seconds, so keeping it longer costs nothing in exactness; the bound keeps stations
# that never return (randomised MACs) from piling up.
MISSING_BASELINE_KEEP_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Baseline:
    """The last counter values counted for one (router, device), and when they were read."""

    rx_bytes: int
    tx_bytes: int
    sampled_at: float
    # The router reported how long this station had been associated when it was read:
    # if it goes missing, its return can be judged by its connected seconds (rule 3).
    connected_hint: bool = False


@dataclass(frozen=True, slots=True)
class UptimeMark:
    """A router's uptime as last read, and when."""

    uptime_seconds: int
    sampled_at: float


@dataclass(frozen=True, slots=True)
class RouterState:
    """What the databases remember about one router between runs."""

    baselines: Mapping[str, Baseline] = field(default_factory=dict)  # device -> baseline
    uptime: UptimeMark | None = None
    ap_known: bool = False  # ap_stats was fetched successfully at least once
    last_ap_at: float | None = None  # time of the last successful ap_stats fetch


@dataclass(frozen=True, slots=True)
class RouterPoll:
    """This run's successful readings of one router; None where an endpoint failed or is unset."""

    stations: Sequence[StationSample] | None = None
    stations_at: float = 0.0
    # False when lines of the answer were rejected: a station not listed may be one of them.
    stations_complete: bool = True
    wan: WanSample | None = None
    wan_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Delta:
    """Bytes to add for one device (or main_wan) of one router, at one poll time."""

    router: str
    device: str
    rx_bytes: int
    tx_bytes: int
    at: float
    how: str  # why these numbers: "delta", "first contact", "new station", "reboot", ...


@dataclass
class RouterOutcome:
    deltas: list[Delta]
    baselines: dict[str, Baseline]  # the router's complete new baseline map
    uptime: UptimeMark | None
    notes: list[str]  # things worth a log line: resets, wraps, implausible deltas


def max_bytes_per_second(max_rate_mbps: float) -> float:
    return max_rate_mbps * 1_000_000 / 8


def counter_delta(old: int, new: int, *, bits: int, reset: bool) -> tuple[int, str]:
    """Bytes between two readings of one cumulative counter, and how they were read."""
    if reset:
        return new, "reset"
    if new >= old:
        return new - old, "delta"
    if bits == 32 and old < WRAP_32 and new < WRAP_32:
        return WRAP_32 - old + new, "wrap"
    # A 64-bit counter never wraps in practice: going down means it restarted.
    return new, "reset"


def _capped(value: int, elapsed: float | None, max_rate: float) -> bool:
    """True when value bytes in elapsed seconds is beyond the plausible rate."""
    if elapsed is None or elapsed < 0:
        return False  # no usable elapsed time (clock stepped): nothing to compare with
    return value > max_rate * (elapsed + SLACK_SECONDS)


def _pair(
    router: str,
    device: str,
    old: Baseline,
    rx: int,
    tx: int,
    at: float,
    *,
    bits: int,
    reset: str | None,
    reset_elapsed: float | None,
    max_rate: float,
    notes: list[str],
) -> Delta:
    """The delta of one rx/tx pair against its baseline, with rules 4 to 6 applied."""
    if reset is None and rx >= old.rx_bytes and tx >= old.tx_bytes:
        # The common case, kept cheap: both counters grew, within the plausible rate.
        elapsed = at - old.sampled_at
        rx_delta, tx_delta = rx - old.rx_bytes, tx - old.tx_bytes
        if not (_capped(rx_delta, elapsed, max_rate) or _capped(tx_delta, elapsed, max_rate)):
            return Delta(router, device, rx_delta, tx_delta, at, "delta")
    amounts = []
    hows = []
    if reset is None and bits == 64 and (rx < old.rx_bytes or tx < old.tx_bytes):
        # Both counters of one station or interface restart together: one going
        # down is evidence that the other restarted too, even if it is now higher.
        reset = "reset"
        notes.append(
            f"{router} {device}: counter went down (rx {old.rx_bytes} -> {rx}, "
            f"tx {old.tx_bytes} -> {tx}): counters were reset"
        )
    for direction, old_value, new_value in (("rx", old.rx_bytes, rx), ("tx", old.tx_bytes, tx)):
        amount, how = counter_delta(old_value, new_value, bits=bits, reset=reset is not None)
        # Counting the new value in full covers the time since the reset, which
        # is at most the time since the baseline.
        elapsed = at - old.sampled_at
        if reset is not None and reset_elapsed is not None:
            elapsed = min(elapsed, reset_elapsed) if elapsed >= 0 else reset_elapsed
        if _capped(amount, elapsed, max_rate):
            notes.append(
                f"{router} {device}: {direction} {how} of {amount} bytes in {elapsed:.0f}s is above "
                f"max_rate_mbps; counted 0 and took {new_value} as the new baseline"
            )
            amount, how = 0, "implausible"
        elif how == "wrap":
            notes.append(
                f"{router} {device}: {direction} 32-bit counter wrapped ({old_value} -> {new_value})"
            )
        amounts.append(amount)
        hows.append(how)
    if "implausible" in hows:
        how = "implausible"
    else:
        how = reset or ("delta" if hows == ["delta", "delta"] else "wrap")
    return Delta(router, device, amounts[0], amounts[1], at, how)


def account_router(
    router: str,
    state: RouterState,
    poll: RouterPoll,
    *,
    counter_bits: int = 64,
    max_rate: float = max_bytes_per_second(10000),
) -> RouterOutcome:
    """Apply the accounting rules to one router's poll; see the module docstring."""
    notes: list[str] = []
    deltas: list[Delta] = []
    baselines = dict(state.baselines)
    uptime = state.uptime

    boot_at: float | None = None  # when the router last booted, by this poll's uptime
    went_down = False
    if poll.wan is not None and poll.wan.uptime_seconds is not None:
        boot_at = poll.wan_at - poll.wan.uptime_seconds
        went_down = state.uptime is not None and poll.wan.uptime_seconds < state.uptime.uptime_seconds
        uptime = UptimeMark(poll.wan.uptime_seconds, poll.wan_at)

    def predates_reboot(baseline: Baseline) -> bool:
        if boot_at is not None and baseline.sampled_at < boot_at - SLACK_SECONDS:
            return True
        # Uptime only grows within one boot, whatever the clocks say.
        return went_down and baseline.sampled_at <= state.uptime.sampled_at

    if boot_at is not None and any(predates_reboot(b) for b in state.baselines.values()):
        notes.append(f"{router}: rebooted (uptime {poll.wan.uptime_seconds}s); its counters restarted")

    if poll.wan is not None:
        old = state.baselines.get(WAN)
        if old is None:
            deltas.append(Delta(router, WAN, 0, 0, poll.wan_at, "first contact"))
        else:
            rebooted = predates_reboot(old)
            deltas.append(
                _pair(router, WAN, old, poll.wan.rx_bytes, poll.wan.tx_bytes, poll.wan_at,
                      bits=counter_bits, reset="reboot" if rebooted else None,
                      reset_elapsed=poll.wan.uptime_seconds, max_rate=max_rate, notes=notes)
            )
        baselines[WAN] = Baseline(poll.wan.rx_bytes, poll.wan.tx_bytes, poll.wan_at)

    if poll.stations is not None:
        at = poll.stations_at
        present = set()
        for station in poll.stations:
            present.add(station.mac)
            old = state.baselines.get(station.mac)
            if not state.ap_known:
                delta = Delta(router, station.mac, 0, 0, at, "first contact")
            elif old is None:
                # Rule 3: the station associated since the last poll, and its
                # counters started at zero then. Rule 6: the time it had to move them
                # is at most the time since the router's last answer; its connected
                # seconds, a number the router chooses, may only shorten that.
                elapsed = None if state.last_ap_at is None else at - state.last_ap_at
                if station.connected_seconds is not None:
                    elapsed = (station.connected_seconds if elapsed is None
                               else min(elapsed, station.connected_seconds))
                # With no elapsed time known at all, no rate can be judged: -inf says so.
                since = at - elapsed if elapsed is not None else float("-inf")
                delta = _pair(router, station.mac, Baseline(0, 0, since),
                              station.rx_bytes, station.tx_bytes, at, bits=counter_bits,
                              reset="new station", reset_elapsed=elapsed, max_rate=max_rate,
                              notes=notes)
            else:
                reset = None
                reset_elapsed = None
                if predates_reboot(old):
                    reset, reset_elapsed = "reboot", poll.wan.uptime_seconds
                elif (
                    station.connected_seconds is not None
                    and station.connected_seconds + SLACK_SECONDS < at - old.sampled_at
                ):
                    reset, reset_elapsed = "re-associated", station.connected_seconds
                delta = _pair(router, station.mac, old, station.rx_bytes, station.tx_bytes, at,
                              bits=counter_bits, reset=reset, reset_elapsed=reset_elapsed,
                              max_rate=max_rate, notes=notes)
            deltas.append(delta)
            baselines[station.mac] = Baseline(station.rx_bytes, station.tx_bytes, at,
                                              station.connected_seconds is not None)
        for device in list(baselines):
            if device == WAN or device in present:
                continue
            if _station_gone(baselines[device], at, poll.stations_complete):
                del baselines[device]
    return RouterOutcome(deltas, baselines, uptime, notes)


def _station_gone(baseline: Baseline, at: float, complete: bool) -> bool:
    """Rule 3: whether a station missing from this answer has left for good.

    Missing from an answer with rejected lines proves nothing (its line may be one
    of them). Missing from a complete answer of a router that reports connected
    seconds proves nothing either (a radio's dump can fail or race a wifi reload):
    the baseline stays, and the station's connected seconds decide when it is back.
    Otherwise its counters are gone, and if it comes back they start from zero.
    A kept baseline that predates a reboot is judged by rule 5 when the station is back.
    """
    if not complete:
        return False
    if baseline.connected_hint:
        return at - baseline.sampled_at > MISSING_BASELINE_KEEP_SECONDS
    return True


# --- Rule 8: billing periods ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Usage:
    """Bytes of one device on one router, summed within one (period, day)."""

    period: str
    day: str
    router: str
    device: str
    rx_bytes: int
    tx_bytes: int
    last_seen: float


def bucket(deltas: Iterable[Delta], zone: ZoneInfo, month_start_day: int = 1) -> list[Usage]:
    """Sum deltas per (period, day, router, device): rule 8."""
    sums: dict[tuple[str, str, str, str], list] = {}
    places: dict[float, tuple[str, str]] = {}  # a router's deltas share one poll time
    for d in deltas:
        place = places.get(d.at)
        if place is None:
            place = places[d.at] = (period_containing(d.at, zone, month_start_day).label,
                                    local_day(d.at, zone))
        key = (*place, d.router, d.device)
        entry = sums.setdefault(key, [0, 0, d.at])
        entry[0] += d.rx_bytes
        entry[1] += d.tx_bytes
        entry[2] = max(entry[2], d.at)
    return [Usage(*key, rx, tx, last) for key, (rx, tx, last) in sums.items()]
