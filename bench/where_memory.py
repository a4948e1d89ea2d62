"""Where a large run's memory goes: tracemalloc at the moment the commit starts.

    python -m bench.where_memory --fleet 1000x100 [--top 15]

Runs the collector in this process (collector.run.run_once, the code the CLI runs)
against a bench.fleet_server fleet on 127.0.0.1: a first run records baselines,
then a second run is traced. collector.storage.commit_run is wrapped so that a
snapshot is taken when it is called, the moment when every station's parsed
sample, old and new baseline, delta, usage row and lease are alive together, and
again as it returns. Prints the largest allocation sites (by source line) at the
first snapshot, and the traced peak. tracemalloc counts Python allocations only:
SQLite's page cache and the allocator's own slack are not in it (the peak RSS in
section 7 includes them).
"""

from __future__ import annotations

import argparse
import tempfile
import tracemalloc
from pathlib import Path

MB = 1_000_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fleet", default="1000x100", help="ROUTERSxSTATIONS")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    routers, stations = (int(n) for n in args.fleet.lower().split("x", 1))

    from bench.collection import FleetProcess
    from collector import run, storage
    from collector.config import load_config

    snapshots: dict[str, tracemalloc.Snapshot] = {}
    commit_run = storage.commit_run

    def traced_commit_run(*a, **kw):
        snapshots["commit starts"] = tracemalloc.take_snapshot()
        try:
            return commit_run(*a, **kw)
        finally:
            snapshots["commit ends"] = tracemalloc.take_snapshot()

    with tempfile.TemporaryDirectory(prefix="netstat-where-memory-") as scratch:
        work = Path(scratch)
        with FleetProcess(work, routers, stations, 0.0, timeout=60.0) as fleet:
            config = load_config(fleet.config)
            run.run_once(config, work / "data", now=lambda: fleet.now)
            fleet.advance()
            storage.commit_run = traced_commit_run
            tracemalloc.start(1)
            try:
                run.run_once(config, work / "data", now=lambda: fleet.now)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
                storage.commit_run = commit_run
    at_commit = snapshots["commit starts"]
    total = sum(s.size for s in at_commit.statistics("filename"))
    devices = routers * stations
    print(f"{routers} x {stations} ({devices:,} stations): traced peak {peak / MB:.1f} MB; "
          f"alive when the commit starts {total / MB:.1f} MB "
          f"({total / devices:.0f} bytes per station)")
    print(f"{'MB':>8} {'bytes/station':>14} {'blocks':>10}  where")
    for stat in at_commit.statistics("lineno")[:args.top]:
        frame = stat.traceback[0]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        print(f"{stat.size / MB:8.1f} {stat.size / devices:14.0f} {stat.count:10,}  {where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
