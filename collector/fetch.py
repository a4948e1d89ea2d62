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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests
import urllib3

from collector import __version__

SIZE_CAP = 4 * 1024 * 1024  # bytes; a station line is ~40 bytes, so ~100k stations
MAX_WORKERS = 32
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
    body: bytes | None
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


def _read_capped(response: requests.Response, deadline: float, cap: int, timeout: float) -> bytes:
    """The body, decompressed with a bound, or FetchError-worthy text via ValueError."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        decompressor = zlib.decompressobj(wbits=47)  # 47: gzip or zlib header, detected
    elif encoding in ("identity", ""):
        decompressor = None
    else:
        raise ValueError(f"unsupported Content-Encoding {encoding!r}")
    parts: list[bytes] = []
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
        parts.append(chunk)
    return b"".join(parts)


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


def fetch_all(requests_: list[Request], cap: int = SIZE_CAP) -> list[Fetched]:
    """Fetch every request concurrently; results in the order of the requests."""
    if not requests_:
        return []
    workers = min(MAX_WORKERS, len(requests_))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
        return list(pool.map(lambda r: fetch_one(r, cap), requests_))
