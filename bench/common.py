"""What every benchmark section shares: profiles, child processes measured with wait4, tables."""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

UTC = timezone.utc  # datetime.UTC is Python 3.11+

REPO = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
MIB = 1024 * 1024


@dataclass(frozen=True)
class Profile:
    """How big and how often: the full bench, or the few-second smoke version."""

    name: str
    repeats: int  # measured repetitions of each timing (the median and min are reported)
    # 1. run-once: fleets of (routers, stations per router), and the added router latency.
    fleets: tuple[tuple[int, int], ...]
    latency: float
    # 2. syncs: the fleets traced with strace (a subset of `fleets`).
    sync_fleets: tuple[tuple[int, int], ...]
    naive_max_seconds: float  # the naive writer stops here and its count is extrapolated
    # 3. memory: run the size-cap cases.
    cap_cases: tuple[str, ...]
    # 4. start-up
    startup_repeats: int
    # 5. database growth: devices, simulated days, and whether to also run every
    #    30-minute commit for the smallest size (to check the one-commit-a-day shortcut).
    growth_devices: tuple[int, ...]
    growth_days: int
    growth_exact_check: bool
    query_repeats: int
    # 6. API load
    api_devices: tuple[int, ...]
    api_workers: tuple[int, ...]
    load_seconds: float  # per wrk measurement
    load_requests: int  # per Python-client measurement (bounded count)
    use_wrk: bool
    # 7. large fleets (issue 15), measured repetitions of each
    large_fleets: tuple[tuple[int, int], ...] = ()
    large_repeats: int = 1
    # 8. the API and the dashboard at many devices (issue 15)
    big_devices: int = 10_000
    big_days: int = 365
    browser_repeats: int = 3


FULL = Profile(
    name="full", repeats=5,
    fleets=((1, 20), (1, 200), (1, 1000), (10, 20), (10, 200), (10, 1000),
            (50, 20), (50, 200), (50, 1000)),
    latency=0.2,
    sync_fleets=((1, 20), (10, 200), (50, 1000)),
    naive_max_seconds=60.0,
    cap_cases=("small", "cap-padding", "cap-stations", "over-cap"),
    startup_repeats=9,
    growth_devices=(50, 1000), growth_days=365, growth_exact_check=True, query_repeats=30,
    api_devices=(50, 1000, 5000), api_workers=(1, 2), load_seconds=4.0, load_requests=400,
    use_wrk=True,
    # 50 x 200 again (target 2), 200 x 500, and 1,000 routers with 10, 50, 100 stations
    # (the curve up to target 1's 100,000 stations)
    large_fleets=((50, 200), (200, 500), (1000, 10), (1000, 50), (1000, 100)), large_repeats=5,
    big_devices=10_000, big_days=365, browser_repeats=3,
)

SMOKE = Profile(
    name="smoke", repeats=1,
    fleets=((1, 5), (2, 5)),
    latency=0.05,
    sync_fleets=((1, 5),),
    naive_max_seconds=5.0,
    cap_cases=("small", "cap-padding"),
    startup_repeats=2,
    growth_devices=(5,), growth_days=3, growth_exact_check=True, query_repeats=3,
    api_devices=(5,), api_workers=(1,), load_seconds=1.0, load_requests=20,
    use_wrk=False,
    large_fleets=((3, 5), (6, 5)), large_repeats=1,
    big_devices=20, big_days=3, browser_repeats=1,
)


# --- Numbers ---------------------------------------------------------------------------------


@dataclass
class Sample:
    """Repeated measurements of one quantity."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def min(self) -> float:
        return min(self.values) if self.values else float("nan")

    @property
    def max(self) -> float:
        return max(self.values) if self.values else float("nan")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank: what load tools report."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def fmt(value: float | int | None, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    if value != value:  # NaN
        return "n/a"
    return f"{value:.{digits}f}"


# --- Child processes ---------------------------------------------------------------------------


@dataclass
class ChildRun:
    """A finished child process as the kernel accounted it (wait4)."""

    argv: list[str]
    code: int
    wall: float  # seconds, fork to reaped
    user: float  # CPU seconds
    sys: float
    maxrss: int  # bytes (peak resident set of the child itself)
    stdout: str
    stderr: str

    @property
    def cpu(self) -> float:
        return self.user + self.sys


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus NETSTAT_* (never the real config or data), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETSTAT_")}
    env.setdefault("TZ", "UTC")
    env.update(extra)
    return env


LAUNCHER = REPO / "bench" / "launch.py"


def run_child(argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 120,
              cwd: Path = REPO, scratch: Path | None = None) -> ChildRun:
    """Run argv to completion, measuring wall time, CPU and peak memory of that process.

    The command is started by bench/launch.py, a small process of its own, so that
    its peak memory is its own and not this (larger) process's: see launch.py.
    Output goes to files, not pipes, so that reading it cannot take part in the
    timing. A command still running after `timeout` is killed with its launcher
    (the run then shows code -9).
    """
    scratch = scratch or Path(os.environ.get("TMPDIR", "/tmp"))
    stem = scratch / f".child-{os.getpid()}-{threading.get_ident()}"
    out_path, err_path, result_path = (stem.with_suffix(s) for s in (".out", ".err", ".json"))
    result_path.unlink(missing_ok=True)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-S", str(LAUNCHER), str(result_path), *argv],
                                stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=env if env is not None else clean_env(), cwd=cwd,
                                start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher's own group: it and the command
            proc.wait()
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    out_path.unlink()
    err_path.unlink()
    if proc.returncode != 0 or not result_path.exists():
        return ChildRun(argv, -9 if proc.returncode else -1, float("nan"), float("nan"),
                        float("nan"), 0, stdout, stderr)
    result = json.loads(result_path.read_text())
    result_path.unlink()
    return ChildRun(argv, result["code"], result["wall"], result["user"], result["sys"],
                    result["maxrss"], stdout, stderr)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def collector_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "collector", *args]


# --- The machine -------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _tool_version(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (proc.stdout or proc.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def _filesystem(path: Path) -> str:
    """The filesystem type holding path (syncs cost what the disk under it costs)."""
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], f"{parts[2]} ({parts[0]})"
    except OSError:
        pass
    return kind


def _source() -> str:
    """The commit measured, and whether the working tree had changes on top of it."""
    try:
        head = subprocess.run(["git", "log", "-1", "--format=%h %s"], capture_output=True,
                              text=True, cwd=REPO, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"],
                               capture_output=True, text=True, cwd=REPO, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (no git)"
    if not head:
        return "unknown (not a git checkout)"
    return f"{head}" + (" + uncommitted changes" if dirty else "")


def _install() -> str:
    """How netstat-collect is installed: an editable install adds an import hook to start-up."""
    from importlib import metadata

    try:
        dist = metadata.distribution("netstat-collect")
    except metadata.PackageNotFoundError:
        return "not installed (run from the source tree)"
    direct = dist.read_text("direct_url.json") or ""
    kind = "editable install" if '"editable": true' in direct else "regular install"
    return f"{dist.version}, {kind}; the CLI runs from {REPO} (python -m collector)"


def machine(work_dir: Path) -> list[tuple[str, str]]:
    import gunicorn

    ram = _ram_bytes()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return [
        ("date", datetime.now(UTC).isoformat(timespec="seconds")),
        ("CPU", _cpu_model()),
        ("cores", str(os.cpu_count())),
        ("RAM", f"{ram / 2**30:.1f} GiB" if ram else "unknown"),
        ("OS", f"{platform.system()} {platform.release()} ({platform.machine()})"),
        ("Python", f"{platform.python_version()} ({sys.executable})"),
        ("SQLite", sqlite3.sqlite_version),
        ("source", _source()),
        ("netstat-collect", _install()),
        ("gunicorn", gunicorn.__version__),
        ("strace", _tool_version(["strace", "-V"])),
        ("wrk", _tool_version(["wrk", "--version"])),
        ("work directory", f"{work_dir} on {_filesystem(work_dir)}"),
        ("load average at start", " ".join(f"{x:.2f}" for x in load) if load else "unknown"),
    ]


# --- Output ------------------------------------------------------------------------------------


@dataclass
class Section:
    """One numbered part of the report: a title, tables, and notes saying how to read them."""

    number: str
    title: str
    tables: list[tuple[list[str], list[list[str]]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.tables.append((header, rows))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def markdown(self) -> str:
        lines = [f"## {self.number}. {self.title}", ""]
        for header, rows in self.tables:
            lines.append(markdown_table(header, rows))
            lines.append("")
        for note in self.notes:
            lines.append(f"- {note}")
        if self.notes:
            lines.append("")
        return "\n".join(lines)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def log(message: str) -> None:
    """Progress on stderr: the table goes to stdout."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
