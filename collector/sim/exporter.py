"""A simulated prometheus-node-exporter-lua /metrics (text format 0.0.4) from a Fleet's router.

As the real one prints it: each collector prints its `# TYPE` lines when it starts, then its
samples (so TYPE lines stand far from them); label order varies between lines; label values are
not escaped (the SSID below holds `"` and `,`); `collect[]=NAME` in the query limits the
collectors that run. Faults come from a table (FAULTS).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from collector.sim.ubus import RADIOS, WAN_DEVICE, radio_of

if TYPE_CHECKING:
    from collector.sim.routers import Fleet, SimRouter

SSID = 'Café "5G", upstairs'  # printed unescaped, as the exporter does
COLLECTORS = ("cpu", "time", "netdev", "hostapd_stations", "wifi_stations", "loadavg")
FAULTS = (
    "exporter-omit-zero",  # omit_zero_values=1: zero counters have no line
    "exporter-wifi-only",  # only the wifi_stations collector is installed: no byte counters
    "exporter-hostile-ssid",  # an SSID made to look like a second station label
    "exporter-bad-line",  # one station line with a value that is not a number
)


def render(fleet: Fleet, router: SimRouter, query: str) -> str:
    fault = router.faults.get("metrics", "ok")
    asked = parse_qs(query).get("collect[]") or list(COLLECTORS)
    if fault == "exporter-wifi-only":
        asked = [c for c in asked if c != "hostapd_stations"]
    rng = random.Random(f"{router.key}:{fleet.now}")
    out: list[str] = []
    omit_zero = fault == "exporter-omit-zero"

    def sample(name: str, labels: dict[str, str], value) -> None:
        if omit_zero and value == 0:
            return
        items = list(labels.items())
        rng.shuffle(items)  # the Lua table's order: it varies
        block = "{" + ",".join(f'{k}="{v}"' for k, v in items) + "}" if items else ""
        out.append(f"{name}{block} {value}")

    now = fleet.now
    # The exporter's own metrics: TYPE lines first, samples after every collector ran.
    out.append("# TYPE node_scrape_collector_duration_seconds gauge")
    out.append("# TYPE node_scrape_collector_success gauge")
    with fleet.lock:
        if "cpu" in asked:
            out.append("# TYPE node_boot_time_seconds gauge")
            sample("node_boot_time_seconds", {}, int(router.booted_at))
            out.append("# TYPE node_context_switches_total counter")
            sample("node_context_switches_total", {}, 123456)
        if "time" in asked:
            out.append("# TYPE node_time_seconds counter")
            sample("node_time_seconds", {}, f"{now:.2f}")
        if "netdev" in asked:
            devices = {"lo": (1000, 1000), "br-lan": (router.wan_tx, router.wan_rx)}
            if router.has_wan:
                devices[WAN_DEVICE] = (router.wan_rx, router.wan_tx)
            out.append("# TYPE node_network_receive_bytes_total counter")
            out.append("# TYPE node_network_transmit_bytes_total counter")
            for device, (rx, tx) in devices.items():
                sample("node_network_receive_bytes_total", {"device": device}, rx % 2**64)
                sample("node_network_transmit_bytes_total", {"device": device}, tx % 2**64)
        if "hostapd_stations" in asked:
            metrics = ("hostapd_station_receive_bytes_total", "hostapd_station_transmit_bytes_total",
                       "hostapd_station_connected_seconds_total")
            out.extend(f"# TYPE {name} counter" for name in metrics)
            for s in router.stations.values() if router.has_ap else ():
                vif = radio_of(s.mac)
                labels = {"vif": vif, "ssid": SSID, "bssid": f"02:11:22:33:44:{RADIOS.index(vif):02x}",
                          "encryption": "sae-mixed", "frequency": "5180", "channel": "36",
                          "station": s.mac}
                if fault == "exporter-hostile-ssid":
                    labels["ssid"] = 'x",station="02:de:ad:be:ef:00'
                values = (s.rx_bytes % 2**64, s.tx_bytes % 2**64, int(now - s.associated_at))
                for name, value in zip(metrics, values, strict=True):
                    sample(name, labels, value)
            if fault == "exporter-bad-line" and router.stations:
                out.append(f'hostapd_station_receive_bytes_total{{station="{next(iter(router.stations))}"}} '
                           "NaNx")
        if "wifi_stations" in asked:
            out.append("# TYPE wifi_station_signal_dbm gauge")
            for s in router.stations.values():
                sample("wifi_station_signal_dbm", {"ifname": radio_of(s.mac), "mac": s.mac}, -52)
        for name in asked:
            if name in COLLECTORS:  # an unknown name is skipped, as the exporter does
                sample("node_scrape_collector_duration_seconds", {"collector": name}, 0.0012)
                sample("node_scrape_collector_success", {"collector": name}, 1)
    return "\n".join(out) + "\n"
