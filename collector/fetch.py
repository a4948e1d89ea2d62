"""Fetching the routers' endpoints over HTTP: the only module that imports requests.

Every endpoint of every router is fetched at once from a thread pool, so a run
takes about as long as the slowest router, not the sum. Each request has connect
and read timeouts, an overall deadline, and a size cap enforced while streaming:
a hostile or broken router can cost us at most its deadline and the cap.
"""

from __future__ import annotations

import threading
import time
import zlib
from dataclasses import dataclass

import requests
import urllib3

from collector import __version__

SIZE_CAP = 4 * 1024 * 1024  # bytes; a station line is ~40 bytes, so ~100k stations
# A thread per request up to this many: every request of a fleet of 50 routers starts at
# once, so none waits for a free thread and pays its router's latency twice.
MAX_WORKERS = 256
MAX_REDIRECTS = 3
_CHUNK = 64 * 1024

_local = threading.local()


@dataclass(frozen=True)
class Request:
    router: str
    endpoint: str
    url: str
    timeout: float  # the overall deadline of this request, in seconds


@dataclass(frozen=True)
class Fetched:
    """The outcome of one request. `received` is a time.monotonic() reading."""

    request: Request
    body: list[bytes] | None  # the answer as the chunks read; None when it failed
    error: str
    received: float

    @property
    def ok(self) -> bool:
        return self.body is not None


def _session() -> requests.Session:
    """One Session per worker thread: requests.Session is not thread-safe."""
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.max_redirects = MAX_REDIRECTS
        # Routers are on the LAN: no proxy from the environment, no .netrc.
        session.trust_env = False
        session.headers.update({
            "User-Agent": f"netstat-collect/{__version__}",
            # We decompress ourselves, with a bound; ask for none.
            "Accept-Encoding": "identity",
        })
        _local.session = session
    return session


def _describe(error: Exception, timeout: float) -> str:
    if isinstance(error, requests.ConnectTimeout):
        return f"no connection within {timeout:g}s"
    if isinstance(error, requests.ReadTimeout):
        return f"no answer within {timeout:g}s"
    if isinstance(error, requests.TooManyRedirects):
        return f"more than {MAX_REDIRECTS} redirects"
    if isinstance(error, requests.ConnectionError):
        reason = str(error.args[0]) if error.args else str(error)
        if "Connection refused" in reason:
            return "connection refused"
        if "RemoteDisconnected" in reason or "Connection aborted" in reason:
            return "connection closed without an answer"
        return f"connection failed: {reason[:200]}"
    return f"{type(error).__name__}: {str(error)[:200]}"


def _read_capped(response: requests.Response, deadline: float, cap: int, timeout: float) -> list[bytes]:
    """The body, decompressed with a bound, or FetchError-worthy text via ValueError."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        decompressor = zlib.decompressobj(wbits=47)  # 47: gzip or zlib header, detected
    elif encoding in ("identity", ""):
        decompressor = None
    else:
        raise ValueError(f"unsupported Content-Encoding {encoding!r}")
    # Kept as the chunks read: the parsers walk them line by line, so an answer costs
    # its own size and no joined copy of it.
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise ValueError(f"answer not complete within {timeout:g}s")
        chunk = response.raw.read1(_CHUNK, decode_content=False)
        if not chunk:
            break
        if decompressor is not None:
            # max_length bounds what one compressed chunk may expand to (a gzip bomb).
            chunk = decompressor.decompress(chunk, cap + 1 - size)
            if decompressor.unconsumed_tail:
                raise ValueError(f"answer larger than the {cap} byte cap (decompressed)")
        size += len(chunk)
        if size > cap:
            raise ValueError(f"answer larger than the {cap} byte cap")
        chunks.append(chunk)
    return chunks


def fetch_one(request: Request, cap: int = SIZE_CAP) -> Fetched:
    """Fetch one endpoint; never raises for network or HTTP trouble, it reports it."""
    start = time.monotonic()
    deadline = start + request.timeout
    try:
        with _session().get(request.url, stream=True, timeout=(request.timeout, request.timeout)) as r:
            if r.status_code != 200:
                reason = f" {r.reason}" if r.reason else ""
                return Fetched(request, None, f"HTTP {r.status_code}{reason}", time.monotonic())
            declared = r.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > cap:
                return Fetched(request, None, f"answer of {declared} bytes is over the {cap} byte cap",
                               time.monotonic())
            body = _read_capped(r, deadline, cap, request.timeout)
        return Fetched(request, body, "", time.monotonic())
    except ValueError as e:
        return Fetched(request, None, str(e), time.monotonic())
    except zlib.error as e:
        return Fetched(request, None, f"bad compressed answer: {e}", time.monotonic())
    except requests.RequestException as e:
        return Fetched(request, None, _describe(e, request.timeout), time.monotonic())
    except (urllib3.exceptions.HTTPError, OSError) as e:
        # Raised by the raw stream while reading the body, unwrapped by requests.
        if isinstance(e, urllib3.exceptions.ReadTimeoutError):
            return Fetched(request, None, f"answer stalled for {request.timeout:g}s", time.monotonic())
        return Fetched(request, None, f"answer broken off: {type(e).__name__}", time.monotonic())


# The hard deadline fires this long after a request's own timeout, so that the
# request's own, more specific error normally wins.
WATCHDOG_GRACE_SECONDS = 0.5


class _Batch:
    """Runs requests on daemon threads and enforces every request's overall deadline.

    A hostile router can hold a request inside the HTTP library (headers dribbled
    a byte at a time never trip a read timeout). Such a request is marked failed
    at its deadline and its thread abandoned, with a fresh worker taking its
    place; daemon threads cannot keep the process alive after the run.
    """

    def __init__(self, requests_: list[Request], cap: int):
        self.requests = requests_
        self.cap = cap
        self.pending = list(range(len(requests_)))[::-1]  # popped from the end, in order
        self.results: list[Fetched | None] = [None] * len(requests_)
        self.running: dict[int, tuple[float, int]] = {}  # index -> (started, thread ident)
        self.abandoned: set[int] = set()  # idents of threads whose request timed out
        self.cond = threading.Condition()

    def _worker(self) -> None:
        me = threading.get_ident()
        while True:
            with self.cond:
                if me in self.abandoned or not self.pending:
                    return
                index = self.pending.pop()
                self.running[index] = (time.monotonic(), me)
            fetched = fetch_one(self.requests[index], self.cap)
            with self.cond:
                if self.results[index] is None:
                    self.results[index] = fetched
                    self.running.pop(index, None)
                self.cond.notify_all()

    def _start_worker(self) -> None:
        threading.Thread(target=self._worker, name="fetch", daemon=True).start()

    def run(self, workers: int) -> list[Fetched]:
        for _ in range(workers):
            self._start_worker()
        with self.cond:
            while True:
                now = time.monotonic()
                wait = None
                for index, (started, ident) in list(self.running.items()):
                    request = self.requests[index]
                    deadline = started + request.timeout + WATCHDOG_GRACE_SECONDS
                    if now >= deadline:
                        self.results[index] = Fetched(
                            request, None, f"no complete answer within {request.timeout:g}s", now)
                        del self.running[index]
                        self.abandoned.add(ident)
                        self._start_worker()
                    else:
                        wait = deadline - now if wait is None else min(wait, deadline - now)
                if all(r is not None for r in self.results):
                    break
                self.cond.wait(wait)
        return list(self.results)


def fetch_all(requests_: list[Request], cap: int = SIZE_CAP) -> list[Fetched]:
    """Fetch every request concurrently; results in the order of the requests.

    Each request ends by its own deadline, whatever the router does.
    """
    if not requests_:
        return []
    return _Batch(requests_, cap).run(min(MAX_WORKERS, len(requests_)))


def requests_for(routers) -> list[Request]:
    """One request per configured endpoint of every router, in the configuration's order."""
    return [
        Request(router.key, endpoint, url, router.timeout)
        for router in routers
        for endpoint, url in router.urls.items()
    ]
