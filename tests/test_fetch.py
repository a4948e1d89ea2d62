"""fetch_all's promises, in-process against simulated routers on 127.0.0.1."""

import time

from collector.fetch import SIZE_CAP, Request, fetch_all


def test_every_request_ends_by_its_deadline_whatever_the_router_does(fleet):
    for mode in ("hang", "dribble", "dribble-headers", "ok"):
        fleet.add_router(mode).slow_seconds = 5  # a byte every 0.5 s: no read timeout fires
        fleet.set_fault(mode, mode)
    requests_ = [Request(r, e, fleet.url(r, e), 1.0) for r in fleet.routers
                 for e in ("ap_stats", "wan_stats", "dhcp_leases")]
    started = time.monotonic()
    results = fetch_all(requests_)
    elapsed = time.monotonic() - started
    assert [f.request for f in results] == requests_  # in order
    by_router = {}
    for f in results:
        by_router.setdefault(f.request.router, []).append(f)
    assert all(f.ok for f in by_router["ok"])
    assert all(not f.ok for mode in ("hang", "dribble", "dribble-headers") for f in by_router[mode])
    # One deadline (1 s) plus the watchdog's grace, not 30 s of stalling routers.
    assert elapsed < 3.5, elapsed


def test_results_do_not_wait_for_abandoned_requests(fleet):
    """The last result may come from the watchdog itself: nothing else must be awaited."""
    fleet.add_router("headers").slow_seconds = 5
    fleet.set_fault("headers", "dribble-headers")
    started = time.monotonic()
    (result,) = fetch_all([Request("headers", "wan_stats", fleet.url("headers", "wan_stats"), 1.0)])
    assert result.error == "no complete answer within 1s"
    assert time.monotonic() - started < 2.5


def test_size_cap_counts_decompressed_bytes(fleet):
    fleet.add_router("bomb")
    fleet.set_fault("bomb", "gzip-bomb")
    (result,) = fetch_all([Request("bomb", "ap_stats", fleet.url("bomb", "ap_stats"), 5.0)])
    assert result.error == f"answer larger than the {SIZE_CAP} byte cap (decompressed)"
