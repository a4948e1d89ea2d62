"""`python -m bench.sources`: the 50 routers x 200 stations run-once for each source.

    python -m bench.sources [--routers 50] [--stations 200] [--runs 5] [--latency 0.2]

The same fleet (bench.fleet_server, virtual time, 0.2 s latency per answer) read through our
CGI scripts, through ubus (a login and two batches per router, one after another) and through
prometheus-node-exporter-lua (one GET per router, plus dhcp.cgi on router-1). The first run of
each records baselines; the next ones are measured (wall time, CPU, peak memory of the
run-once process). Prints a markdown table. 127.0.0.1 only.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

import click

from bench.collection import FleetProcess, run_once
from bench.common import MIB

SOURCES = ("cgi", "ubus", "prometheus")
ROUND_TRIPS = {"cgi": 1, "ubus": 3, "prometheus": 1}  # answers waited for one after another


@click.command()
@click.option("--routers", default=50, show_default=True)
@click.option("--stations", default=200, show_default=True)
@click.option("--runs", default=5, show_default=True, help="Measured runs per source.")
@click.option("--latency", default=0.2, show_default=True, help="Seconds added to every answer.")
def main(routers: int, stations: int, runs: int, latency: float) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-sources-") as scratch:
        work = Path(scratch)
        for source in SOURCES:
            data_dir = work / f"data-{source}"
            with FleetProcess(work, routers, stations, latency, source=source) as fleet:
                run_once(fleet, data_dir, work)  # baselines
                measured = []
                for _ in range(runs):
                    fleet.advance()
                    measured.append(run_once(fleet, data_dir, work))
            wall = statistics.median(r.wall for r in measured)
            floor = ROUND_TRIPS[source] * latency
            rows.append((source, f"{wall:.3f}", f"{min(r.wall for r in measured):.3f}",
                         f"{floor:.1f}", f"{wall - floor:.3f}",
                         f"{statistics.median(r.user + r.sys for r in measured):.3f}",
                         f"{max(r.maxrss for r in measured) / MIB:.1f}"))
    print(f"{routers} routers x {stations} stations, {latency:g} s latency per answer, "
          f"{runs} measured runs each, {os.cpu_count()} CPUs")
    print("| source | wall median (s) | wall min (s) | latency floor (s) | above the floor (s) "
          "| CPU median (s) | peak RSS (MiB) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
