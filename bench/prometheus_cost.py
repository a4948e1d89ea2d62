"""What one site costs a real Prometheus: `python -m bench.prometheus_cost [DEVICES] [SECONDS]`.

Builds a year of history for DEVICES devices (bench/growth.py, default 1,000), serves it
with gunicorn on 127.0.0.1, and lets Debian's `prometheus` scrape /metrics every second
for SECONDS seconds (default 60) beside a second Prometheus that scrapes nothing. Prints
the series per scrape, the scrape duration Prometheus measured, and both servers'
resident memory and head series. Everything on 127.0.0.1; both servers are stopped.
Used for docs/scaling.md.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.api_load import Gunicorn
from bench.common import REPO
from bench.growth import build_history

sys.path.insert(0, str(REPO / "tests"))
from support import prometheus_server  # noqa: E402  (the tests' helper: free port, stop)


def one_value(server, expr: str) -> float:
    result = server.query(expr)
    return float(result[0]["value"][1]) if result else float("nan")


def main(devices: int = 1000, seconds: float = 60) -> None:
    work = Path(tempfile.mkdtemp(prefix="netstat-promcost-"))
    try:
        history = build_history(work / "data", devices, 365, per_run=False)
        with Gunicorn(history.data_dir, history.end, 2, work) as api:
            target = f"127.0.0.1:{api.port}"
            site = ("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n"
                    f"  - job_name: netstat\n    static_configs:\n      - targets: ['{target}']\n")
            with prometheus_server(work / "site", site) as scraping, \
                    prometheus_server(work / "idle", "global:\n  scrape_interval: 1s\n") as idle:
                time.sleep(seconds)
                rows = {
                    "series per scrape": one_value(scraping, "scrape_samples_scraped"),
                    "scrape duration p50 s (Prometheus's view)": one_value(
                        scraping, "quantile_over_time(0.5, scrape_duration_seconds[10m])"),
                    "scrape duration max s": one_value(
                        scraping, "max_over_time(scrape_duration_seconds[10m])"),
                    "scrapes": one_value(scraping, "count_over_time(up[10m])"),
                }
                # Each server's own numbers, read from its /metrics without scraping itself.
                for name, server in (("scraping", scraping), ("idle", idle)):
                    text = server.session.get(server.url + "/metrics", timeout=30).text
                    for line in text.splitlines():
                        for metric in ("process_resident_memory_bytes ", "prometheus_tsdb_head_series ",
                                       "go_memstats_heap_inuse_bytes "):
                            if line.startswith(metric):
                                rows[f"{name}: {metric.strip()}"] = float(line.split()[-1])
        for key, value in rows.items():
            print(f"{key}: {value:,.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(*(int(a) if i == 0 else float(a) for i, a in enumerate(sys.argv[1:])))
