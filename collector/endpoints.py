"""The endpoints a router answers, one row each: what config, run, check and the simulator
all read, so that adding one (or, soon, a source) means adding a row here.

Pure: names, the CGI script we ship for each, the noun for what it lists, its parser.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from collector.parse import Parsed, parse_ap_stats, parse_dhcp_leases, parse_wan_stats


@dataclass(frozen=True)
class Endpoint:
    name: str  # the key in routers.json and in router_endpoints
    script: str  # the CGI script in router/cgi-bin/ that answers it
    noun: str  # what its items are, for "12 stations"
    parser: Callable[..., Parsed]


ENDPOINTS = {
    e.name: e
    for e in (
        Endpoint("ap_stats", "totalwifi.cgi", "stations", parse_ap_stats),
        Endpoint("wan_stats", "wan.cgi", "wan", parse_wan_stats),
        Endpoint("dhcp_leases", "dhcp.cgi", "leases", parse_dhcp_leases),
    )
}
# In the order a router's endpoints are configured, fetched and reported.
ENDPOINT_NAMES = tuple(ENDPOINTS)
SCRIPT_NAMES = {name: e.script for name, e in ENDPOINTS.items()}
ENDPOINT_OF_SCRIPT = {e.script: name for name, e in ENDPOINTS.items()}
