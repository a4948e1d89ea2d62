"""Simulated OpenWrt routers: real HTTP servers on 127.0.0.1 for tests, the demo and benchmarks.

A Fleet holds routers whose Wi-Fi stations join, leave, roam and transfer data,
that reboot and wrap 32-bit counters, and that can misbehave on purpose (slow,
HTTP 500, huge body, garbage lines, dropped connections). It also keeps the truth:
how many bytes each device and each WAN really moved, to check the collector against.

It only ever binds 127.0.0.1.
"""

from __future__ import annotations

import json
import random
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from collector.endpoints import SCRIPT_NAMES

LOOPBACK = "127.0.0.1"
PATHS = SCRIPT_NAMES


def _first_line_with_nul(body: bytes) -> bytes:
    """One station's line carries a NUL byte: that line is rejected, the rest read."""
    return body[:5] + b"\x00" + body[5:] if body else body


def _without_first_line(body: bytes) -> bytes:
    """The first station is missing, as when one radio's dump failed or raced a wifi reload."""
    return body.partition(b"\n")[2]


# Faults that answer 200 with a body made from the true one: name -> how the body is changed.
BODY_FAULTS = {
    "binary": lambda body: b"\x00\x01\x02 NUL and binary\n\xc3\x28 invalid utf-8\n" + body + b"\x00" * 64,
    "garbage": lambda body: b"garbage line\n\xff\xfe bad bytes\nzz:zz:zz:zz:zz:zz 1 2\n" + body + b"1 2\n",
    "nul-line": _first_line_with_nul,
    "cr-only": lambda body: body.replace(b"\n", b"\r"),
    "bom": lambda body: b"\xef\xbb\xbf" + body,
    "drop-first": _without_first_line,
    # Just under the 4 MiB cap, two million one-character lines: every one rejected.
    "junk-lines": lambda body: b"x\n" * (2 * 1024 * 1024 - 1),
}
# Faults that answer in their own way: name -> the simulated router's method that answers.
ANSWER_FAULTS = {
    "down": "_drop",  # the connection closes without an answer
    "hang": "_hang",  # nothing at all for slow_seconds
    "slow": "_slow",  # headers at once, the body after slow_seconds
    "http500": "_http500",
    "http429": "_http429",
    "redirect-loop": "_redirect_loop",
    "redirect-away": "_redirect_away",  # to SimRouter.location, another host or port
    "redirect-here": "_redirect_here",  # to the same URL with a query, then the answer
    "reason-escapes": "_reason_escapes",  # a 503 whose reason phrase is terminal escapes
    "dribble": "_dribble_body",  # the body a byte at a time
    "dribble-headers": "_dribble_headers",  # the headers a byte at a time
    "gzip-bomb": "_send_gzip_bomb",
    "huge": "_send_huge",  # no Content-Length, about 200 MB
}
# Faults in what the router renders: the answer is otherwise normal.
RENDER_FAULTS = ("ok", "empty", "no-uptime", "no-connected")
FAULTS = (*RENDER_FAULTS, *ANSWER_FAULTS, *BODY_FAULTS)
# The reason phrase of the "reason-escapes" fault: 60 KB of terminal escapes (a window title,
# a hyperlink, clear screen, a C1 CSI, U+202E's UTF-8 bytes, DEL), as a hostile router may send.
HOSTILE_REASON = ((
    "\x1b]0;pwned\x07\x1b]8;;http://127.0.0.1/x\x1b\\click\x1b]8;;\x1b\\\x1b[2J\x1b[H\x9b31m"
    + "\u202e".encode().decode("latin-1") + "\x7f "
) * 2000)[:60_000]


@dataclass
class SimStation:
    mac: str
    associated_at: float
    rx_bytes: int = 0  # received by the AP from the device: the device's upload
    tx_bytes: int = 0  # sent by the AP to the device: the device's download


@dataclass
class SimRouter:
    key: str
    index: int
    booted_at: float
    has_wan: bool = True
    has_ap: bool = True
    has_dhcp: bool = True
    counter_bits: int = 64
    wan_rx: int = 0  # since boot
    wan_tx: int = 0
    stations: dict[str, SimStation] = field(default_factory=dict)
    leases: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # mac -> ip, host, id
    faults: dict[str, str] = field(default_factory=dict)  # endpoint -> fault mode
    delay: float = 0.0  # seconds added to every answer (latency)
    slow_seconds: float = 30.0  # how long the "slow" fault stalls
    location: str = ""  # where the "redirect-away" fault sends the collector


class Fleet:
    """A set of simulated routers served by one HTTP server on 127.0.0.1.

    Time is virtual when `now` is given (tests set `fleet.now` and pass the same
    value to the collector), real otherwise (the `simulate` command).
    """

    def __init__(self, now: float | None = None, seed: int = 0):
        self._virtual = now
        self.routers: dict[str, SimRouter] = {}
        self.truth: dict[str, list[int]] = {}  # device or "wan:<router>" -> [rx, tx]
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests_served = 0

    # --- time --------------------------------------------------------------------------
    @property
    def now(self) -> float:
        return self._virtual if self._virtual is not None else time.time()

    @now.setter
    def now(self, value: float) -> None:
        self._virtual = value

    def advance(self, seconds: float) -> float:
        with self.lock:
            self._virtual = self.now + seconds
            return self._virtual

    # --- building the fleet -----------------------------------------------------------
    def add_router(self, key: str, *, wan: bool = True, ap: bool = True, dhcp: bool = True,
                   counter_bits: int = 64, uptime: float = 86400.0) -> SimRouter:
        with self.lock:
            router = SimRouter(key, len(self.routers), self.now - uptime, has_wan=wan, has_ap=ap,
                               has_dhcp=dhcp, counter_bits=counter_bits)
            self.routers[key] = router
            return router

    def join(self, router: str, mac: str, *, hostname: str = "", ip: str | None = None,
             client_id: str = "") -> None:
        """A device associates with a router's access point (and gets a lease there)."""
        with self.lock:
            r = self.routers[router]
            r.stations[mac] = SimStation(mac, self.now)
            self.truth.setdefault(mac, [0, 0])
            if r.has_dhcp:
                r.leases[mac] = (ip or f"10.0.{r.index}.{len(r.leases) + 10}", hostname, client_id)

    def leave(self, router: str, mac: str) -> None:
        with self.lock:
            self.routers[router].stations.pop(mac, None)

    def roam(self, mac: str, source: str, target: str) -> None:
        """The device moves to another access point; its counters there start at zero."""
        with self.lock:
            self.routers[source].stations.pop(mac, None)
            self.routers[target].stations[mac] = SimStation(mac, self.now)

    def transfer(self, router: str, mac: str, upload: int, download: int,
                 wan_router: str | None = None) -> None:
        """The device moves bytes through this AP; the same bytes cross wan_router's WAN."""
        with self.lock:
            station = self.routers[router].stations[mac]
            station.rx_bytes += upload
            station.tx_bytes += download
            self.truth[mac][0] += upload
            self.truth[mac][1] += download
            if wan_router is not None:
                self.wan_transfer(wan_router, download, upload)

    def wan_transfer(self, router: str, rx: int, tx: int) -> None:
        with self.lock:
            r = self.routers[router]
            r.wan_rx += rx
            r.wan_tx += tx
            total = self.truth.setdefault(f"wan:{router}", [0, 0])
            total[0] += rx
            total[1] += tx

    def reboot(self, router: str) -> None:
        """Counters restart; every station re-associates with zeroed counters."""
        with self.lock:
            r = self.routers[router]
            r.booted_at = self.now
            r.wan_rx = r.wan_tx = 0
            for station in r.stations.values():
                station.associated_at = self.now
                station.rx_bytes = station.tx_bytes = 0

    def set_fault(self, router: str, mode: str, endpoints=tuple(PATHS)) -> None:
        if mode not in FAULTS:
            raise ValueError(f"unknown fault {mode!r}; one of {', '.join(FAULTS)}")
        if mode == "gzip-bomb":
            _gzip_bomb()  # made now, not while a collector with a deadline is waiting for it
        with self.lock:
            for endpoint in endpoints:
                self.routers[router].faults[endpoint] = mode

    def wan_truth(self) -> list[int]:
        """main_wan as it really was: the sum over every router's WAN."""
        total = [0, 0]
        for key, (rx, tx) in self.truth.items():
            if key.startswith("wan:"):
                total[0] += rx
                total[1] += tx
        return total

    def step(self, seconds: float, *, wan_router: str | None = None, churn: float = 0.1) -> None:
        """Random life for the demo and `simulate`: traffic, now and then a join, leave or roam.

        Leaving and roaming happen right after a poll would have seen the counters,
        so nothing here is traffic the collector could never see.
        """
        with self.lock:
            rng = self.rng
            routers = [r for r in self.routers.values() if r.has_ap]
            for r in routers:
                for station in list(r.stations.values()):
                    if rng.random() < churn / 4 and len(routers) > 1:
                        target = rng.choice([x for x in routers if x is not r])
                        self.roam(station.mac, r.key, target.key)
            if self._virtual is not None:
                self.advance(seconds)
            for r in routers:
                for station in list(r.stations.values()):
                    # Mostly downloads, a few megabytes per minute, heavy-tailed.
                    down = int(rng.paretovariate(1.5) * 200_000 * seconds / 60)
                    up = down // rng.randint(5, 20)
                    self.transfer(r.key, station.mac, up, down, wan_router=wan_router)

    # --- what the routers answer ------------------------------------------------------
    def _counter(self, router: SimRouter, value: int) -> int:
        return value % (2**router.counter_bits)

    def render(self, router: SimRouter, endpoint: str) -> str:
        with self.lock:
            now = self.now
            if endpoint == "ap_stats":
                # "no-connected": the seed's 3-field format, without CONNECTED_SECONDS.
                legacy = router.faults.get("ap_stats") == "no-connected"
                return "".join(
                    f"{s.mac} {self._counter(router, s.rx_bytes)} {self._counter(router, s.tx_bytes)}"
                    + ("" if legacy else f" {int(now - s.associated_at)}") + "\n"
                    for s in router.stations.values()
                )
            if endpoint == "wan_stats":
                text = f"wan: {self._counter(router, router.wan_rx)} {self._counter(router, router.wan_tx)}\n"
                if router.faults.get("wan_stats") != "no-uptime":
                    text += f"uptime: {int(now - router.booted_at)}\n"
                return text
            lines = [
                f"{int(now) + 43200} {mac} {ip} {host or '*'} {cid or '*'}\n"
                for mac, (ip, host, cid) in router.leases.items()
            ]
            return "".join(lines) + "duid 00:01:00:01:2c:4f:6e:1a:52:54:00:12:34:56\n"

    # --- serving ------------------------------------------------------------------------
    def url(self, router: str, endpoint: str) -> str:
        assert self._server is not None, "call start() first"
        port = self._server.server_address[1]
        return f"http://{LOOPBACK}:{port}/r{self.routers[router].index}/cgi-bin/{PATHS[endpoint]}"

    def start(self, port: int = 0) -> Fleet:
        self._server = _Server((LOOPBACK, port), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def config(self, settings: dict | None = None, **per_router) -> dict:
        """A routers.json document pointing at this fleet; per_router[key] adds router options."""
        routers = {}
        for key, r in self.routers.items():
            entry = {
                "ap_stats": self.url(key, "ap_stats") if r.has_ap else "",
                "wan_stats": self.url(key, "wan_stats") if r.has_wan else "",
                "dhcp_leases": self.url(key, "dhcp_leases") if r.has_dhcp else "",
            }
            if r.counter_bits != 64:
                entry["counter_bits"] = r.counter_bits
            entry.update(per_router.get(key, {}))
            routers[key] = entry
        return {"settings": settings or {}, "routers": routers}

    def write_config(self, path: Path, settings: dict | None = None, **per_router) -> Path:
        path.write_text(json.dumps(self.config(settings, **per_router), indent=2))
        return path


_BOMB: list[bytes] = []


def _gzip_bomb() -> bytes:
    """Made once per process: compressing 256 MiB takes a moment."""
    if not _BOMB:
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
        zeros = b"0" * (1024 * 1024)
        _BOMB.append(b"".join(compressor.compress(zeros) for _ in range(256)) + compressor.flush())
    return _BOMB[0]


class _Server(ThreadingHTTPServer):
    # A whole fleet is polled at once: the default backlog of 5 would drop
    # connections, and a dropped SYN is retried only after a second.
    request_queue_size = 1024
    daemon_threads = True


def _handler_for(fleet: Fleet):
    by_path = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            fleet.requests_served += 1
            if not by_path:
                for r in list(fleet.routers.values()):
                    for endpoint, name in PATHS.items():
                        by_path[f"/r{r.index}/cgi-bin/{name}"] = (r.key, endpoint)
            target = by_path.get(self.path.split("?")[0])
            if target is None:
                by_path.clear()  # routers may have been added since: look again next time
                self._send(404, b"not found\n")
                return
            router = fleet.routers[target[0]]
            endpoint = target[1]
            fault = router.faults.get(endpoint, "ok")
            if router.delay:
                time.sleep(router.delay)
            answer = ANSWER_FAULTS.get(fault)
            if answer is not None:
                getattr(self, answer)(router)
                return
            body = b"" if fault == "empty" else fleet.render(router, endpoint).encode()
            self._send(200, BODY_FAULTS[fault](body) if fault in BODY_FAULTS else body)

        # --- faults that answer in their own way: ANSWER_FAULTS maps each name to one of these ---

        def _drop(self, router: SimRouter) -> None:
            self.close_connection = True
            self.connection.close()

        def _hang(self, router: SimRouter) -> None:
            time.sleep(router.slow_seconds)
            self.close_connection = True

        def _http500(self, router: SimRouter) -> None:
            self._send(500, b"internal error\n")

        def _http429(self, router: SimRouter) -> None:
            self._send(429, b"slow down\n")

        def _redirect_loop(self, router: SimRouter) -> None:
            self._redirect(self.path)

        def _redirect_away(self, router: SimRouter) -> None:
            self._redirect(router.location)

        def _redirect_here(self, router: SimRouter) -> None:
            if "?" in self.path:  # arrived: the real answer
                self._send(200, fleet.render(router, self._endpoint()).encode())
            else:
                self._redirect(f"http://{self.headers['Host']}{self.path}?moved")  # absolute

        def _reason_escapes(self, router: SimRouter) -> None:
            self.send_response(503, HOSTILE_REASON)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _dribble_body(self, router: SimRouter) -> None:
            self._dribble(router, headers_too=False)

        def _dribble_headers(self, router: SimRouter) -> None:
            self._dribble(router, headers_too=True)

        def _slow(self, router: SimRouter) -> None:
            # Headers at once, the body after a long stall. Connection: close, so the
            # collector does not reuse this stalled connection for another router
            # that shares our port.
            body = fleet.render(router, self._endpoint()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body) + 1))
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                self.wfile.write(b"\n")  # a blank first line now (parsers skip it), the rest later
                time.sleep(router.slow_seconds)
                self.wfile.write(body)
            except OSError:
                pass

        def _endpoint(self) -> str:
            return by_path[self.path.split("?")[0]][1]

        def _redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except OSError:
                pass

        def _dribble(self, router: SimRouter, headers_too: bool) -> None:
            """One byte every slow_seconds/10, for as long as the client listens."""
            raw = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Slow: " if headers_too else
                   b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
            self.close_connection = True
            try:
                self.wfile.write(raw)
                for _ in range(10_000):
                    time.sleep(max(router.slow_seconds / 10, 0.05))
                    self.wfile.write(b"a")
            except OSError:
                pass

        def _start_unsized(self, **headers: str) -> None:
            """A 200 with no Content-Length, ended by closing the connection."""
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True

        def _send_gzip_bomb(self, router: SimRouter) -> None:
            # 256 MiB of zeros in about 256 KiB of gzip: the collector must stop
            # inflating at its cap instead of inflating it all into memory.
            self._start_unsized(Content_Encoding="gzip")
            try:
                self.wfile.write(_gzip_bomb())
            except OSError:
                pass

        def _send_huge(self, router: SimRouter) -> None:
            # No Content-Length: the collector must stop reading at its cap by itself.
            self._start_unsized()
            line = b"aa:bb:cc:dd:ee:ff 1 2 3\n" * 4096
            try:
                for _ in range(2000):  # about 200 MB at most, stopped by the reader's cap
                    self.wfile.write(line)
            except OSError:
                pass

    return Handler


_HOSTNAMES = ("laptop", "phone", "tablet", "tv", "console", "printer", "speaker", "watch",
              "desktop", "camera")


def build_fleet(router_count: int, stations: int, *, real_time: bool = False,
                now: float | None = None, seed: int = 0) -> Fleet:
    """A ready fleet: router-1 has the WAN, the DHCP server and an AP; the others are APs.

    Every router starts with `stations` associated devices, each with a lease on router-1.
    """
    fleet = Fleet(now=None if real_time else (now if now is not None else time.time()), seed=seed)
    for i in range(1, router_count + 1):
        key = f"router-{i}" if i == 1 else f"ap-{i}"
        fleet.add_router(key, wan=(i == 1), dhcp=(i == 1))
    main = "router-1"
    n = 0
    for key in fleet.routers:
        for _ in range(stations):
            n += 1
            mac = f"02:00:{n >> 16 & 0xff:02x}:{n >> 8 & 0xff:02x}:{n & 0xff:02x}:01"
            name = f"{_HOSTNAMES[n % len(_HOSTNAMES)]}-{n}"
            fleet.join(key, mac)
            ip = f"10.{n >> 16 & 0xff}.{n >> 8 & 0xff}.{n & 0xff}"
            fleet.routers[main].leases[mac] = (ip, name, f"01:{mac}")
    return fleet
