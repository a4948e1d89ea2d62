"""`netstat-collect demo`: a newcomer's first look, with no router needed.

Simulated routers on 127.0.0.1 move data for a day of virtual time; the real
collection path polls them every 30 virtual minutes into real SQLite files; then
the monthly table is printed and checked against what the simulation really did.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from collector import reads
from collector.config import load_config
from collector.report import render_usage
from collector.run import run_once
from collector.schema import WAN
from collector.sim.routers import build_fleet

INTERVAL = 1800  # seconds between collection rounds, as in deploy/crontab


def run_demo(data_dir: Path | None, rounds: int, echo: Callable[[str], None] = print) -> int:
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="netstat-demo-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    # Start far enough back that the last round lands at the present moment.
    start = time.time() - INTERVAL * (rounds - 1)
    fleet = build_fleet(3, 3, now=start, seed=42)
    with fleet:
        config_path = fleet.write_config(data_dir / "routers.json", settings={"timezone": "UTC"})
        config = load_config(config_path)
        echo(f"Simulated routers on 127.0.0.1: {', '.join(fleet.routers)}")
        echo(f"Data directory: {data_dir}")
        for round_no in range(rounds):
            if round_no == rounds // 2:
                # A reboot mid-day, a minute after a poll: counters restart from zero,
                # and the collector must count what follows without losing or doubling it.
                fleet.advance(60)
                fleet.reboot("ap-2")
                fleet.step(INTERVAL - 60, wan_router="router-1")
            elif round_no:
                fleet.step(INTERVAL, wan_router="router-1")
            result = run_once(config, data_dir, now=lambda: fleet.now)
            if result.exit_code:
                for router in result.routers:
                    echo(router.line())
                return 1
        echo(f"Ran {rounds} collection rounds, {INTERVAL // 60} simulated minutes apart "
             "(one access point rebooted halfway, devices roamed between access points).")
        echo("")
        conn = reads.open_readonly(data_dir)
        try:
            settings = reads.read_settings(conn)
            usage = reads.usage(conn, reads.resolve_period(settings, None, fleet.now), settings)
            # Check every period the simulated day touched, not only the one shown.
            counted: dict[str, list[int]] = {}
            for period in reads.periods(conn):
                chosen = reads.resolve_period(settings, period["label"], fleet.now)
                past = reads.usage(conn, chosen, settings)
                for c in past["clients"] + [{"mac": WAN, **past["wan"]}]:
                    total = counted.setdefault(c["mac"], [0, 0])
                    total[0] += c["rx_bytes"]
                    total[1] += c["tx_bytes"]
        finally:
            conn.close()
    echo(render_usage(usage))
    truth = {k: v for k, v in fleet.truth.items() if not k.startswith("wan:")}
    truth[WAN] = fleet.wan_truth()
    exact = all(counted.get(k, [0, 0]) == v for k, v in truth.items())
    echo("Every device and the WAN match the simulation byte for byte." if exact
         else "MISMATCH between counted bytes and the simulation.")
    echo("")
    echo(f"Look around:  netstat-collect report --data-dir {data_dir}")
    echo(f"Serve the API: NETSTAT_DATA_DIR={data_dir} flask --app api.app run")
    return 0 if exact else 1
