"""`check-router` and `check-config`: fetch each endpoint once, parse it with the
collector's own parsers, and say what a run would make of it. Writes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from collector.config import Config, url_problem
from collector.endpoints import ENDPOINT_OF_SCRIPT, ENDPOINTS, SCRIPT_NAMES
from collector.errors import ConfigError, ParseError
from collector.fetch import Fetched, Request, fetch_all, requests_for
from collector.text import LINE_LIMIT, log_safe, redact

SHOWN_REJECTS = 5


@dataclass
class EndpointCheck:
    router: str
    endpoint: str
    url: str
    ok: bool
    lines: list[str] = field(default_factory=list)  # what to tell the user, in order

    def render(self) -> str:
        """Printable lines: the URL without its password, a router's text escaped."""
        head = f"{self.router} {self.endpoint} {redact(self.url)}: {'OK' if self.ok else 'PROBLEM'}"
        return "\n".join(log_safe(line, LINE_LIMIT) for line in
                         [head] + [f"    {line}" for line in self.lines])


def _host_label(url: str) -> str:
    """`host:port` of a URL: the router's name in check-router's output (no user info)."""
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port}" if parts.port else host


def requests_for_urls(urls: list[str], timeout: float) -> list[Request]:
    """One request per URL naming a script, three per URL naming a router (its cgi-bin).

    ConfigError (a usage error, exit 2) for an unusable URL, naming it by its position: it may
    hold a password.
    """
    result = []
    for number, url in enumerate(urls, 1):
        problem = url_problem(url)
        if problem:
            raise ConfigError(f"URL {number}: {problem}")
        label = _host_label(url)
        script = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
        if script in ENDPOINT_OF_SCRIPT:
            result.append(Request(label, ENDPOINT_OF_SCRIPT[script], url, timeout))
            continue
        base = url.rstrip("/")
        if not base.endswith("/cgi-bin"):
            base += "/cgi-bin"
        for endpoint, name in SCRIPT_NAMES.items():
            result.append(Request(label, endpoint, f"{base}/{name}", timeout))
    return result


def requests_for_config(config: Config) -> list[Request]:
    return requests_for(config.routers)


def examine(fetched: Fetched) -> EndpointCheck:
    """What one answer means for the collector: counts, optional fields, rejected lines."""
    r = fetched.request
    check = EndpointCheck(r.router, r.endpoint, r.url, ok=False)
    if not fetched.ok:
        check.lines.append(f"not reachable: {fetched.error}")
        return check
    try:
        parsed = ENDPOINTS[r.endpoint].parser(fetched.body)
    except ParseError as e:
        check.lines.append(f"unusable answer: {e}")
        return check
    check.ok = not parsed.rejected
    if r.endpoint == "ap_stats":
        stations = parsed.items
        with_seconds = sum(1 for s in stations if s.connected_seconds is not None)
        check.lines.append(f"{len(stations)} stations parsed")
        if not stations:
            check.lines.append("no stations connected right now (fine, but nothing to check)")
        elif with_seconds == len(stations):
            check.lines.append("CONNECTED_SECONDS present: re-association is detected exactly")
        else:
            check.lines.append(
                f"CONNECTED_SECONDS missing on {len(stations) - with_seconds} of {len(stations)} "
                "stations: re-association is only seen when a counter goes down"
            )
    elif r.endpoint == "wan_stats":
        wan = parsed.items[0]
        check.lines.append(f"wan: rx {wan.rx_bytes} tx {wan.tx_bytes}")
        if wan.uptime_seconds is None:
            check.lines.append("uptime: missing: reboots are only seen when a counter goes down")
        else:
            check.lines.append(f"uptime: {wan.uptime_seconds}s: reboots are detected exactly")
    else:
        check.lines.append(f"{len(parsed.items)} IPv4 leases parsed, {parsed.ignored} lines ignored "
                           "(duid, DHCPv6)")
        unnamed = sum(1 for lease in parsed.items if not lease.hostname)
        if unnamed:
            check.lines.append(f"{unnamed} leases without a hostname (shown by IP or MAC)")
    if parsed.rejected_count:
        check.lines.append(f"{parsed.rejected_count} lines rejected:")
        check.lines.extend(f"  {x}" for x in parsed.rejected[:SHOWN_REJECTS])
        if parsed.rejected_count > SHOWN_REJECTS:
            check.lines.append(f"  ... and {parsed.rejected_count - SHOWN_REJECTS} more")
    return check


def check(requests_: list[Request]) -> list[EndpointCheck]:
    return [examine(f) for f in fetch_all(requests_)]
