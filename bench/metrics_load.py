"""Section 9: GET /metrics as Prometheus scrapes it, over databases a year old.

Two numbers matter. A scrape between two collector runs is answered from the worker's
answer cache: measured through a real gunicorn (two workers, as deploy/gunicorn.service
runs it), one scrape at a time as Prometheus sends them. The first scrape a worker gets
after a commit (or a period change) computes the answer: measured in process with the
cache off, split into reading the snapshot and rendering it with prometheus_client.
Every measurement is a bounded number of requests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bench.api_load import Gunicorn, get
from bench.common import Profile, Section, fmt, log, percentile
from bench.growth import History

PATH = "/metrics"
WORKERS = 2  # deploy/gunicorn.service


@dataclass
class MetricsLoad:
    devices: int
    series: int
    body_bytes: int
    uncached_ms: list[float]  # whole request in process, answer cache off
    read_ms: list[float]  # read_snapshot alone
    render_ms: list[float]  # render alone (prometheus_client)
    cached_ms: list[float]  # through gunicorn, answer cached, one scrape at a time


def _timed(action, repeats: int) -> list[float]:
    action()  # warm: pages in the page cache, code paths loaded
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return times


def measure(history: History, repeats: int, scrapes: int, work: Path) -> MetricsLoad:
    from api import db, metrics
    from api.app import create_app
    from collector import reads

    app = create_app({"DATA_DIR": str(history.data_dir), "NOW": history.end, "CACHE_ENTRIES": 0})
    client = app.test_client()
    first = client.get(PATH)
    if first.status_code != 200:
        raise RuntimeError(f"{PATH}: HTTP {first.status_code} {first.get_data()[:300]!r}")
    body = first.get_data()
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    uncached = _timed(lambda: client.get(PATH), repeats)
    with app.test_request_context(PATH):
        conn = db.connection()
        settings = reads.read_settings(conn)
        period = reads.resolve_period(settings, None, db.now())
        snapshot = metrics.read_snapshot(conn, period, settings)
        read = _timed(lambda: metrics.read_snapshot(conn, period, settings), repeats)
        render = _timed(lambda: metrics.render(snapshot), repeats)
    with Gunicorn(history.data_dir, history.end, WORKERS, work) as server:
        for _ in range(4 * WORKERS):  # every worker computes and caches the answer once
            get(server.port, PATH)
        cached = []
        for _ in range(scrapes):
            start = time.perf_counter()
            status, _, _ = get(server.port, PATH)
            cached.append((time.perf_counter() - start) * 1000)
            if status != 200:
                raise RuntimeError(f"{PATH} through gunicorn: HTTP {status}")
    return MetricsLoad(history.devices, series, len(body), uncached, read, render, cached)


def bench_metrics(profile: Profile, histories: dict[int, History], work: Path) -> list[MetricsLoad]:
    results = []
    for devices, history in histories.items():
        log(f"7. /metrics: {devices} devices")
        results.append(measure(history, profile.query_repeats * 3, profile.load_requests, work))
    return results


def section_metrics(profile: Profile, results: list[MetricsLoad]) -> tuple[Section, dict]:
    s = Section("9", "/metrics as Prometheus scrapes it")

    def cell(values: list[float]) -> str:
        return f"{fmt(percentile(values, 50), 2)} / {fmt(percentile(values, 99), 2)}"

    s.table(["devices", "series", "answer KiB", "cached, gunicorn: p50 / p99 ms",
             "uncached, in process: p50 / p99 ms", "of which reading", "of which rendering"],
            [[fmt(x.devices), fmt(x.series), fmt(x.body_bytes / 1024, 0), cell(x.cached_ms),
              cell(x.uncached_ms), cell(x.read_ms), cell(x.render_ms)] for x in results])
    s.note(f"'cached': {profile.load_requests} scrapes one after another (as Prometheus sends "
           f"them) through gunicorn with {WORKERS} sync workers, a new connection each, after "
           "every worker has computed the answer once: what every scrape between two collector "
           "runs gets. 'uncached': the whole request through Flask's test client with the answer "
           f"cache off, {profile.query_repeats * 3} times after a warm-up: what the first scrape "
           "a worker gets after each commit (every 30 minutes) or period change costs; 'reading' "
           "is api.metrics.read_snapshot (the SQL), 'rendering' api.metrics.render "
           "(prometheus_client's generate_latest over a registry of its own).")
    s.note("Series: every sample line of the answer. The databases are section 5's year of "
           "history ('one commit a day'): every device active every day, on one of up to 5 "
           "access points, so every device has counters, an info series and period gauges.")
    verdict = {x.devices: x for x in results}
    return s, verdict
