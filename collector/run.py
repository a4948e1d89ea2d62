"""One collection run: fetch, parse, account, commit. The I/O around the pure parts."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from collector import DEFAULT_LOCK_WAIT_SECONDS, storage
from collector.accounting import (
    Delta,
    RouterPoll,
    RouterState,
    Usage,
    account_router,
    bucket,
    max_bytes_per_second,
)
from collector.config import ENDPOINTS, Config
from collector.errors import ClockError, ParseError
from collector.faults import crash_point
from collector.fetch import Fetched, Request, fetch_all
from collector.parse import Lease, parse_ap_stats, parse_dhcp_leases, parse_wan_stats
from collector.schema import LEASES_DB, STATS_DB

_PARSERS = {"ap_stats": parse_ap_stats, "wan_stats": parse_wan_stats, "dhcp_leases": parse_dhcp_leases}
_ITEM_NAMES = {"ap_stats": "stations", "wan_stats": "wan", "dhcp_leases": "leases"}
# The clock may be corrected by a second or two between runs without meaning anything.
CLOCK_TOLERANCE_SECONDS = 5.0


@dataclass
class EndpointOutcome:
    endpoint: str
    ok: bool
    summary: str  # "12 stations", "HTTP 500", ...
    rejected: int = 0  # how many lines were rejected
    first_rejected: str = ""  # the first of them, cut and escaped
    complete: bool = True  # every line was read: an item not listed is not there


@dataclass
class RouterReport:
    key: str
    name: str
    endpoints: list[EndpointOutcome]

    @property
    def failed(self) -> bool:
        return any(not e.ok for e in self.endpoints)

    def line(self) -> str:
        parts = []
        for e in self.endpoints:
            parts.append(f"{e.endpoint} {e.summary}" if e.ok else f"{e.endpoint} FAILED ({e.summary})")
        label = self.key if self.name == self.key else f"{self.name} ({self.key})"
        return f"{label}: " + ("; ".join(parts) if parts else "no endpoints configured")


@dataclass
class RunResult:
    routers: list[RouterReport]
    deltas: list[Delta]
    usage: list[Usage]
    notes: list[str]
    started_at: float = 0.0
    committed: bool = False
    # What the commit writes besides the usage:
    baselines: dict = field(default_factory=dict)  # router -> device -> Baseline
    uptimes: dict = field(default_factory=dict)  # router -> UptimeMark
    statuses: list[storage.EndpointStatus] = field(default_factory=list)
    leases: dict[str, list[Lease]] = field(default_factory=dict)  # router -> its leases

    @property
    def exit_code(self) -> int:
        return 1 if any(r.failed for r in self.routers) else 0


def _requests(config: Config) -> list[Request]:
    return [
        Request(router.key, endpoint, router.urls[endpoint], router.timeout)
        for router in config.routers
        for endpoint in ENDPOINTS
        if endpoint in router.urls
    ]


def run_once(
    config: Config,
    data_dir: Path,
    *,
    now: Callable[[], float] = time.time,
    dry_run: bool = False,
    lock_wait: float = DEFAULT_LOCK_WAIT_SECONDS,
) -> RunResult:
    """Collect once from every configured router and commit (unless dry_run).

    Raises StorageError (data directory, lock, database) and ClockError; router
    trouble is reported in the result, never raised.
    """
    if dry_run:
        return _collect(config, data_dir, now, dry_run=True)
    storage.ensure_data_dir(data_dir)
    with storage.run_lock(data_dir, lock_wait):
        return _collect(config, data_dir, now, dry_run=False)


def _collect(config: Config, data_dir: Path, now: Callable[[], float], *, dry_run: bool) -> RunResult:
    zone = config.settings.zone()
    month_start_day = config.settings.month_start_day
    stats_path = data_dir / STATS_DB
    leases_path = data_dir / LEASES_DB
    if dry_run:
        scratch = tempfile.TemporaryDirectory(prefix="netstat-dry-run-")
        stats = storage.connect_snapshot(stats_path, Path(scratch.name))
        leases_conn = None
    else:
        storage.check_pair(stats_path, leases_path)
        stats = storage.connect_writer(stats_path)
        storage.migrate_stats(stats, stats_path, zone, month_start_day)
        leases_conn = storage.connect_writer(leases_path)
        storage.migrate_leases(leases_conn, leases_path)
    try:
        states, last_run_at = storage.load_states(stats)
        started = now()
        if last_run_at is not None and started < last_run_at - CLOCK_TOLERANCE_SECONDS:
            raise ClockError(
                f"the system clock ({time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}) is "
                f"{last_run_at - started:.0f}s behind the last committed run; not collecting until it "
                "is right again (the next run then counts the whole gap)"
            )
        mono_start = time.monotonic()
        fetched = fetch_all(_requests(config))
        crash_point("fetched")
        finished = started + (time.monotonic() - mono_start)
        result = _account(config, states, fetched, started, mono_start)
        result.started_at = started
        result.usage = bucket(result.deltas, zone, month_start_day)
        if dry_run:
            return result
        update = storage.StatsUpdate(
            started_at=started,
            finished_at=finished,
            current_period_at=started,
            usage=result.usage,
            baselines=result.baselines,
            uptimes=result.uptimes,
            endpoints=result.statuses,
            monthly_cap_bytes=None if config.settings.monthly_cap_gib is None
            else int(config.settings.monthly_cap_gib * 1024**3),
        )
        result.notes.extend(storage.commit_stats(stats, stats_path, update, zone, month_start_day))
        storage.commit_leases(leases_conn, leases_path, result.leases, started, zone)
        result.committed = True
        return result
    finally:
        for conn in (stats, leases_conn):
            if conn is not None:
                conn.close()
        if dry_run:
            scratch.cleanup()


def _account(
    config: Config, states: dict[str, RouterState], fetched: list[Fetched], started: float,
    mono_start: float,
) -> RunResult:
    # Each answer is dropped as soon as it is parsed, and each router's parsed samples
    # once they are accounted: a large fleet never holds every body and sample at once.
    by_router: dict[str, dict[str, Fetched]] = {}
    for f in fetched:
        by_router.setdefault(f.request.router, {})[f.request.endpoint] = f
    fetched.clear()
    result = RunResult(routers=[], deltas=[], usage=[], notes=[])
    max_rate = max_bytes_per_second(config.settings.max_rate_mbps)

    for router in config.routers:
        report = RouterReport(router.key, router.name, [])
        poll = {}
        answers = by_router.pop(router.key, {})
        for endpoint in list(answers):
            f = answers.pop(endpoint)
            at = started + (f.received - mono_start)
            outcome, items = _parse(endpoint, f)
            del f
            report.endpoints.append(outcome)
            result.statuses.append(storage.EndpointStatus(
                router.key, endpoint, outcome.ok, at,
                items=len(items) if outcome.ok else 0, rejected=outcome.rejected,
                error="" if outcome.ok else outcome.summary,
            ))
            if outcome.rejected:
                result.notes.append(
                    f"{router.key} {endpoint}: {outcome.rejected} malformed line(s) skipped, "
                    f"first: {outcome.first_rejected}"
                )
            if not outcome.ok:
                continue
            if endpoint == "ap_stats":
                poll.update(stations=items, stations_at=at, stations_complete=outcome.complete)
            elif endpoint == "wan_stats":
                poll.update(wan=items[0], wan_at=at)
            else:
                result.leases[router.key] = items
        report.endpoints.sort(key=lambda e: ENDPOINTS.index(e.endpoint))
        result.routers.append(report)
        if "stations" not in poll and "wan" not in poll:
            continue  # rule 7: nothing fetched, nothing changes
        outcome = account_router(
            router.key, states.get(router.key, RouterState()), RouterPoll(**poll),
            counter_bits=router.counter_bits, max_rate=max_rate,
        )
        result.deltas.extend(outcome.deltas)
        result.notes.extend(outcome.notes)
        result.baselines[router.key] = outcome.baselines
        if outcome.uptime is not None:
            result.uptimes[router.key] = outcome.uptime
    return result


def _parse(endpoint: str, f: Fetched) -> tuple[EndpointOutcome, list]:
    if not f.ok:
        return EndpointOutcome(endpoint, False, f.error), []
    try:
        parsed = _PARSERS[endpoint](f.body)
    except ParseError as e:
        return EndpointOutcome(endpoint, False, str(e)), []
    rejected = parsed.rejected_count
    first = str(parsed.rejected[0]) if parsed.rejected else ""
    if rejected and not parsed.items:
        # Nothing readable at all (binary junk, a wrong page): the endpoint failed. Read
        # as "no stations", it would be taken for every station having left.
        return EndpointOutcome(endpoint, False, f"unreadable answer: {rejected} line(s) rejected, "
                               f"first: {first}", rejected, first, False), []
    if endpoint == "wan_stats":
        wan = parsed.items[0]
        summary = "ok" + (f" (uptime {wan.uptime_seconds}s)" if wan.uptime_seconds is not None else "")
    else:
        summary = f"{len(parsed.items)} {_ITEM_NAMES[endpoint]}"
    if rejected:
        summary += f", {rejected} line(s) rejected"
    return EndpointOutcome(endpoint, True, summary, rejected, first, parsed.complete), parsed.items

