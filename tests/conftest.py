"""Shared fixtures: simulated routers on 127.0.0.1, temporary data directories, the real CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from collector.simulate import Fleet

REPO = Path(__file__).resolve().parent.parent
# A fixed, ordinary moment in the middle of a billing period (UTC).
T0 = datetime(2026, 11, 15, 12, 0, tzinfo=timezone.utc).timestamp()


@pytest.fixture
def fleet():
    """An empty simulated fleet on 127.0.0.1 with a virtual clock at T0."""
    with Fleet(now=T0) as f:
        yield f


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


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


def write_config(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document, indent=2))
    return path


def collect(fleet: Fleet, config: Path, data_dir: Path, *extra: str) -> CliResult:
    """One `run-once` at the fleet's current virtual time."""
    return run_cli("run-once", "--config", str(config), "--data-dir", str(data_dir), *extra,
                   now=fleet.now)


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
