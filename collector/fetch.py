"""Fetching the routers' endpoints over HTTP: the only module that imports requests.

Every endpoint of every router is fetched at once from a thread pool, so a run
takes about as long as the slowest router, not the sum. Each request has connect
and read timeouts, an overall deadline, and a size cap enforced while streaming:
a hostile or broken router can cost us at most its deadline and the cap.

A router cannot send us elsewhere: redirects are followed only to the same scheme,
host and port. The sockets open at once stay well under the process's file limit
whatever the fleet: the pool is sized from that limit, a worker keeps at most one idle
connection, and a request past its deadline has its socket shut. Every error is
redacted (no password from a URL), printable (no terminal escapes) and cut in the
middle, so that its cause, which comes last, survives.
"""

from __future__ import annotations

import os
import resource
import socket
import threading
import time
import zlib
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
import requests.adapters
import requests.utils
import urllib3

from collector import __version__
from collector.errors import FetchError
from collector.text import log_safe, printable

SIZE_CAP = 4 * 1024 * 1024  # bytes; a station line is ~40 bytes, so ~100k stations
# A thread per request up to this many: every request of a fleet of 50 routers starts at
# once, so none waits for a free thread and pays its router's latency twice.
MAX_WORKERS = 256
# Descriptors set aside per worker: its TCP socket, a resolver's socket while a name is
# looked up, one to spare. So the workers never take more than the descriptors left free.
FDS_PER_WORKER = 3
# The soft limit on open files is raised towards the hard limit, up to this (cron's usual
# soft limit is 1024, sometimes less): plenty for MAX_WORKERS.
WANTED_FILE_LIMIT = 4096
MAX_REDIRECTS = 3
REASON_LIMIT = 80  # characters of an HTTP reason phrase that are shown
_CHUNK = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}

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


# --- Sockets: at most one idle connection per worker, and the watchdog can shut them ------

# Per worker thread, its HTTP connections that have a socket. The watchdog shuts the
# socket of a request it abandons: the thread leaves the HTTP library at once and its
# descriptor is freed, instead of listening to a router that dribbles for ever.
_connections: dict[int, set] = {}
_connections_lock = threading.Lock()


class _Tracked:
    """Mixed into urllib3's connection classes: records each connection that has a socket."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        self._owner = threading.get_ident()
        self._raw_sock = sock  # shut even before connect() has stored it as .sock
        with _connections_lock:
            _connections.setdefault(self._owner, set()).add(self)
        return sock

    def close(self) -> None:
        owner = getattr(self, "_owner", None)
        if owner is not None:
            with _connections_lock:
                _connections.get(owner, set()).discard(self)
        super().close()


class _HTTPConnection(_Tracked, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_Tracked, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Adapter(requests.adapters.HTTPAdapter):
    """One pool of one connection: a worker keeps at most one idle socket, to its last router."""

    def __init__(self) -> None:
        super().__init__(pool_connections=1, pool_maxsize=1, max_retries=0)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def _shut_sockets(thread: int) -> None:
    """Shut (not close: the owner closes) every socket of a worker thread."""
    with _connections_lock:
        connections = list(_connections.get(thread, ()))
    for connection in connections:
        sock = connection.sock or connection._raw_sock
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed


def _session() -> requests.Session:
    """One Session per worker thread: requests.Session is not thread-safe."""
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        adapter = _Adapter()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        # Routers are on the LAN: no proxy from the environment, no .netrc.
        session.trust_env = False
        session.headers.update({
            "User-Agent": f"netstat-collect/{__version__}",
            # We decompress ourselves, with a bound; ask for none.
            "Accept-Encoding": "identity",
        })
        _local.session = session
    return session


def _close_session() -> None:
    """Close this thread's connections now, rather than when the thread is collected."""
    session = getattr(_local, "session", None)
    if session is not None:
        session.close()
        del _local.session
    with _connections_lock:
        _connections.pop(threading.get_ident(), None)


def _raise_file_limit() -> int:
    """Raise the soft limit on open files towards the hard one, where allowed; the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = WANTED_FILE_LIMIT if hard == resource.RLIM_INFINITY else min(hard, WANTED_FILE_LIMIT)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return soft


def _files_open() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 64  # no /proc: a generous guess


def concurrency_limit() -> int:
    """How many requests may run at once: MAX_WORKERS, or fewer where the process's file
    limit (first raised as far as allowed) would not leave FDS_PER_WORKER for each."""
    soft = _raise_file_limit()
    if soft == resource.RLIM_INFINITY:
        return MAX_WORKERS
    return max(1, min(MAX_WORKERS, (soft - _files_open()) // FDS_PER_WORKER))


# --- One request ---------------------------------------------------------------------------


def _root_cause(error: BaseException) -> BaseException:
    """The innermost exception behind an HTTP library's error (an OSError, usually)."""
    seen = {id(error)}
    while True:
        inner = [getattr(error, "reason", None), error.__cause__, *error.args, error.__context__]
        found = next((e for e in inner if isinstance(e, BaseException) and id(e) not in seen), None)
        if found is None:
            return error
        seen.add(id(found))
        error = found


def _describe(error: requests.RequestException, timeout: float) -> str:
    """The error in a few words, its cause first: long library messages are cut."""
    if isinstance(error, requests.ConnectTimeout):
        return f"no connection within {timeout:g}s"
    if isinstance(error, requests.ReadTimeout):
        return f"no answer within {timeout:g}s"
    cause = _root_cause(error)
    text = str(error)
    if isinstance(error, requests.ConnectionError):
        if isinstance(cause, ConnectionRefusedError) or "Connection refused" in text:
            return "connection refused"
        if "RemoteDisconnected" in text or "Connection aborted" in text:
            return "connection closed without an answer"
        return f"connection failed: {str(cause) or type(cause).__name__}"
    return f"{type(error).__name__}: {str(cause) or type(cause).__name__}"


def _origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port (the default one when none is written); ValueError if malformed."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, parts.hostname or "", parts.port or _DEFAULT_PORTS.get(scheme)


def _open(request: Request) -> requests.Response:
    """The router's answer (streaming), after its redirects, which may not leave the router.

    A redirect to another scheme, host or port is refused before anything is sent there:
    an endpoint has no business sending the collector, with the password of its URL,
    to another machine (a cloud metadata address, say).
    """
    session = _session()
    url = request.url
    origin = _origin(url)
    user, password = requests.utils.get_auth_from_url(url)
    auth = (user, password) if user or password else None  # kept on the router's redirects
    for _ in range(MAX_REDIRECTS + 1):
        response = session.get(url, stream=True, timeout=(request.timeout, request.timeout),
                               allow_redirects=False, auth=auth)
        if not response.is_redirect:
            return response
        location = response.headers["Location"]
        response.close()
        try:
            target = urljoin(url, location)
            allowed = _origin(target) == origin
        except ValueError:
            raise FetchError(f"redirect to an invalid URL refused: {location}") from None
        if not allowed:
            raise FetchError(f"redirect to {target} refused: only redirects to the same scheme, "
                             "host and port are followed")
        url = target
    raise FetchError(f"more than {MAX_REDIRECTS} redirects")


def _failed(request: Request, error: str) -> Fetched:
    return Fetched(request, None, log_safe(error), time.monotonic())


def _read_capped(response: requests.Response, deadline: float, cap: int, timeout: float) -> list[bytes]:
    """The body, decompressed with a bound; FetchError when it is too large, late or unknown."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        decompressor = zlib.decompressobj(wbits=47)  # 47: gzip or zlib header, detected
    elif encoding in ("identity", ""):
        decompressor = None
    else:
        raise FetchError(f"unsupported Content-Encoding {encoding!r}")
    # Kept as the chunks read: the parsers walk them line by line, so an answer costs
    # its own size and no joined copy of it.
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise FetchError(f"answer not complete within {timeout:g}s")
        chunk = response.raw.read1(_CHUNK, decode_content=False)
        if not chunk:
            break
        if decompressor is not None:
            # max_length bounds what one compressed chunk may expand to (a gzip bomb).
            chunk = decompressor.decompress(chunk, cap + 1 - size)
            if decompressor.unconsumed_tail:
                raise FetchError(f"answer larger than the {cap} byte cap (decompressed)")
        size += len(chunk)
        if size > cap:
            raise FetchError(f"answer larger than the {cap} byte cap")
        chunks.append(chunk)
    return chunks


def fetch_one(request: Request, cap: int = SIZE_CAP) -> Fetched:
    """Fetch one endpoint; never raises for network or HTTP trouble, it reports it."""
    deadline = time.monotonic() + request.timeout
    try:
        with _open(request) as r:
            if r.status_code != 200:
                reason = f" {printable(r.reason, REASON_LIMIT)}" if r.reason else ""
                return _failed(request, f"HTTP {r.status_code}{reason}")
            declared = r.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > cap:
                return _failed(request, f"answer of {declared} bytes is over the {cap} byte cap")
            body = _read_capped(r, deadline, cap, request.timeout)
        return Fetched(request, body, "", time.monotonic())
    except FetchError as e:
        return _failed(request, str(e))
    except zlib.error as e:
        return _failed(request, f"bad compressed answer: {e}")
    except requests.RequestException as e:
        return _failed(request, _describe(e, request.timeout))
    except (urllib3.exceptions.HTTPError, OSError) as e:
        # Raised by the raw stream while reading the body, unwrapped by requests.
        if isinstance(e, urllib3.exceptions.ReadTimeoutError):
            return _failed(request, f"answer stalled for {request.timeout:g}s")
        return _failed(request, f"answer broken off: {type(e).__name__}")
    except ValueError as e:  # a URL only the HTTP library refuses
        return _failed(request, f"{type(e).__name__}: {e}")


# The hard deadline fires this long after a request's own timeout, so that the
# request's own, more specific error normally wins.
WATCHDOG_GRACE_SECONDS = 0.5


class _Batch:
    """Runs requests on daemon threads and enforces every request's overall deadline.

    A hostile router can hold a request inside the HTTP library (headers dribbled
    a byte at a time never trip a read timeout). Such a request is marked failed
    at its deadline, its socket shut and its thread abandoned; a fresh worker takes
    its place once the thread has let go (at once, normally). At most `workers`
    threads are alive at any time, abandoned ones included, so the sockets open at
    once are bounded too; daemon threads cannot keep the process alive after the run.
    """

    def __init__(self, requests_: list[Request], cap: int, workers: int):
        self.requests = requests_
        self.cap = cap
        self.workers = workers
        self.alive = 0  # worker threads started and not yet returned
        self.pending = list(range(len(requests_)))[::-1]  # popped from the end, in order
        self.results: list[Fetched | None] = [None] * len(requests_)
        self.running: dict[int, tuple[float, int]] = {}  # index -> (started, thread ident)
        self.abandoned: set[int] = set()  # idents of live threads whose request timed out
        self.cond = threading.Condition()

    def _worker(self) -> None:
        me = threading.get_ident()
        try:
            while True:
                with self.cond:
                    if me in self.abandoned or not self.pending:
                        return
                    index = self.pending.pop()
                    self.running[index] = (time.monotonic(), me)
                    self.cond.notify_all()  # the watchdog now has a deadline to wait for
                fetched = fetch_one(self.requests[index], self.cap)
                with self.cond:
                    if self.results[index] is None:
                        self.results[index] = fetched
                        self.running.pop(index, None)
                    self.cond.notify_all()
        finally:
            _close_session()
            with self.cond:
                self.alive -= 1
                self.abandoned.discard(me)
                self.cond.notify_all()

    def _start_workers(self) -> None:
        """As many workers as there is work for, within the limit (holding self.cond)."""
        while (self.alive < self.workers
               and self.alive - len(self.abandoned) < len(self.pending) + len(self.running)):
            self.alive += 1
            threading.Thread(target=self._worker, name="fetch", daemon=True).start()

    def run(self) -> list[Fetched]:
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
                        _shut_sockets(ident)
                    else:
                        wait = deadline - now if wait is None else min(wait, deadline - now)
                if all(r is not None for r in self.results):
                    break
                self._start_workers()
                self.cond.wait(wait)
        return list(self.results)


def fetch_all(requests_: list[Request], cap: int = SIZE_CAP) -> list[Fetched]:
    """Fetch every request concurrently; results in the order of the requests.

    Each request ends by its own deadline, whatever the router does. Raises the
    process's soft limit on open files as far as allowed, and runs no more requests
    at once than that limit leaves room for (see concurrency_limit).
    """
    if not requests_:
        return []
    return _Batch(requests_, cap, min(concurrency_limit(), len(requests_))).run()


def requests_for(routers) -> list[Request]:
    """One request per configured endpoint of every router, in the configuration's order."""
    return [
        Request(router.key, endpoint, url, router.timeout)
        for router in routers
        for endpoint, url in router.urls.items()
    ]
