"""`python -m bench.alerts_cost`: what names, owners and alerts cost a run with nothing to send.

    python -m bench.alerts_cost [--routers 50] [--stations 200] [--runs 7] [--latency 0.2]

One fleet (bench.fleet_server, virtual time), two data directories, two configurations read
by turns after the same 30 minutes of traffic: the fleet's own, and the same plus a
`devices` section naming and owning every station and an `alerts` section (a cap far above
the traffic, the forecast, new-device and router-down rules on, one json:// target on a
loopback port nothing listens on). Nothing is due, so nothing may be sent and Apprise must
not be imported: the last run of each is repeated with `python -X importtime` to show
which modules were loaded. Prints a markdown table. 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path

import click

from bench.collection import FleetProcess
from bench.common import MIB, clean_env, collector_argv, run_child


def _with_alerts(config: Path, work: Path) -> Path:
    document = json.loads(config.read_text())
    notify = work / "notify.urls"
    notify.write_text("json://127.0.0.1:9/nothing-listens-here\n")
    notify.chmod(0o600)
    # Every station is named and owned from the first run's baselines (_name_every_device).
    document.setdefault("settings", {})["monthly_cap_gib"] = 10**8
    document["alerts"] = {"notify_file": str(notify), "new_device": True, "router_down_minutes": 60}
    path = work / "with-alerts.json"
    path.write_text(json.dumps(document))
    return path


def _name_every_device(config: Path, data_dir: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(data_dir / "network_stats.db")
    macs = [m for (m,) in conn.execute("SELECT DISTINCT device FROM baselines WHERE device LIKE '%:%'")]
    conn.close()
    document = json.loads(config.read_text())
    document["devices"] = {mac: {"name": f"device {i}", "owner": f"owner {i % 50}"}
                           for i, mac in enumerate(macs)}
    config.write_text(json.dumps(document))


def _run(config: Path, data_dir: Path, now: float, work: Path, *python: str):
    argv = collector_argv("run-once", "--config", str(config), "--data-dir", str(data_dir))
    argv[1:1] = list(python)
    run = run_child(argv, env=clean_env(NETSTAT_NOW=repr(now)), timeout=300, scratch=work)
    if run.code != 0:
        raise RuntimeError(f"run-once exited {run.code}: {run.stderr[-2000:]}")
    return run


@click.command()
@click.option("--routers", default=50, show_default=True)
@click.option("--stations", default=200, show_default=True)
@click.option("--runs", default=7, show_default=True, help="Measured runs per configuration.")
@click.option("--latency", default=0.2, show_default=True, help="Seconds added to every answer.")
def main(routers: int, stations: int, runs: int, latency: float) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as scratch:
        work = Path(scratch)
        with FleetProcess(work, routers, stations, latency) as fleet:
            plain, alerted = fleet.config, _with_alerts(fleet.config, work)
            dirs = {plain: work / "data-plain", alerted: work / "data-alerts"}
            for config, data_dir in dirs.items():
                _run(config, data_dir, fleet.now, work)  # baselines
            _name_every_device(alerted, dirs[alerted])
            measured: dict[Path, list] = {plain: [], alerted: []}
            for i in range(runs):
                fleet.advance()
                order = (plain, alerted) if i % 2 == 0 else (alerted, plain)
                for config in order:
                    measured[config].append(_run(config, dirs[config], fleet.now, work))
            fleet.advance()
            imports = {}
            for config in (plain, alerted):
                run = _run(config, dirs[config], fleet.now, work, "-X", "importtime")
                lines = [line for line in run.stderr.splitlines() if line.startswith("import time:")]
                imports[config] = (len(lines), sum(1 for line in lines if "apprise" in line))
            sent = measured[alerted][-1].stderr.count("notify ")
            named = len(json.loads(alerted.read_text())["devices"])
    print(f"{routers} routers x {stations} stations, {latency:g} s latency per answer, {runs} "
          f"measured runs each (by turns), {os.cpu_count()} CPUs; {named} devices named")
    print("| configuration | wall median (s) | wall min (s) | CPU median (s) | peak RSS (MiB) "
          "| modules imported | of them apprise |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for config, label in ((plain, "no devices, no alerts"),
                          (alerted, "devices + alerts, nothing due")):
        rows = measured[config]
        print(f"| {label} | {statistics.median(r.wall for r in rows):.3f} "
              f"| {min(r.wall for r in rows):.3f} | {statistics.median(r.cpu for r in rows):.3f} "
              f"| {max(r.maxrss for r in rows) / MIB:.1f} | {imports[config][0]} | {imports[config][1]} |")
    print(f"notify lines in the last alerted run's log: {sent}")


if __name__ == "__main__":
    main()
