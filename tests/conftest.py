"""Fixtures: simulated routers on 127.0.0.1, temporary data directories, the API scenario and a
real gunicorn serving it. The helpers they are built from live in tests/support.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import T0, ApiScenario, build_api_scenario, build_hostile_names, gunicorn_server

from collector.sim.routers import Fleet


@pytest.fixture
def fleet():
    """An empty simulated fleet on 127.0.0.1 with a virtual clock at T0."""
    with Fleet(now=T0) as f:
        yield f


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(scope="session")
def api_scenario(tmp_path_factory) -> ApiScenario:
    """Built once per test session; tests must only read it."""
    with Fleet(now=T0) as fleet:
        return build_api_scenario(fleet, tmp_path_factory.mktemp("api-scenario"))


@pytest.fixture(scope="session")
def api_server(api_scenario, tmp_path_factory):
    """gunicorn serving the scenario, its clock at the last run."""
    log = tmp_path_factory.mktemp("api-server-log") / "gunicorn.log"
    with gunicorn_server(api_scenario.data_dir, log, now=api_scenario.now) as server:
        yield server


@pytest.fixture(scope="session")
def hostile_names(tmp_path_factory) -> tuple[Path, float]:
    """(data directory, its last run's time): devices with hostile hostnames, names and owners
    (support.HOSTILE_HOSTNAMES, HOSTILE_DEVICES). Built once per session; tests only read it."""
    with Fleet(now=T0) as fleet:
        return build_hostile_names(fleet, tmp_path_factory.mktemp("hostile-names"))
