"""One collection run, as the README's steps: config, lock and open, fetch, parse, account,
bucket, commit. The I/O around the pure parts (parse.py, accounting.py)."""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from collector import DEFAULT_LOCK_WAIT_SECONDS, alerts, storage
from collector.accounting import (
    Delta,
    RouterPoll,
    RouterState,
    Usage,
    account_router,
    bucket,
    max_bytes_per_second,
)
from collector.config import Config
from collector.endpoints import ENDPOINT_NAMES, ENDPOINTS
from collector.errors import ClockError, StorageError
from collector.fetch import Fetched, fetch_all
from collector.parse import Lease
from collector.schema import LEASES_DB, STATS_DB
from collector.sim.faults import crash_point
from collector.sources import Answer, answers_of, requests_for

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
class Answers:
    """What the routers said this run, parsed: step 4's result, step 5's input."""

    polls: dict[str, RouterPoll]  # router -> its readings, for routers that gave any
    leases: dict[str, list[Lease]]  # router -> its leases, for routers whose leases were read
    statuses: list[storage.EndpointStatus]  # every endpoint's outcome, for the health table
    reports: list[RouterReport]  # the same, to print
    notes: list[str]  # rejected lines
    # Routers whose counters came as signed 32-bit numbers (rpcd before 2023): read as 32-bit.
    narrow: set[str] = field(default_factory=set)


@dataclass
class Accounted:
    """Step 5's result: the deltas and each router's new state."""

    deltas: list[Delta]
    baselines: dict = field(default_factory=dict)  # router -> device -> Baseline
    uptimes: dict = field(default_factory=dict)  # router -> UptimeMark
    notes: list[str] = field(default_factory=list)


@dataclass
class RunResult:
    """What a run did, to print: per router lines, notes, deltas, usage."""

    started_at: float
    routers: list[RouterReport]
    deltas: list[Delta]
    usage: list[Usage]
    notes: list[str]
    committed: bool = False
    alerts: list[alerts.Alert] = field(default_factory=list)  # raised (or, dry run, due)
    deliveries: list = field(default_factory=list)  # notify.Sent, one per target messaged

    @property
    def deliveries_failed(self) -> int:
        return sum(1 for d in self.deliveries if d.error is not None)

    @property
    def exit_code(self) -> int:
        return 1 if any(r.failed for r in self.routers) else 0


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
    """The steps after the configuration (1) and the lock (2, in run_once)."""
    zone, month_start_day = config.settings.zone(), config.settings.month_start_day
    with _open(data_dir, config, dry_run=dry_run) as (stats, leases):  # 2. open
        states, last_run_at = storage.load_states(stats.conn)
        started = _clock_checked(now(), last_run_at)
        mono_start = time.monotonic()
        fetched = fetch_all(requests_for(config.routers))  # 3. fetch
        crash_point("fetched")
        finished = started + (time.monotonic() - mono_start)
        answers = _parse(config, fetched, started, mono_start)  # 4. parse
        accounted = _account(config, states, answers.polls, answers.narrow)  # 5. account
        usage = bucket(accounted.deltas, zone, month_start_day)  # 6. bucket
        result = RunResult(started, answers.reports, accounted.deltas, usage,
                           answers.notes + accounted.notes)
        update = storage.RunUpdate(  # 7. commit
            started_at=started, finished_at=finished, current_period_at=started, usage=usage,
            baselines=accounted.baselines, uptimes=accounted.uptimes, endpoints=answers.statuses,
            leases=answers.leases, monthly_cap_bytes=config.settings.monthly_cap_bytes(),
            labels=config.devices, alert_rules=config.alerts, public_url=config.settings.public_url,
        )
        if dry_run:
            result.alerts = storage.preview_alerts(stats.conn, update, zone, month_start_day)
            return result
        committed = storage.commit_run(stats, leases, update, zone, month_start_day)
        result.notes += committed.notes
        result.alerts = committed.raised
        result.committed = True
        # 8. notify: after the commit, so no service can delay or undo the accounting.
        try:
            result.deliveries = deliver(stats, config, now)
        except Exception as e:  # noqa: BLE001 (whatever it is, the run is committed)
            # A ledger that cannot be read or written now (a reader holding a lock too long,
            # a full disk), a sending process that cannot be started (no memory for a fork,
            # the interpreter gone after an upgrade): a note, never a failed run.
            reason = str(e) if isinstance(e, (StorageError, sqlite3.Error)) else f"{type(e).__name__}: {e}"
            result.notes.append(f"alerts not delivered this run: {reason}; the next run tries again "
                                "(a message that went out may then be sent once more)")
        return result


def deliver(stats: storage.Database, config: Config, now: Callable[[], float]) -> list:
    """Send every alert not yet delivered to each configured target; record each outcome.

    One message per target per run (several alerts are combined), all targets at once,
    within the alerts' deadline. The notify module (and Apprise, in its child process) is
    loaded only when something is pending.
    """
    rules = config.alerts
    if rules is None or not rules.targets:
        return []
    targets = {t.label: t for t in rules.targets}
    pending = storage.pending_deliveries(stats.conn, list(targets), now())
    if not pending:
        return []
    from collector import notify

    by_target: dict[str, list[storage.PendingDelivery]] = {}
    for p in pending:
        by_target.setdefault(p.target, []).append(p)
    messages = []
    for label, items in by_target.items():
        title, body = alerts.combined([(p.title, p.body) for p in items])
        messages.append(notify.Message(targets[label].url.reveal(), label, title, body))
    sent = notify.send_all(messages, rules.deadline_seconds)
    at = now()
    for (target, items), outcome in zip(by_target.items(), sent, strict=True):
        storage.record_delivery(stats.conn, stats.path, [p.alert for p in items], target, at,
                                outcome.error)
    return sent


@contextmanager
def _open(data_dir: Path, config: Config, *, dry_run: bool) -> Iterator[tuple]:
    """Both databases, migrated; for a dry run a read-only snapshot of the stats and no leases."""
    stats_path, leases_path = data_dir / STATS_DB, data_dir / LEASES_DB
    if dry_run:
        with tempfile.TemporaryDirectory(prefix="netstat-dry-run-") as scratch:
            stats = storage.connect_snapshot(stats_path, Path(scratch))
            try:
                yield storage.Database(stats, stats_path), None
            finally:
                if stats is not None:
                    stats.close()
        return
    storage.check_pair(stats_path, leases_path)
    stats = leases = None
    try:
        stats = storage.connect_writer(stats_path)
        storage.migrate_stats(stats, stats_path, config.settings.zone(), config.settings.month_start_day)
        leases = storage.connect_writer(leases_path)
        storage.migrate_leases(leases, leases_path)
        yield storage.Database(stats, stats_path), storage.Database(leases, leases_path)
    finally:
        for conn in (stats, leases):
            if conn is not None:
                conn.close()


def _clock_checked(started: float, last_run_at: float | None) -> float:
    if last_run_at is not None and started < last_run_at - CLOCK_TOLERANCE_SECONDS:
        raise ClockError(
            f"the system clock ({time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}) is "
            f"{last_run_at - started:.0f}s behind the last committed run; not collecting until it "
            "is right again (the next run then counts the whole gap)"
        )
    return started


def _parse(config: Config, fetched: list[Fetched], started: float, mono_start: float) -> Answers:
    """Every answer parsed into this run's readings, per router; each body is dropped once parsed.

    A router's source (collector/sources.py) says which endpoints each answer serves.
    """
    by_router: dict[str, list[Fetched]] = {}
    for f in fetched:
        by_router.setdefault(f.request.router, []).append(f)
    fetched.clear()
    answers = Answers(polls={}, leases={}, statuses=[], reports=[], notes=[])
    for router in config.routers:
        report = RouterReport(router.key, router.name, [])
        poll = {}
        read: list[tuple[float, Answer]] = []
        received = by_router.pop(router.key, [])
        while received:
            f = received.pop(0)
            at = started + (f.received - mono_start)
            read.extend((at, answer) for answer in answers_of(router, f, at))
            del f
        read.sort(key=lambda pair: ENDPOINT_NAMES.index(pair[1].endpoint))
        for at, answer in read:
            endpoint = answer.endpoint
            outcome, items = _parse_one(answer)
            report.endpoints.append(outcome)
            answers.statuses.append(storage.EndpointStatus(
                router.key, endpoint, outcome.ok, at,
                items=len(items) if outcome.ok else 0, rejected=outcome.rejected,
                error="" if outcome.ok else outcome.summary,
            ))
            if outcome.rejected:
                answers.notes.append(
                    f"{router.key} {endpoint}: {outcome.rejected} malformed line(s) skipped, "
                    f"first: {outcome.first_rejected}"
                )
            if not outcome.ok:
                continue
            if answer.parsed.signed_32bit:
                answers.narrow.add(router.key)
                if router.counter_bits != 32:
                    answers.notes.append(
                        f"{router.key} {endpoint}: byte counters came as signed 32-bit numbers "
                        "(rpcd before 2023): read modulo 2^32 and counted as 32-bit counters; "
                        'set "counter_bits": 32 for this router, or upgrade rpcd')
            if endpoint == "ap_stats":
                poll.update(stations=items, stations_at=at, stations_complete=outcome.complete)
            elif endpoint == "wan_stats":
                poll.update(wan=items[0], wan_at=at)
            else:
                answers.leases[router.key] = items
        answers.reports.append(report)
        if poll:  # rule 7: a router with nothing fetched changes nothing
            answers.polls[router.key] = RouterPoll(**poll)
    return answers


def _parse_one(answer: Answer) -> tuple[EndpointOutcome, list]:
    endpoint, parsed = answer.endpoint, answer.parsed
    if parsed is None:
        return EndpointOutcome(endpoint, False, answer.error), []
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
        summary = f"{len(parsed.items)} {ENDPOINTS[endpoint].noun}"
    if rejected:
        summary += f", {rejected} line(s) rejected"
    return EndpointOutcome(endpoint, True, summary, rejected, first, parsed.complete), parsed.items


def _account(config: Config, states: dict[str, RouterState], polls: dict[str, RouterPoll],
             narrow: set[str]) -> Accounted:
    """The accounting rules over every router that answered; its readings dropped once used."""
    accounted = Accounted(deltas=[])
    max_rate = max_bytes_per_second(config.settings.max_rate_mbps)
    for router in config.routers:
        poll = polls.pop(router.key, None)
        if poll is None:
            continue
        outcome = account_router(router.key, states.get(router.key, RouterState()), poll,
                                 counter_bits=32 if router.key in narrow else router.counter_bits,
                                 max_rate=max_rate)
        accounted.deltas.extend(outcome.deltas)
        accounted.notes.extend(outcome.notes)
        accounted.baselines[router.key] = outcome.baselines
        if outcome.uptime is not None:
            accounted.uptimes[router.key] = outcome.uptime
    return accounted
