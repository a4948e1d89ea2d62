"""A bench-only fleet of simulated routers in its own process, on virtual time.

    python -m bench.fleet_server --routers N --stations M --latency 0.2 --config PATH [--extra MODE]

It serves `collector.sim.routers.build_fleet(N, M)` on 127.0.0.1 (any free port),
writes a routers.json for it, prints `ready NOW`, then obeys one command per
line on stdin:

    advance SECONDS   devices transfer SECONDS worth of traffic; answers `ok NOW`
    cpu               answers `cpu SECONDS REQUESTS`: this process's user+sys CPU, requests served
    quit              (or end of input) stops

Differences from `netstat-collect simulate`, for repeatable numbers: time is
virtual (the collector is given the same clock with NETSTAT_NOW), traffic comes
from a seeded generator, nobody joins, leaves or roams, and every answer is
rendered when time advances instead of when it is requested, so during a run the
server only sleeps its latency and sends bytes. The collector is what is measured.

`--extra` adds one more access point, `cap-1`, for the memory bench:
  cap-padding   ap_stats is exactly SIZE_CAP bytes: comment lines (parsed to 0 stations)
  cap-stations  ap_stats is exactly SIZE_CAP bytes of valid station lines (~77,000 stations)
  over-cap      the simulator's `huge` fault: a body with no length, far beyond the cap
The process exits by itself after --max-seconds, whatever its parent does.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path

from collector.fetch import SIZE_CAP
from collector.sim.routers import Fleet, build_fleet

# A fixed, ordinary moment (2026-03-10 12:00 UTC): every bench run sees the same calendar.
START = 1773144000.0
CAP_ROUTER = "cap-1"
EXTRAS = ("cap-padding", "cap-stations", "over-cap")


def cap_padding_body() -> str:
    """Exactly SIZE_CAP bytes that parse to no station: four comment lines."""
    line_size = SIZE_CAP // 4
    line = "#" + "x" * (line_size - 2) + "\n"
    body = line * 4
    return body + "#" * (SIZE_CAP - len(body))  # no remainder for a 4 MiB cap


def cap_stations_body(now: float, step: int) -> str:
    """Exactly SIZE_CAP bytes of valid `MAC RX TX CONNECTED` lines, padded by one comment.

    Fixed-width numbers keep the size constant from one run to the next while the
    counters grow with `step`.
    """
    lines = []
    size = 0
    connected = int(now - START) + 86400
    n = 0
    while True:
        n += 1
        mac = f"02:10:{n >> 16 & 0xff:02x}:{n >> 8 & 0xff:02x}:{n & 0xff:02x}:01"
        line = f"{mac} {n * 1000 + step * 7000:012d} {n * 5000 + step * 90000:012d} {connected:09d}\n"
        if size + len(line) + 2 > SIZE_CAP:
            break
        lines.append(line)
        size += len(line)
    rest = SIZE_CAP - size
    lines.append("#" + "x" * (rest - 2) + "\n")
    body = "".join(lines)
    assert len(body.encode()) == SIZE_CAP
    return body


class BenchFleet:
    def __init__(self, routers: int, stations: int, latency: float, extra: str | None):
        self.fleet: Fleet = build_fleet(routers, stations, now=START, seed=6)
        self.extra = extra
        self.steps = 0
        if extra:
            self.fleet.add_router(CAP_ROUTER, wan=False, dhcp=False)
            if extra == "over-cap":
                self.fleet.set_fault(CAP_ROUTER, "huge", endpoints=("ap_stats",))
        for router in self.fleet.routers.values():
            router.delay = latency
        self.bodies: dict[tuple[str, str], str] = {}
        original = self.fleet.render
        self._render_now = original
        # The handler calls fleet.render(router, endpoint) per request: answer from
        # the bodies rendered at the last advance instead.
        self.fleet.render = lambda router, endpoint: self.bodies[(router.key, endpoint)]
        self._prerender()

    def _prerender(self) -> None:
        bodies = {}
        for router in self.fleet.routers.values():
            for endpoint, present in (("ap_stats", router.has_ap), ("wan_stats", router.has_wan),
                                      ("dhcp_leases", router.has_dhcp)):
                if not present:
                    continue
                if router.key == CAP_ROUTER and endpoint == "ap_stats":
                    if self.extra == "cap-padding":
                        bodies[(router.key, endpoint)] = cap_padding_body()
                    elif self.extra == "cap-stations":
                        bodies[(router.key, endpoint)] = cap_stations_body(self.fleet.now, self.steps)
                    else:
                        bodies[(router.key, endpoint)] = ""  # over-cap: the fault sends the body
                else:
                    bodies[(router.key, endpoint)] = self._render_now(router, endpoint)
        self.bodies = bodies

    def advance(self, seconds: float) -> float:
        with self.fleet.lock:
            self.fleet.step(seconds, wan_router="router-1", churn=0.0)
            self.steps += 1
            self._prerender()
            return self.fleet.now


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routers", type=int, required=True)
    parser.add_argument("--stations", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--config", required=True, help="write routers.json here")
    parser.add_argument("--extra", choices=EXTRAS)
    parser.add_argument("--timeout", type=float, default=10.0, help="timeout_seconds in the config")
    parser.add_argument("--max-seconds", type=float, default=1800.0)
    args = parser.parse_args(argv)

    # However this process is left behind, it goes away on its own.
    threading.Timer(args.max_seconds, os._exit, (0,)).start()
    bench = BenchFleet(args.routers, args.stations, args.latency, args.extra)
    bench.fleet.start(0)
    bench.fleet.write_config(Path(args.config), {"timezone": "UTC", "timeout_seconds": args.timeout})
    print(f"ready {bench.fleet.now!r}", flush=True)
    for line in sys.stdin:
        command, _, value = line.strip().partition(" ")
        if command == "advance":
            print(f"ok {bench.advance(float(value))!r}", flush=True)
        elif command == "cpu":
            times = os.times()
            print(f"cpu {times.user + times.system!r} {bench.fleet.requests_served}", flush=True)
        elif command == "quit":
            break
        else:
            print(f"error unknown command {command!r}", flush=True)
    bench.fleet.stop()
    os._exit(0)  # the watchdog timer thread is not a daemon


if __name__ == "__main__":
    sys.exit(main())
