"""Where a router's readings come from, one row per source: how its requests are built and how
its answers become the endpoints' samples. Config, run, check and the simulator read this table.

- `cgi`: our three scripts, one GET per endpoint (collector/endpoints.py);
- `ubus`: one conversation of POSTs with uhttpd's /ubus (collector/ubus.py) answering
  ap_stats, and wan_stats and dhcp_leases when asked;
- `prometheus`: one GET of prometheus-node-exporter-lua's /metrics (collector/exporter.py)
  answering ap_stats and, when asked, wan_stats; leases may still come from dhcp.cgi.

Every source gives the same StationSample / WanSample / Lease values, so the accounting and
the router's baselines do not care which one a router uses, or that it switched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from collector import exporter, ubus
from collector.config import Router
from collector.endpoints import ENDPOINT_NAMES, ENDPOINTS
from collector.errors import ParseError
from collector.fetch import Fetched, Post, Request
from collector.parse import Parsed

UBUS_REQUEST = "ubus"  # the name of a ubus conversation in requests and check output
METRICS_REQUEST = "metrics"  # the name of an exporter scrape


@dataclass(frozen=True)
class Answer:
    """One endpoint's reading from an answer: parsed, or why not."""

    endpoint: str
    parsed: Parsed | None
    error: str = ""


@dataclass(frozen=True)
class Source:
    name: str
    requests: Callable[[Router], list[Request]]
    # The endpoints one request answers, for this router: each fails with it.
    serves: Callable[[Router, str], tuple[str, ...]]
    # One successful answer as its endpoints' readings; `at` (unix time) dates relative times.
    read: Callable[[Router, Fetched, float], list[Answer]]


def _parsed(endpoint: str, parse: Callable[[], Parsed]) -> Answer:
    try:
        return Answer(endpoint, parse())
    except ParseError as e:
        return Answer(endpoint, None, str(e))


# --- cgi ---------------------------------------------------------------------------------------


def _cgi_requests(router: Router) -> list[Request]:
    return [Request(router.key, endpoint, url, router.timeout) for endpoint, url in router.urls.items()]


def _cgi_read(router: Router, fetched: Fetched, at: float) -> list[Answer]:
    endpoint = fetched.request.endpoint
    return [_parsed(endpoint, lambda: ENDPOINTS[endpoint].parser(fetched.body))]


# --- ubus --------------------------------------------------------------------------------------


def _plan(router: Router) -> ubus.Plan:
    return ubus.Plan(router.username, router.password.reveal() if router.password else "",
                     wan=router.wan, wan_device=router.wan_device, dhcp=router.dhcp)


def _converse(plan: ubus.Plan, post: Post) -> ubus.Replies:
    return ubus.converse(post, plan)


def _ubus_requests(router: Router) -> list[Request]:
    return [Request(router.key, UBUS_REQUEST, router.url, router.timeout, verify=router.tls_verify,
                    exchange=partial(_converse, _plan(router)))]


def _ubus_serves(router: Router, name: str) -> tuple[str, ...]:
    return ("ap_stats",) + (("wan_stats",) if router.wan else ()) + (("dhcp_leases",) if router.dhcp else ())


def _ubus_read(router: Router, fetched: Fetched, at: float) -> list[Answer]:
    replies = fetched.body
    readers = {"ap_stats": lambda: ubus.read_stations(replies),
               "wan_stats": lambda: ubus.read_wan(replies),
               "dhcp_leases": lambda: ubus.read_leases(replies, at)}
    return [_parsed(e, readers[e]) for e in _ubus_serves(router, UBUS_REQUEST)]


# --- prometheus --------------------------------------------------------------------------------


def metrics_url(url: str) -> str:
    """The exporter's URL asking for only the collectors we read, unless it names some itself."""
    if "collect[]" in url or "collect%5B%5D" in url:
        return url
    return url + ("&" if "?" in url else "?") + exporter.QUERY


def _prometheus_requests(router: Router) -> list[Request]:
    scrape = Request(router.key, METRICS_REQUEST, metrics_url(router.url), router.timeout,
                     verify=router.tls_verify)
    return [scrape, *_cgi_requests(router)]


def _prometheus_serves(router: Router, name: str) -> tuple[str, ...]:
    if name != METRICS_REQUEST:
        return (name,)
    return ("ap_stats",) + (("wan_stats",) if router.wan else ())


def _prometheus_read(router: Router, fetched: Fetched, at: float) -> list[Answer]:
    if fetched.request.endpoint != METRICS_REQUEST:
        return _cgi_read(router, fetched, at)
    metrics = exporter.parse_metrics(fetched.body)
    answers = [_parsed("ap_stats", lambda: exporter.stations_of(metrics))]
    if router.wan:
        answers.append(_parsed("wan_stats", lambda: exporter.wan_of(metrics, router.wan_device)))
    return answers


SOURCES = {
    s.name: s
    for s in (
        Source("cgi", _cgi_requests, lambda router, name: (name,), _cgi_read),
        Source("ubus", _ubus_requests, _ubus_serves, _ubus_read),
        Source("prometheus", _prometheus_requests, _prometheus_serves, _prometheus_read),
    )
}


def requests_for(routers) -> list[Request]:
    """Every request of every router, in the configuration's order."""
    return [request for router in routers for request in SOURCES[router.source].requests(router)]


def answers_of(router: Router, fetched: Fetched, at: float) -> list[Answer]:
    """What one fetch says about each endpoint it serves, in ENDPOINT_NAMES order: a failed fetch
    fails each of them with its error."""
    source = SOURCES[router.source]
    if not fetched.ok:
        answers = [Answer(e, None, fetched.error) for e in source.serves(router, fetched.request.endpoint)]
    else:
        answers = source.read(router, fetched, at)
    return sorted(answers, key=lambda a: ENDPOINT_NAMES.index(a.endpoint))
