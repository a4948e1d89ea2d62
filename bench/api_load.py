"""Section 6: the API under load, a real gunicorn on 127.0.0.1 over databases a year old.

Every measurement is bounded: wrk runs for a fixed number of seconds, the Python
client sends a fixed number of requests, and gunicorn is stopped (SIGTERM, then
SIGKILL) by the process id it was started with.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    LOOPBACK,
    REPO,
    Profile,
    Section,
    clean_env,
    fmt,
    free_port,
    log,
    percentile,
)
from bench.growth import History

ENDPOINTS = ("/api/v1/usage", "/api.php?action=combined")
FLOOR = "/"  # the API's index: no database, a small constant answer
CONCURRENCY = (1, 8)  # one client at a time (latency), eight at once (throughput)


@dataclass
class Load:
    devices: int
    workers: int
    path: str
    conditional: bool
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    status: int  # the status every answer had (200 or 304)
    body_bytes: int
    tool: str


class Gunicorn:
    """`python -m gunicorn 'api.app:create_app()'` (or `app`) on a free port of 127.0.0.1."""

    def __init__(self, data_dir: Path, now: float, workers: int, work: Path,
                 app: str | None = None):
        self.port = free_port()
        self.log_path = work / f"gunicorn-{workers}-{self.port}.log"
        self._log = open(self.log_path, "wb")
        argv = [sys.executable, "-m", "gunicorn", app or "api.app:create_app()",
                "-b", f"{LOOPBACK}:{self.port}", "-w", str(workers), "--log-level", "warning",
                "--graceful-timeout", "5"]
        env = clean_env(NETSTAT_DATA_DIR=str(data_dir), NETSTAT_NOW=repr(now))
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=self._log, cwd=REPO, env=env,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _, _ = get(self.port, "/api/v1/usage")
                if status == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"gunicorn did not answer; see {self.log_path}")
            time.sleep(0.1)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()

    def __enter__(self) -> Gunicorn:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def get(port: int, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return response.status, dict(response.getheaders()), body
    finally:
        conn.close()


# --- Load generators ---------------------------------------------------------------------------


_WRK_LATENCY = re.compile(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def run_wrk(port: int, path: str, etag: str | None, connections: int, seconds: float,
            work: Path) -> tuple[float, float, float, int, int]:
    """rps, p50 ms, p99 ms, requests, errors (non-2xx/3xx answers and socket errors)."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    if etag:
        script = work / "if-none-match.lua"
        script.write_text(f"wrk.headers[\"If-None-Match\"] = '{etag}'\n")
        argv += ["-s", str(script)]
    argv.append(f"http://{LOOPBACK}:{port}{path}")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {proc.stderr.strip()[:500]}")
    out = proc.stdout
    latency = {q: float(v) * _UNIT[unit] for q, v, unit in _WRK_LATENCY.findall(out)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests_ = int(re.search(r"(\d+) requests in", out).group(1))
    errors = 0
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if bad:
        errors += int(bad.group(1))
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sockets:
        # gunicorn's sync workers close every connection: wrk may count a read error on
        # reconnect; connect errors and timeouts are real ones.
        errors += int(sockets.group(1)) + int(sockets.group(4))
    return rps, latency.get("50", float("nan")), latency.get("99", float("nan")), requests_, errors


def run_python_client(port: int, path: str, etag: str | None, connections: int, total: int,
                      seconds: float, expected: int) -> tuple[float, float, float, int, int]:
    """A bounded client: `total` requests over `connections` threads, at most `seconds` long."""
    headers = {"If-None-Match": etag} if etag else {}
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    remaining = [total]
    stop_at = time.monotonic() + seconds + 30

    def worker() -> None:
        while time.monotonic() < stop_at:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            start = time.perf_counter()
            try:
                status, _, _ = get(port, path, headers)
            except OSError:
                status = 0
            elapsed = (time.perf_counter() - start) * 1000
            with lock:
                latencies.append(elapsed)
                if status != expected:
                    errors[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return (len(latencies) / elapsed, percentile(latencies, 50), percentile(latencies, 99),
            len(latencies), errors[0])


def bench_api(profile: Profile, histories: dict[int, History], work: Path) -> tuple[list[Load], str]:
    use_wrk = profile.use_wrk and shutil.which("wrk") is not None
    tool = "wrk" if use_wrk else "python client"
    if profile.use_wrk and not use_wrk:
        log("6. wrk is not installed (apt-get install wrk): using the Python client")
    loads = []
    for devices, history in histories.items():
        for workers in profile.api_workers:
            log(f"6. API: {devices} devices, {workers} worker(s)")
            with Gunicorn(history.data_dir, history.end, workers, work) as server:
                # The floor: a route that touches no database, through the same server.
                for connections in CONCURRENCY:
                    numbers = (run_wrk(server.port, FLOOR, None, connections,
                                       profile.load_seconds, work) if use_wrk else
                               run_python_client(server.port, FLOOR, None, connections,
                                                 profile.load_requests, profile.load_seconds, 200))
                    rps, p50, p99, count, errors = numbers
                    loads.append(Load(devices, workers, FLOOR, False, connections, rps, p50, p99,
                                      count, errors, 200, len(get(server.port, FLOOR)[2]), tool))
                for path in ENDPOINTS:
                    status, headers, body = get(server.port, path)
                    if status != 200:
                        raise RuntimeError(f"{path}: HTTP {status}")
                    etag = headers.get("ETag")
                    # Every worker computes and caches the answer once: warm them all.
                    for _ in range(8 * workers):
                        get(server.port, path)
                    check, _, _ = get(server.port, path, {"If-None-Match": etag})
                    if check != 304:
                        raise RuntimeError(f"{path}: If-None-Match answered {check}, not 304")
                    for conditional in (False, True):
                        for connections in CONCURRENCY:
                            if use_wrk:
                                numbers = run_wrk(server.port, path, etag if conditional else None,
                                                  connections, profile.load_seconds, work)
                            else:
                                numbers = run_python_client(
                                    server.port, path, etag if conditional else None, connections,
                                    profile.load_requests, profile.load_seconds,
                                    304 if conditional else 200)
                            rps, p50, p99, count, errors = numbers
                            loads.append(Load(devices, workers, path, conditional, connections,
                                              rps, p50, p99, count, errors,
                                              304 if conditional else 200, len(body), tool))
    return loads, tool


def section_api(profile: Profile, loads: list[Load], tool: str) -> tuple[Section, dict]:
    s = Section("6", "API under load (gunicorn, sync workers)")
    rows = []
    for x in loads:
        rows.append([
            fmt(x.devices), str(x.workers), f"`{x.path}`" + (" (floor)" if x.path == FLOOR else ""),
            "304 (If-None-Match)" if x.conditional else f"200 ({fmt(x.body_bytes / 1024, 0)} KiB)",
            str(x.connections), fmt(x.rps, 0), fmt(x.p50_ms, 2), fmt(x.p99_ms, 2),
            fmt(x.requests), fmt(x.errors),
        ])
    s.table(["devices", "workers", "path", "answer", "connections", "req/s", "p50 ms", "p99 ms",
             "requests", "errors"], rows)
    if tool == "wrk":
        s.note(f"wrk -t1 -cN -d{profile.load_seconds:g}s --latency (an If-None-Match header set by "
               "a Lua script), after every worker has computed and cached the answer once. "
               "One connection measures a request's latency; eight measure throughput, and their "
               "latency includes queueing behind the other seven.")
    else:
        s.note(f"Python client (http.client), {profile.load_requests} requests per line, a new "
               "connection per request; wrk was not used" + (
                   " (not installed)" if profile.use_wrk else " (smoke profile)") + ".")
    s.note("`/ (floor)` is the API's index, which reads no database: what gunicorn's sync "
           "worker, Flask and a new TCP connection per request cost on this machine.")
    s.note("The databases are section 5's year of history ('one commit a day'), the API's clock "
           "at the last run. gunicorn, the load tool and everything else share the machine's "
           "cores. The answer cache is on (as deployed): section 5 shows uncached request times.")
    verdict: dict = {}
    for x in loads:
        if x.workers == 1 and x.connections == 1:
            if x.path == "/api/v1/usage":
                verdict[(x.devices, x.conditional)] = x
            elif x.path == FLOOR and x.devices == 1000:
                verdict["floor"] = x
    return s, verdict
