"""Section 7: large fleets (issue 15): 50 x 200, 200 x 500 and 1,000 routers x 100 stations.

The same measurement as section 1 (the real CLI in a child process, against a
bench.fleet_server process on virtual time), for fleets up to 100,000 stations:
the run's overhead above the slowest router, its CPU, its peak RSS (ru_maxrss of
the run-once process itself) and, from instrumented runs, where the time goes.
A series of 1,000-router fleets with 10, 50 and 100 stations each shows how time
and memory grow with the stations.

    python -m bench --fleet 1000x100            # one fleet only (section 7)
    python -m bench --only 7                    # every fleet of the profile
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.collection import (
    PHASES,
    FleetProcess,
    FleetResult,
    fetch_only,
    instrumented_run,
    phase_medians,
    request_count,
    run_once,
)
from bench.common import MIB, Profile, Sample, Section, fmt, log

MB = 1_000_000


@dataclass
class LargeResult:
    run: FleetResult
    fleet_start: float  # seconds for the fleet server to build and render its answers
    loads: list[tuple[float, float, float]] = field(default_factory=list)  # load average per run

    @property
    def routers(self) -> int:
        return self.run.routers

    @property
    def stations(self) -> int:
        return self.run.stations


def bench_large(profile: Profile, fleets: tuple[tuple[int, int], ...], work: Path) -> list[LargeResult]:
    results = []
    for routers, stations in fleets:
        log(f"7. large fleet: {routers} routers x {stations} stations")
        result = FleetResult(routers, stations)
        data_dir = work / f"data-large-{routers}x{stations}"
        begun = time.monotonic()
        with FleetProcess(work, routers, stations, profile.latency, timeout=30.0) as fleet:
            large = LargeResult(result, time.monotonic() - begun)
            result.first = run_once(fleet, data_dir, work)
            result.requests = request_count(fleet)
            for _ in range(profile.large_repeats):
                fleet.advance()
                cpu_before, _ = fleet.cpu()
                large.loads.append(os.getloadavg())
                run = run_once(fleet, data_dir, work)
                cpu_after, _ = fleet.cpu()
                result.wall.add(run.wall)
                result.cpu.add(run.cpu)
                result.maxrss.add(run.maxrss)
                result.server_cpu.add(cpu_after - cpu_before)
            result.fetch.add(fetch_only(fleet))
            result.fetch_wide.add(fetch_only(fleet, workers=result.requests))
            for _ in range(max(1, profile.large_repeats // 2)):
                fleet.advance()
                result.phases.append(instrumented_run(fleet, data_dir, work, strace=False,
                                                      count=False))
        shutil.rmtree(data_dir, ignore_errors=True)
        results.append(large)
    return results


def fetch_floor(profile: Profile, requests_: int, workers: int) -> float:
    """The least a fetch can take: waves of `workers` requests, each wave one latency."""
    return math.ceil(requests_ / workers) * profile.latency


def section_large(profile: Profile, results: list[LargeResult]) -> tuple[Section, dict]:
    from collector import fetch

    workers = fetch.MAX_WORKERS
    s = Section("7", "Large fleets (issue 15): overhead, CPU and peak memory up to 100,000 stations")
    rows = []
    for x in results:
        r = x.run
        overhead = Sample([w - profile.latency for w in r.wall.values])
        floor = fetch_floor(profile, r.requests, workers)
        rows.append([
            f"{r.routers:,} x {r.stations:,}", fmt(r.devices), fmt(r.requests),
            fmt(r.first.wall if r.first else None), fmt(overhead.median), fmt(overhead.min),
            fmt(overhead.max), fmt(r.cpu.median), fmt(r.maxrss.median / MB, 1),
            fmt(r.maxrss.max / MB, 1), fmt(floor - profile.latency), fmt(r.fetch.median),
            fmt(r.fetch_wide.median),
            fmt(r.server_cpu.median),
            f"{statistics.median(lo[0] for lo in x.loads):.2f}" if x.loads else "n/a",
        ])
    s.table(["routers x stations", "stations", "requests", "first run s", "overhead s (median)",
             "overhead s (min)", "overhead s (max)", "CPU s user+sys (median)",
             "peak RSS MB (median)", "peak RSS MB (max)",
             f"fetch floor above latency s ({workers} workers)", "fetch alone s",
             "fetch alone, a worker per request s",
             "fleet server CPU s/run", "load avg 1 min (median over runs)"], rows)
    s.table(["routers x stations"] + [f"{p} s" for p in PHASES],
            [[f"{x.routers:,} x {x.stations:,}"] + [fmt(v) for v in phase_medians(x.run).values()]
             for x in results])
    curve = [x for x in results if x.routers == max(y.routers for y in results)]
    curve.sort(key=lambda x: x.stations)
    if len(curve) >= 2:
        base = curve[0]
        c_rows = []
        for x in curve:
            over = x.run.wall.median - profile.latency
            c_rows.append([
                f"{x.routers:,} x {x.stations:,}", fmt(x.run.devices),
                fmt(over), fmt(x.run.cpu.median), fmt(x.run.maxrss.median / MB, 1),
                fmt(x.run.cpu.median / x.run.devices * 1e6, 1),
                fmt(x.run.maxrss.median / x.run.devices / 1000, 2),
                "-" if x is base else fmt(
                    (x.run.cpu.median - base.run.cpu.median) / (x.run.devices - base.run.devices)
                    * 1e6, 1),
                "-" if x is base else fmt(
                    (x.run.maxrss.median - base.run.maxrss.median)
                    / (x.run.devices - base.run.devices) / 1000, 2),
            ])
        s.table(["fleet (growth in stations)", "stations", "overhead s", "CPU s",
                 "peak RSS MB", "CPU us per station", "RSS kB per station",
                 f"marginal CPU us per station (from {base.run.devices:,})",
                 f"marginal RSS kB per station (from {base.run.devices:,})"], c_rows)
    s.note(f"Every router answers after an added {profile.latency:g} s; overhead = run wall time "
           f"- {profile.latency:g} s. Median, min and max of {profile.large_repeats} runs after the "
           "first (baselines only). Peak RSS is ru_maxrss of the run-once process (wait4 in "
           "bench/launch.py), in MB (10^6 bytes, as the targets).")
    s.note(f"collector.fetch runs at most {workers} requests at once, so a fleet of N requests "
           f"needs ceil(N / {workers}) waves of the router latency: the 'fetch floor' column is "
           "the part of the overhead that is this wave structure alone, whatever the CPU. 'Fetch "
           "alone' is collector.fetch.fetch_all in the bench process, once with the collector's "
           "limit and once with a thread per request (a what-if; the bench process raises its "
           "own file limit as the collector does).")
    s.note("Phases from separate instrumented runs (bench/traced_cli.py), as in section 1. "
           "The curve holds the routers fixed and grows the stations: the marginal cost per "
           "station staying flat or falling means growth no worse than linear.")
    verdict = {(x.routers, x.stations): x for x in results}
    return s, verdict


def rss_mb(value: float) -> str:
    return f"{value / MB:.1f} MB ({value / MIB:.1f} MiB)"
