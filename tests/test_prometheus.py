"""A real Prometheus (Debian's package) scraping /metrics under a real gunicorn, over databases
the real collector wrote from simulated routers; and two sites federated into a global one.

Everything listens on 127.0.0.1 on ports picked at run time; every server is stopped at the
end of its test. What is compared, and how exactly:

- raw counter values (an instant query) are our numbers as stored: equal byte for byte to
  the collector's sums, to /api/v1/usage and to what the simulation moved;
- `max_over_time - min_over_time` of a counter over the test's window is exactly the bytes
  counted while Prometheus watched, and `resets()` is 0 across a router reboot and a month
  change: our counters never go down;
- `increase()` extrapolates to the ends of its range (Prometheus's documented behaviour),
  so it is compared with that exact delta extrapolated the way Prometheus does it, from
  the raw samples Prometheus returns for the same range at the same evaluation time.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import pytest
from support import (
    REPO,
    T0,
    UTC,
    collect,
    gunicorn_server,
    prometheus_server,
    stored_usage,
    truth_of,
)
from test_metrics import dashboard_targets

from collector.sim.routers import Fleet

pytestmark = pytest.mark.slow

LAPTOP = "aa:00:00:00:00:01"
PHONE = "aa:00:00:00:00:02"
TABLET = "aa:00:00:00:00:04"
DECEMBER = datetime(2026, 12, 1, 0, 30, tzinfo=UTC).timestamp()
WINDOW = "10m"  # longer than any test here runs, so a range covers every sample


def from_deploy(name: str, interval: str, targets: list[str], site: str | None = None) -> str:
    """A file of deploy/ as shipped, with only what an administrator edits changed: the
    targets and site name, and a scrape interval of a second or two for the test."""
    text = (REPO / "deploy" / name).read_text()
    text, n = re.subn(r"scrape_interval: \S+", f"scrape_interval: {interval}", text)
    text, m = re.subn(r"scrape_timeout: \S+", f"scrape_timeout: {interval}", text)
    text, t = re.subn(r"- targets: \[[^]]*\]", "- targets: [" + ", ".join(f"'{x}'" for x in targets)
                      + "]", text)
    assert (n, m, t) == (1, 1, 1), name
    if site is not None:
        text, k = re.subn(r"site: \S+", f"site: {site}", text)
        assert k == 1
    return text


def site_config(target: str, site: str = "home") -> str:
    """One site's Prometheus: deploy/prometheus.yml, scraping every second."""
    return from_deploy("prometheus.yml", "1s", [target], site)


def federation_config(targets: list[str]) -> str:
    """The global Prometheus: deploy/prometheus-federate.yml, every 2 seconds."""
    return from_deploy("prometheus-federate.yml", "2s", targets)


def test_the_shipped_configurations_pass_promtool():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian's prometheus package) is not installed")
    files = [str(REPO / "deploy" / name) for name in ("prometheus.yml", "prometheus-federate.yml")]
    proc = subprocess.run([promtool, "check", "config", *files], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def host_port(url: str) -> str:
    return url.removeprefix("http://")


def run(fleet: Fleet, config: Path, data_dir: Path) -> None:
    result = collect(fleet, config, data_dir)
    assert result.code == 0, result.stderr


def expected_counters(fleet: Fleet) -> dict[tuple[str, str], float]:
    """(mac or main_wan, direction) -> bytes the simulation moved since first contact."""
    result = {}
    for device, (rx, tx) in truth_of(fleet).items():
        download, upload = (rx, tx) if device == "main_wan" else (tx, rx)
        result[(device, "download")], result[(device, "upload")] = float(download), float(upload)
    return result


def prometheus_increase(points: list[tuple[int, float]], range_start: int, range_end: int) -> float:
    """increase() as Prometheus 2.x computes it for a counter without resets (promql
    extrapolatedRate): the delta between first and last sample, extrapolated towards the
    range's ends. Times in milliseconds."""
    (first_t, first_v), (last_t, last_v) = points[0], points[-1]
    delta = last_v - first_v
    sampled = (last_t - first_t) / 1000
    average = sampled / (len(points) - 1)
    to_start, to_end = (first_t - range_start) / 1000, (range_end - last_t) / 1000
    if delta > 0 and first_v >= 0:
        to_start = min(to_start, sampled * (first_v / delta))
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    return delta * (interval / sampled)


def test_prometheus_scrapes_exact_counters_across_a_reboot_and_a_month_change(tmp_path):
    with ExitStack() as stack:
        fleet = stack.enter_context(Fleet(now=T0))
        fleet.add_router("router-1")
        fleet.add_router("ap-2", wan=False, dhcp=False)
        fleet.join("router-1", LAPTOP, hostname="laptop", ip="10.0.0.11")
        fleet.join("router-1", PHONE, hostname="phone", ip="10.0.0.12")
        fleet.join("ap-2", TABLET)
        config = fleet.write_config(tmp_path / "routers.json",
                                    settings={"timezone": "UTC", "monthly_cap_gib": 500})
        data_dir = tmp_path / "data"
        run(fleet, config, data_dir)  # first contact: baselines only
        fleet.transfer("router-1", LAPTOP, 1_000_000, 150_000_000, wan_router="router-1")
        fleet.transfer("ap-2", TABLET, 500_000, 7_000_000, wan_router="router-1")
        fleet.advance(1800)
        run(fleet, config, data_dir)
        before = expected_counters(fleet)

        # The API's clock at the end of the story: December is its current period.
        server = stack.enter_context(gunicorn_server(data_dir, tmp_path / "gunicorn.log",
                                                     now=DECEMBER + 600))
        prometheus = stack.enter_context(
            prometheus_server(tmp_path / "prometheus", site_config(host_port(server.url))))
        wan = 'sum(netstat_wan_bytes_total{direction="download"})'
        first = prometheus.wait_for(wan, {(): before[("main_wan", "download")]})
        assert first == {(): before[("main_wan", "download")]}, prometheus.log_text()
        started = time.time()

        # router-1 reboots right after a poll (its counters restart), then more traffic.
        fleet.reboot("router-1")
        fleet.transfer("router-1", LAPTOP, 2_000_000, 100_000_000, wan_router="router-1")
        fleet.transfer("router-1", PHONE, 300_000, 4_000_000, wan_router="router-1")
        fleet.advance(86400)
        run(fleet, config, data_dir)
        middle = expected_counters(fleet)[("main_wan", "download")]
        assert prometheus.wait_for(wan, {(): middle}) == {(): middle}

        # The month changes: December's traffic lands in a new period, the counters go on.
        fleet.now = DECEMBER
        fleet.transfer("router-1", LAPTOP, 30_000, 400_000, wan_router="router-1")
        fleet.transfer("ap-2", TABLET, 40_000, 50_000, wan_router="router-1")
        run(fleet, config, data_dir)
        after = expected_counters(fleet)
        last = prometheus.wait_for(wan, {(): after[("main_wan", "download")]})
        assert last == {(): after[("main_wan", "download")]}
        time.sleep(3)  # a few more scrapes of the final state
        at = int(time.time())

        # Raw counters: the simulation's truth, the collector's stored sums, byte for byte.
        devices = {(m["mac"], m["direction"]): v for m, v in (
            (item["metric"], float(item["value"][1]))
            for item in prometheus.query("netstat_device_bytes_total", at))}
        wans = prometheus.values("netstat_wan_bytes_total", "direction", at)
        got = {**devices, **{("main_wan", d): v for d, v in wans.items()}}
        assert got == after
        stored = stored_usage(data_dir)
        assert {k: got[(k, "upload" if k != "main_wan" else "download")] for k in stored} == {
            k: float(rx) for k, (rx, _) in stored.items()}

        # Over the whole window: no reset, and exactly the bytes counted while watched.
        assert prometheus.values(f"resets(netstat_device_bytes_total[{WINDOW}])", at=at) != {}
        assert set(prometheus.values(f"resets(netstat_device_bytes_total[{WINDOW}])", at=at)
                   .values()) == {0.0}
        assert set(prometheus.values(f"resets(netstat_wan_bytes_total[{WINDOW}])", at=at)
                   .values()) == {0.0}
        watched = {d: after[("main_wan", d)] - before[("main_wan", d)] for d in ("download", "upload")}
        assert prometheus.values(f"max_over_time(netstat_wan_bytes_total[{WINDOW}]) - "
                                 f"min_over_time(netstat_wan_bytes_total[{WINDOW}])",
                                 "direction", at) == watched
        laptop = f'netstat_device_bytes_total{{mac="{LAPTOP}",direction="download"}}'
        assert prometheus.values(f"sum(max_over_time({laptop}[{WINDOW}]) - "
                                 f"min_over_time({laptop}[{WINDOW}]))", at=at) == {
            (): after[(LAPTOP, "download")] - before[(LAPTOP, "download")]}

        # increase(): that exact delta, extrapolated as Prometheus does, from its own samples.
        for expr in ('netstat_wan_bytes_total{direction="download"}', laptop):
            raw = prometheus.query(f"{expr}[{WINDOW}]", at)
            assert len(raw) == 1
            points = [(round(float(t) * 1000), float(v)) for t, v in raw[0]["values"]]
            assert points[0][1] == (before[("main_wan", "download")] if "wan" in expr
                                    else before[(LAPTOP, "download")])
            expected = prometheus_increase(points, at * 1000 - 600_000, at * 1000)
            (increase,) = prometheus.values(f"sum(increase({expr}[{WINDOW}]))", at=at).values()
            assert increase >= points[-1][1] - points[0][1]
            assert math.isclose(increase, expected, rel_tol=1e-9), (increase, expected)

        # The period gauges: December, as /api/v1/usage shows it.
        usage = server.get("/api/v1/usage").json()
        assert usage["period"]["label"] == "2026-12"
        assert prometheus.values("netstat_wan_period_bytes", "direction", at) == {
            "download": usage["wan"]["download_bytes"], "upload": usage["wan"]["upload_bytes"]}
        period = {(m["mac"], m["direction"]): float(v) for m, v in (
            (item["metric"], item["value"][1])
            for item in prometheus.query("netstat_device_period_bytes", at))}
        assert period == {**{(c["mac"], "download"): c["download_bytes"] for c in usage["clients"]},
                          **{(c["mac"], "upload"): c["upload_bytes"] for c in usage["clients"]}}
        assert prometheus.values("sum(netstat_period_start_timestamp_seconds)", at=at) == {
            (): datetime(2026, 12, 1, tzinfo=UTC).timestamp()}
        # A dashboard's "this month" from the counters agrees with the gauge: the counters'
        # value now minus their value when the period started (here: before Prometheus ran,
        # so the gauge is the reference) is what /api/v1/usage says.
        assert usage["wan"]["download_bytes"] == after[("main_wan", "download")] - middle

        assert prometheus.values("sum(netstat_period_cap_bytes)", at=at) == {(): 500 * 2**30}
        assert usage["wan"]["cap_bytes"] == 500 * 2**30

        # Every query of the Grafana dashboard runs and, but for "nothing is down", has data.
        for title, target in dashboard_targets():
            expr = (target["expr"].replace("$site", ".*").replace("$device", ".*")
                    .replace("$__range", WINDOW))
            result = prometheus.query(expr, at)
            assert (result == []) == (title == "Endpoints down"), (title, expr, result)
        top = prometheus.query(next(t["expr"] for title, t in dashboard_targets()
                                    if title == "Top devices this period").replace("$site", ".*"), at)
        # Prometheus drops a label whose value is empty: a device without a name has none.
        assert [(r["metric"].get("hostname", ""), float(r["value"][1])) for r in top] == sorted(
            [(c["hostname"] or "", float(c["total_bytes"])) for c in usage["clients"]],
            key=lambda x: -x[1])

        # Health: every endpoint up, the reboot seen.
        assert set(prometheus.values("netstat_router_endpoint_up", at=at).values()) == {1.0}
        boot = prometheus.values("netstat_router_boot_timestamp_seconds", "router", at)
        assert abs(boot["router-1"] - T0 - 1800) < 2  # rebooted right after the 12:30 run
        assert prometheus.values("up", at=at) == {
            (("__name__", "up"), ("instance", host_port(server.url)), ("job", "netstat")): 1.0}
        assert time.time() - started < 120


def build_site(fleet: Fleet, base: Path, traffic: list[tuple[str, int, int]]) -> tuple[Path, Path]:
    """One site: router-1 with the given (mac, upload, download), collected twice."""
    base.mkdir(parents=True)
    fleet.add_router("router-1")
    for mac, _, _ in traffic:
        fleet.join("router-1", mac)
    config = fleet.write_config(base / "routers.json", settings={"timezone": "UTC"})
    data_dir = base / "data"
    run(fleet, config, data_dir)
    for mac, upload, download in traffic:
        fleet.transfer("router-1", mac, upload, download, wan_router="router-1")
    fleet.advance(1800)
    run(fleet, config, data_dir)
    return config, data_dir


def test_a_global_prometheus_federates_two_sites_with_a_site_label(tmp_path):
    sites = {"home": [(LAPTOP, 1_000_000, 50_000_000), (PHONE, 20_000, 3_000_000)],
             "office": [(LAPTOP, 7_000_000, 900_000_000), (TABLET, 5, 7)]}
    with ExitStack() as stack:
        fleets, configs, data_dirs, servers, locals_ = {}, {}, {}, {}, {}
        for site, traffic in sites.items():
            fleets[site] = stack.enter_context(Fleet(now=T0))
            configs[site], data_dirs[site] = build_site(fleets[site], tmp_path / site, traffic)
            servers[site] = stack.enter_context(gunicorn_server(
                data_dirs[site], tmp_path / site / "gunicorn.log", now=fleets[site].now))
            locals_[site] = stack.enter_context(prometheus_server(
                tmp_path / site / "prometheus", site_config(host_port(servers[site].url), site)))
        world = stack.enter_context(prometheus_server(
            tmp_path / "global", federation_config([host_port(p.url) for p in locals_.values()])))

        def usage_by_site() -> dict:
            result = {}
            for site, server in servers.items():
                wan = server.get("/api/v1/usage").json()["wan"]
                result[(("direction", "download"), ("site", site))] = float(wan["download_bytes"])
                result[(("direction", "upload"), ("site", site))] = float(wan["upload_bytes"])
            return result

        query = "sum by (site, direction) (netstat_wan_bytes_total)"
        expected = usage_by_site()
        assert expected[(("direction", "download"), ("site", "office"))] == 900_000_007
        assert world.wait_for(query, expected) == expected, world.log_text()

        # More traffic at one site reaches the global server through both levels.
        fleet = fleets["home"]
        fleet.transfer("router-1", PHONE, 1, 2_000_000, wan_router="router-1")
        fleet.advance(1800)
        run(fleet, configs["home"], data_dirs["home"])
        expected = usage_by_site()
        assert expected[(("direction", "download"), ("site", "home"))] == 55_000_000
        assert world.wait_for(query, expected) == expected

        # The same router name at both sites stays two series, told apart by `site`.
        per_router = world.values('netstat_router_wan_bytes_total{direction="download"}')
        assert sorted((dict(k)["site"], dict(k)["router"], dict(k)["job"]) for k in per_router) == [
            ("home", "router-1", "netstat"), ("office", "router-1", "netstat")]
        info = world.values("count by (site) (netstat_device_info)", "site")
        assert info == {"home": 2.0, "office": 2.0}
