"""fetch_all's promises, in-process against simulated routers on 127.0.0.1."""

import subprocess
import sys
import threading
import time

import pytest
from support import REPO, bystander

from collector import fetch
from collector.fetch import SIZE_CAP, Request, fetch_all
from collector.text import ERROR_LIMIT


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


# --- Redirects stay with the router -----------------------------------------------------------

@pytest.mark.parametrize("where", ["another host", "another port", "another scheme"])
def test_a_redirect_away_from_the_router_is_refused_and_not_followed(fleet, where):
    with bystander("127.0.0.2" if where == "another host" else "127.0.0.1") as other:
        fleet.add_router("away")
        fleet.set_fault("away", "redirect-away")
        url = fleet.url("away", "wan_stats")
        target = {
            "another host": other.url.replace("http://", "http://admin:pw-in-location@") + "/meta-data",
            "another port": other.url + "/cgi-bin/wan.cgi",
            "another scheme": url.replace("http://", "https://"),
        }[where]
        fleet.routers["away"].location = target
        (result,) = fetch_all([Request("away", "wan_stats", url, 2.0)])
    assert not result.ok
    shown = target.replace("pw-in-location", "***")
    assert result.error == (f"redirect to {shown} refused: only redirects to the same scheme, "
                            "host and port are followed")
    assert other.hits == []


def test_a_redirect_within_the_router_is_followed(fleet):
    fleet.add_router("here")
    fleet.set_fault("here", "redirect-here")
    (result,) = fetch_all([Request("here", "wan_stats", fleet.url("here", "wan_stats"), 2.0)])
    assert result.ok, result.error
    assert b"".join(result.body).startswith(b"wan: ")


# --- Errors: no password, and the cause survives shortening -----------------------------------

def test_a_url_that_fails_to_parse_does_not_show_its_password():
    """The HTTP library quotes the whole URL in this error; we show it redacted."""
    (result,) = fetch_all([Request("r", "ap_stats", "http://admin:s3cret@/x", 2.0)])
    assert not result.ok
    assert "s3cret" not in result.error and "'http://admin:***@/x'" in result.error, result.error


def test_out_of_file_descriptors_the_error_says_so(fleet):
    """With every descriptor in use, the error names the cause instead of cutting it off."""
    fleet.add_router("main")
    script = (
        "import resource, sys\n"
        "from collector.fetch import Request, fetch_one\n"
        f"good, other = {fleet.url('main', 'wan_stats')!r}, 'http://127.0.0.1:9/cgi-bin/wan.cgi'\n"
        "assert fetch_one(Request('r', 'wan_stats', good, 5)).ok  # every import done\n"
        "assert fetch_one(Request('r', 'wan_stats', other, 5)).error == 'connection refused'\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))\n"
        "held = []\n"
        "try:\n"
        "    while True:\n"
        "        held.append(open('/dev/null'))\n"
        "except OSError:\n"
        "    pass\n"
        "print(fetch_one(Request('r', 'wan_stats', other, 5)).error)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "Too many open files" in proc.stdout, proc.stdout
    assert len(proc.stdout.strip()) <= ERROR_LIMIT


# --- Sockets ----------------------------------------------------------------------------------

def test_an_abandoned_request_gives_its_socket_and_thread_back(fleet):
    """The watchdog shuts the socket of a request past its deadline: its thread ends at once
    instead of listening to a router that dribbles headers for as long as it likes."""
    fleet.add_router("headers").slow_seconds = 5
    fleet.set_fault("headers", "dribble-headers")
    before = {t.ident for t in threading.enumerate()}
    (result,) = fetch_all([Request("headers", "wan_stats", fleet.url("headers", "wan_stats"), 1.0)])
    assert result.error == "no complete answer within 1s"
    deadline = time.monotonic() + 2
    while True:
        left = [t for t in threading.enumerate() if t.name == "fetch" and t.ident not in before]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert left == []


def test_concurrency_follows_the_file_limit():
    """Under a hard limit of 256 descriptors, the sockets a batch may open stay well below it;
    a soft limit below the hard one is raised first."""
    script = (
        "import os, resource\n"
        "from collector import fetch\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))\n"
        "in_use = len(os.listdir('/proc/self/fd'))\n"
        "print(fetch.concurrency_limit(), in_use)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (200, 256))\n"
        "fetch.concurrency_limit()\n"
        "print(*resource.getrlimit(resource.RLIMIT_NOFILE))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    (workers, in_use), raised = (list(map(int, line.split())) for line in proc.stdout.splitlines())
    assert 32 <= workers and in_use + workers * fetch.FDS_PER_WORKER <= 256, (workers, in_use)
    assert raised == [256, 256]
