"""`check-router` and `check-config`: fetch each endpoint once, parse it with the
collector's own parsers, and say what a run would make of it. Writes nothing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from collector.config import Config, Router, parse_config, password_env_name, url_problem
from collector.endpoints import ENDPOINT_OF_SCRIPT, SCRIPT_NAMES
from collector.errors import ConfigError
from collector.fetch import Fetched, fetch_all
from collector.sources import SOURCES, Answer, answers_of
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


def routers_for_urls(urls: list[str], timeout: float, *, username: str = "",
                     password_file: str | None = None, wan_device: str = "",
                     warnings: list[str] | None = None) -> list[Router]:
    """The routers that check-router's URLs name, by the URL's path:

    - `.../totalwifi.cgi`, `wan.cgi`, `dhcp.cgi`: that CGI endpoint;
    - `.../ubus`: uhttpd's ubus, every endpoint (the WAN device discovered unless `wan_device`),
      logging in as `username` with the password in `password_file`;
    - `.../metrics`: the Prometheus exporter, the WAN too when `wan_device` is given;
    - anything else: the router's address, and its three /cgi-bin/ scripts.

    ConfigError (a usage error, exit 2) for an unusable URL, naming it by its position: it may
    hold a password. What check-config would warn about (a password file readable by every
    user) is added to `warnings`.
    """
    result = []
    for number, url in enumerate(urls, 1):
        problem = url_problem(url)
        if problem:
            raise ConfigError(f"URL {number}: {problem}")
        label = _host_label(url)
        script = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
        if script == "ubus":
            if not username:
                raise ConfigError(f"URL {number}: a /ubus URL needs --username, and the password "
                                  f"in --password-file or {password_env_name(label)}")
            doc = {"source": "ubus", "url": url, "username": username, "wan": True, "dhcp": True}
            if password_file:
                doc["password_file"] = password_file
        elif script == "metrics":
            doc = {"source": "prometheus", "url": url, "wan": bool(wan_device)}
        elif script in ENDPOINT_OF_SCRIPT:
            doc = {ENDPOINT_OF_SCRIPT[script]: url}
        else:
            base = url.rstrip("/")
            if not base.endswith("/cgi-bin"):
                base += "/cgi-bin"
            doc = {endpoint: f"{base}/{name}" for endpoint, name in SCRIPT_NAMES.items()}
        if wan_device and script in ("ubus", "metrics"):
            doc["wan_device"] = wan_device
        doc["timeout"] = timeout
        config = parse_config({label: doc}, f"URL {number}")
        result.append(config.routers[0])
        if warnings is not None:
            warnings.extend(config.warnings)
    return result


def routers_for_config(config: Config) -> list[Router]:
    return list(config.routers)


def examine(router: Router, fetched: Fetched) -> list[EndpointCheck]:
    """What one answer means for the collector, per endpoint it serves: counts, the hints
    present, rejected lines, and what to fix."""
    r = fetched.request
    checks = []
    for answer in answers_of(router, fetched, time.time()):
        check = EndpointCheck(router.key, answer.endpoint, r.url, ok=False)
        checks.append(check)
        if not fetched.ok:
            check.lines.append(f"not reachable: {fetched.error}")
        elif answer.parsed is None:
            check.lines.append(f"unusable answer: {answer.error}")
        else:
            _describe(router, answer, check)
    return checks


def _describe(router: Router, answer: Answer, check: EndpointCheck) -> None:
    parsed = answer.parsed
    check.ok = not parsed.rejected_count
    hint = "CONNECTED_SECONDS" if router.source == "cgi" else "connected seconds"
    if answer.endpoint == "ap_stats":
        stations = parsed.items
        with_seconds = sum(1 for s in stations if s.connected_seconds is not None)
        check.lines.append(f"{len(stations)} stations parsed")
        if not stations:
            check.lines.append("no stations connected right now (fine, but nothing to check)")
        elif with_seconds == len(stations):
            check.lines.append(f"{hint} present: re-association is detected exactly")
        else:
            check.lines.append(
                f"{hint} missing on {len(stations) - with_seconds} of {len(stations)} "
                "stations: re-association is only seen when a counter goes down"
            )
        if parsed.signed_32bit:
            check.lines.append("byte counters come as signed 32-bit numbers (rpcd before 2023): "
                               "they wrap at 4 GiB; set \"counter_bits\": 32 for this router, "
                               "or upgrade rpcd")
    elif answer.endpoint == "wan_stats":
        wan = parsed.items[0]
        check.lines.append(f"wan: rx {wan.rx_bytes} tx {wan.tx_bytes}")
        if wan.uptime_seconds is None:
            check.lines.append("uptime: missing: reboots are only seen when a counter goes down")
        else:
            check.lines.append(f"uptime: {wan.uptime_seconds}s: reboots are detected exactly")
    else:
        ignored = " (duid, DHCPv6)" if router.source == "cgi" or "dhcp_leases" in router.urls else ""
        check.lines.append(f"{len(parsed.items)} IPv4 leases parsed, {parsed.ignored} lines ignored"
                           f"{ignored}")
        unnamed = sum(1 for lease in parsed.items if not lease.hostname)
        if unnamed:
            check.lines.append(f"{unnamed} leases without a hostname (shown by IP or MAC)")
    if parsed.rejected_count:
        noun = "lines" if router.source == "cgi" else "entries"
        check.lines.append(f"{parsed.rejected_count} {noun} rejected:")
        check.lines.extend(f"  {x}" for x in parsed.rejected[:SHOWN_REJECTS])
        if parsed.rejected_count > SHOWN_REJECTS:
            check.lines.append(f"  ... and {parsed.rejected_count - SHOWN_REJECTS} more")


def check(routers: list[Router]) -> list[EndpointCheck]:
    """Fetch every router once and examine every answer."""
    pairs = [(router, request) for router in routers
             for request in SOURCES[router.source].requests(router)]
    fetched = fetch_all([request for _, request in pairs])
    return [c for (router, _), f in zip(pairs, fetched, strict=True) for c in examine(router, f)]
