"""Real notification receivers on 127.0.0.1 for the alert tests: an SMTP server (aiosmtpd)
that Apprise's mailto:// delivers to, and an HTTP server that takes json:// webhooks and
can be told to refuse (500), hang past the deadline, flood, or be down altogether; and the
configuration that sends alerts to them."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller
from support import collect, start_run_once, write_config


def alert_config(fleet, tmp_path: Path, targets: list[str], *, cap_gib: float | None = 1.0,
                 alerts: dict | None = None, devices: dict | None = None, **settings) -> Path:
    """routers.json for the fleet, in UTC, with a cap (unless None) and an `alerts` section whose
    notify file (mode 0600, a comment on its first line) lists `targets`."""
    notify = tmp_path / "notify.urls"
    notify.write_text("# where alerts go\n" + "\n".join(targets) + "\n")
    notify.chmod(0o600)
    document = fleet.config({"timezone": "UTC", **({"monthly_cap_gib": cap_gib} if cap_gib else {}),
                             **settings})
    document["alerts"] = {"notify_file": str(notify), **(alerts or {})}
    if devices:
        document["devices"] = devices
    return write_config(tmp_path / "routers.json", document)


def caught_sending(fleet, tmp_path: Path, data_dir: Path, hook, device: str, hang_seconds: float):
    """A run-once process caught while it sends: router `main` with `device`, a 1 GiB cap, a
    first run, 1 GiB moved (80 % and 100 % due), `hook` holding the connection without
    answering. Returns (config, the process), whose stderr is a pipe the caller closes; the
    alerts are committed by then."""
    fleet.add_router("main")
    fleet.join("main", device)
    config = alert_config(fleet, tmp_path, [hook.url()], alerts={"deadline_seconds": 60})
    assert collect(fleet, config, data_dir).code == 0
    hook.mode, hook.hang_seconds = "hang", hang_seconds
    fleet.transfer("main", device, 3, 2**30, wan_router="main")
    fleet.advance(1800)
    process = start_run_once(config, data_dir, fleet.now, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while hook.attempts == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hook.attempts == 1, "the run never reached the target"
    return config, process


def run_later(fleet, config: Path, data_dir: Path, *extra: str, advance: float = 1800):
    """The next cron run: the fleet's clock moves on (30 minutes), then run-once."""
    fleet.advance(advance)
    return collect(fleet, config, data_dir, *extra)


def _free_port() -> int:
    # aiosmtpd's controller checks that it listens by connecting: it cannot be given port 0.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Mailbox:
    port: int
    messages: list[email.message.EmailMessage] = field(default_factory=list)

    def url(self, to: str = "owner@example.com") -> str:
        """Apprise's mailto:// to this server: plain SMTP on 127.0.0.1, no login."""
        return f"mailto://127.0.0.1:{self.port}?from=netstat@example.com&to={to}"

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]

    def bodies(self) -> list[str]:
        return [m.get_content() for m in self.messages]


@contextmanager
def smtp_server():
    """aiosmtpd on a free loopback port; every message it is given lands in `messages`."""
    mailbox = Mailbox(_free_port())

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
            mailbox.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()


# A flood stops by itself after this much, whatever the sender does.
FLOOD_CAP_BYTES = 8 * 2**30


@dataclass
class Webhook:
    """A json:// receiver. `mode`: "ok" (200), "refuse" (500), "hang" (holds the connection,
    then closes it without answering: nothing is ever taken), "flood" (a 500 whose body
    never ends, until the sender goes away or FLOOD_CAP_BYTES have been sent)."""

    port: int
    mode: str = "ok"
    posts: list[dict] = field(default_factory=list)  # the JSON of every message taken
    attempts: int = 0  # every request, taken or not
    hang_seconds: float = 5.0

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"


@contextmanager
def webhook_server():
    hook = Webhook(0)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            hook.attempts += 1
            if hook.mode == "hang":
                time.sleep(hook.hang_seconds)
                self.close_connection = True
                return
            if hook.mode == "flood":
                self.send_response(500, "Internal Server Error")
                self.send_header("Connection", "close")
                self.end_headers()
                chunk = b"x" * 2**20
                try:
                    for _ in range(FLOOD_CAP_BYTES // len(chunk)):
                        self.wfile.write(chunk)
                except OSError:
                    pass  # the sender was killed at its deadline, or gave up
                self.close_connection = True
                return
            if hook.mode == "refuse":
                self.send_response(500, "Internal Server Error")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            hook.posts.append(json.loads(body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    hook.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
