"""Section 5: a year of history, its file sizes, and how long the API's queries take on it.

A year of 30-minute runs is 17,520 runs. Instead of running the CLI that often,
the year is written through the collector's own storage layer
(collector.storage.commit_stats and commit_leases, with RunUpdate values built
from collector.accounting types), on virtual time:

- "every run": one commit per simulated 30-minute run, as the collector would
  make them (17,520 commits a year);
- "one commit a day" (the shortcut): one commit per simulated day holding that
  day's traffic, plus the day's other 47 `runs` rows inserted directly. Every
  table ends with the same rows as with every run (usage_day and usage_period
  hold sums; baselines, router health and leases hold the latest values; runs
  gets a row per run), only the page layout can differ.

The smallest size is built both ways to show what the shortcut changes.
Every device is on one of up to 5 access points and moves traffic every day: the
worst case for history size.
"""

from __future__ import annotations

import random
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.common import MIB, Profile, Sample, Section, fmt, log
from collector import storage
from collector.accounting import Baseline, UptimeMark, Usage
from collector.parse import Lease
from collector.periods import local_day, period_containing
from collector.schema import LEASES_DB, STATS_DB, WAN

UTC = timezone.utc  # datetime.UTC is Python 3.11+

ZONE = ZoneInfo("UTC")
YEAR_START = datetime(2025, 3, 1, tzinfo=UTC).timestamp()
RUN_SECONDS = 1800
RUNS_PER_DAY = 86400 // RUN_SECONDS
MAX_ROUTERS = 5


def mac_of(n: int) -> str:
    return f"02:20:{n >> 16 & 0xff:02x}:{n >> 8 & 0xff:02x}:{n & 0xff:02x}:01"


def routers_for(devices: int) -> list[str]:
    return ["router-1"] + [f"ap-{i}" for i in range(2, min(MAX_ROUTERS, max(devices, 1)) + 1)]


@dataclass
class History:
    data_dir: Path
    devices: int
    days: int
    per_run: bool
    seconds: float  # to build
    commits: int
    end: float  # the virtual time of the last run

    def size(self, name: str) -> int:
        path = self.data_dir / name
        return path.stat().st_size if path.exists() else 0


def build_history(data_dir: Path, devices: int, days: int, *, per_run: bool,
                  seed: int = 6) -> History:
    """Write `days` days of 30-minute runs for `devices` devices into a new data directory."""
    shutil.rmtree(data_dir, ignore_errors=True)
    storage.ensure_data_dir(data_dir)
    stats_path = data_dir / STATS_DB
    leases_path = data_dir / LEASES_DB
    stats = storage.connect_writer(stats_path)
    storage.migrate_stats(stats, stats_path, ZONE, 1)
    leases_conn = storage.connect_writer(leases_path)
    storage.migrate_leases(leases_conn, leases_path)
    rng = random.Random(seed)
    routers = routers_for(devices)
    home = {mac_of(n): routers[n % len(routers)] for n in range(devices)}
    # A device's share of the traffic: heavy-tailed, a few heavy users.
    weight = {mac: rng.paretovariate(1.2) for mac in home}
    counters = {mac: [0, 0] for mac in home}
    wan = [0, 0]
    leases = [Lease(mac, f"10.{n >> 16 & 0xff}.{n >> 8 & 0xff}.{n & 0xff}", f"host-{n}",
                    f"01:{mac}", 0) for n, mac in enumerate(home)]
    start = time.perf_counter()
    commits = 0
    at = YEAR_START
    for day in range(days):
        day_start = YEAR_START + day * 86400
        slots = [day_start + i * RUN_SECONDS for i in range(RUNS_PER_DAY)]
        batches = [[t] for t in slots] if per_run else [slots]
        for batch in batches:
            at = batch[-1]
            if not per_run:
                # The day's other runs, as the collector would have recorded them.
                stats.execute("BEGIN IMMEDIATE")
                stats.executemany(
                    "INSERT INTO runs (started_at, finished_at, endpoints_ok, endpoints_failed) "
                    "VALUES (?, ?, ?, 0)",
                    [(t, t + 1, len(routers) + 2) for t in batch[:-1]])
                stats.execute("COMMIT")
            usage = []
            factor = len(batch) * RUN_SECONDS / 86400
            period = period_containing(at, ZONE).label
            day_label = local_day(at, ZONE)
            wan_rx = wan_tx = 0
            for mac, router in home.items():
                # About 300 MB a day for the average device, mostly downloads.
                down = int(weight[mac] * rng.uniform(0.2, 1.8) * 60_000_000 * factor) + 1
                up = down // rng.randint(5, 20) + 1
                counters[mac][0] += up
                counters[mac][1] += down
                wan_rx += down
                wan_tx += up
                usage.append(Usage(period, day_label, router, mac, up, down, at))
            wan[0] += wan_rx
            wan[1] += wan_tx
            usage.append(Usage(period, day_label, "router-1", WAN, wan_rx, wan_tx, at))
            baselines = {r: {} for r in routers}
            for mac, router in home.items():
                baselines[router][mac] = Baseline(counters[mac][0], counters[mac][1], at)
            baselines["router-1"][WAN] = Baseline(wan[0], wan[1], at)
            statuses = [storage.EndpointStatus(r, "ap_stats", True, at, items=len(baselines[r]))
                        for r in routers]
            statuses += [storage.EndpointStatus("router-1", "wan_stats", True, at, items=1),
                         storage.EndpointStatus("router-1", "dhcp_leases", True, at,
                                                items=len(leases))]
            update = storage.RunUpdate(
                started_at=at, finished_at=at + 1, current_period_at=at, usage=usage,
                baselines=baselines,
                uptimes={"router-1": UptimeMark(int(at - YEAR_START) + 86400, at)},
                endpoints=statuses,
            )
            storage.commit_stats(stats, stats_path, update, ZONE, 1)
            storage.commit_leases(leases_conn, leases_path, {"router-1": leases}, at, ZONE)
            commits += 1
    seconds = time.perf_counter() - start
    stats.close()
    leases_conn.close()
    return History(data_dir, devices, days, per_run, seconds, commits, at + 1)


# --- Queries -------------------------------------------------------------------------------------


def time_queries(history: History, repeats: int) -> dict[str, Sample]:
    """The read functions the API calls, on one open read-only connection."""
    from api import queries as api_queries
    from collector import reads

    conn = reads.open_readonly(history.data_dir)
    try:
        settings = reads.read_settings(conn)
        now = history.end
        current = reads.resolve_period(settings, None, now)
        past_label = (datetime.fromtimestamp(now, ZONE).replace(day=1) - timedelta(days=170)
                      ).strftime("%Y-%m")
        past = reads.resolve_period(settings, past_label, now)
        last = datetime.fromtimestamp(now, ZONE).date()
        first_month = (last.replace(day=1) - timedelta(days=330)).strftime("%Y-%m")
        device = mac_of(history.devices // 2)
        queries = {
            "usage, current period": lambda: reads.usage(conn, current, settings),
            "usage, a period 6 months back": lambda: reads.usage(conn, past, settings),
            "client history, 30 days": lambda: api_queries.daily_history(
                conn, device, last - timedelta(days=29), last, settings),
            "client history, 366 days": lambda: api_queries.daily_history(
                conn, device, last - timedelta(days=365), last, settings),
            "client history, 12 months": lambda: api_queries.monthly_history(
                conn, device, first_month, current.label, settings),
            "WAN history, 30 days": lambda: api_queries.daily_history(
                conn, WAN, last - timedelta(days=29), last, settings),
            "WAN history, 12 months": lambda: api_queries.monthly_history(
                conn, WAN, first_month, current.label, settings),
            "known_device (client history's check)": lambda: api_queries.known_device(conn, device),
            # What every request pays before any answer, a 304 included (api/answers.py).
            "data_state (every request)": lambda: api_queries.data_state(conn),
            "last_run_at (every request)": lambda: reads.last_run_at(conn),
        }
        samples = {name: Sample() for name in queries}
        for name, query in queries.items():
            query()  # warm: the first read pulls the pages into the page cache
            for _ in range(repeats):
                start = time.perf_counter()
                query()
                samples[name].add(time.perf_counter() - start)
        usage = reads.usage(conn, current, settings)
        if len(usage["clients"]) != history.devices:
            raise RuntimeError(f"usage has {len(usage['clients'])} clients, "
                               f"expected {history.devices}")
    finally:
        conn.close()
    return samples


def time_requests(history: History, repeats: int) -> dict[str, Sample]:
    """Whole API requests through Flask's test client, with the answer cache off."""
    from api.app import create_app

    app = create_app({"DATA_DIR": str(history.data_dir), "NOW": history.end, "CACHE_ENTRIES": 0})
    client = app.test_client()
    device = mac_of(history.devices // 2)
    paths = {
        "GET /api/v1/usage": "/api/v1/usage",
        "GET /api/v1/clients/MAC/history (30 days)": f"/api/v1/clients/{device}/history",
        "GET /api/v1/clients/MAC/history?granularity=month": (
            f"/api/v1/clients/{device}/history?granularity=month"),
        "GET /api/v1/wan/history": "/api/v1/wan/history",
        "GET /api.php?action=combined": "/api.php?action=combined",
    }
    samples = {name: Sample() for name in paths}
    for name, path in paths.items():
        response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: HTTP {response.status_code} {response.get_data()[:300]!r}")
        for _ in range(repeats):
            start = time.perf_counter()
            client.get(path)
            samples[name].add(time.perf_counter() - start)
    # As deployed: the answer cache on, the answer already computed; and a client that has it.
    cached = create_app({"DATA_DIR": str(history.data_dir), "NOW": history.end}).test_client()
    etag = cached.get("/api/v1/usage").headers["ETag"]
    for name, headers, status in (("GET /api/v1/usage, answer cached", {}, 200),
                                  ("GET /api/v1/usage, If-None-Match: 304", {"If-None-Match": etag},
                                   304)):
        samples[name] = Sample()
        for _ in range(repeats):
            start = time.perf_counter()
            response = cached.get("/api/v1/usage", headers=headers)
            samples[name].add(time.perf_counter() - start)
            if response.status_code != status:
                raise RuntimeError(f"/api/v1/usage: HTTP {response.status_code}, not {status}")
    return samples


@dataclass
class GrowthResult:
    histories: list[History]
    queries: dict[int, dict[str, Sample]]
    requests: dict[int, dict[str, Sample]]


def bench_growth(profile: Profile, work: Path) -> GrowthResult:
    histories = []
    queries = {}
    requests_ = {}
    for devices in profile.growth_devices:
        ways = [False]
        if profile.growth_exact_check and devices == min(profile.growth_devices):
            ways = [True, False]
        for per_run in ways:
            log(f"5. a year: {devices} devices, {'every run' if per_run else 'one commit a day'}")
            data_dir = work / f"year-{devices}-{'runs' if per_run else 'days'}"
            history = build_history(data_dir, devices, profile.growth_days, per_run=per_run)
            histories.append(history)
        log(f"5. queries: {devices} devices")
        queries[devices] = time_queries(history, profile.query_repeats)
        requests_[devices] = time_requests(history, profile.query_repeats)
    return GrowthResult(histories, queries, requests_)


def section_growth(profile: Profile, result: GrowthResult) -> tuple[Section, dict]:
    s = Section("5", "Database growth over a year, and the API's queries at that size")
    rows = []
    for h in result.histories:
        runs = h.days * RUNS_PER_DAY
        stats_size = h.size(STATS_DB)
        rows.append([
            fmt(h.devices), fmt(h.days), "every run" if h.per_run else "one commit a day",
            fmt(h.commits), fmt(stats_size / MIB, 2), fmt(h.size(LEASES_DB) / MIB, 2),
            fmt(stats_size / max(h.devices * h.days, 1), 0),
            fmt(h.seconds, 1), fmt(runs),
        ])
    s.table(["devices", "days", "written as", "commits", "network_stats.db MiB",
             "dhcp_leases.db MiB", "bytes per device-day", "build s", "runs recorded"], rows)
    names = list(next(iter(result.queries.values())).keys())
    q_rows = [[name] + [f"{fmt(result.queries[d][name].median * 1000, 2)} "
                        f"({fmt(result.queries[d][name].min * 1000, 2)})"
                        for d in result.queries] for name in names]
    s.table(["read function (collector/reads.py), ms median (min)"]
            + [f"{fmt(d)} devices" for d in result.queries], q_rows)
    names = list(next(iter(result.requests.values())).keys())
    r_rows = [[name] + [f"{fmt(result.requests[d][name].median * 1000, 2)} "
                        f"({fmt(result.requests[d][name].min * 1000, 2)})"
                        for d in result.requests] for name in names]
    s.table(["whole request in process (Flask test client), answer cache off unless said, "
             "ms median (min)"]
            + [f"{fmt(d)} devices" for d in result.requests], r_rows)
    s.note("Written through collector.storage (commit_stats, commit_leases) on virtual time, "
           f"{profile.growth_days} days of 30-minute runs, every device active every day on one "
           "of up to 5 access points (the worst case for size). 'one commit a day' is the "
           "shortcut described in bench/growth.py: same rows, fewer commits; the smallest size is "
           "also written with every run, to compare.")
    s.note(f"Query times: {profile.query_repeats} repetitions after one warm-up, on the "
           "year-old database (the 'one commit a day' one), with the clock at the last run. "
           "'usage' includes reading every lease and remembered name (for hostnames). "
           "data_state and last_run_at are what api/answers.py reads for every request, before "
           "it knows whether to answer 304.")
    largest = max(result.queries)
    worst = max((sample.median, name) for name, sample in result.queries[largest].items()
                if "every request" not in name)
    worst_request = max((sample.median, name) for name, sample in result.requests[largest].items()
                        if "cached" not in name and "304" not in name)
    not_modified = result.requests[largest].get("GET /api/v1/usage, If-None-Match: 304")
    per_request = (result.queries[largest]["data_state (every request)"].median
                   + result.queries[largest]["last_run_at (every request)"].median)
    return s, {"devices": largest, "worst_query": worst, "worst_request": worst_request,
               "304": not_modified.median if not_modified else None, "per_request": per_request}
