"""The API cannot write: not through the connection it reads with, on either database."""

import shutil
import sqlite3

import pytest

from api import db
from api.app import create_app


@pytest.mark.parametrize("statement", [
    "INSERT INTO monthly_stats (id, rx_bytes, tx_bytes, timestamp) VALUES ('x', 1, 1, '')",
    "UPDATE usage_period SET rx_bytes = 0",
    "DELETE FROM leases.dhcp_leases",
    "CREATE TABLE evil (x)",
    "PRAGMA user_version = 99",
])
def test_a_write_through_the_apis_connection_fails(api_scenario, tmp_path, statement):
    data_dir = tmp_path / "data"
    shutil.copytree(api_scenario.data_dir, data_dir)
    before = {p.name: p.read_bytes() for p in data_dir.glob("*.db")}
    app = create_app({"DATA_DIR": str(data_dir)})
    with app.app_context():
        conn = db.connection()
        with pytest.raises(sqlite3.OperationalError, match="readonly|read-only|query_only"):
            conn.execute(statement)
    assert {p.name: p.read_bytes() for p in data_dir.glob("*.db")} == before


def test_the_api_imports_nothing_of_the_collectors_write_path():
    """The boundary the docstrings promise: the API reads, it cannot even load the writer."""
    import subprocess
    import sys

    from support import REPO

    probe = ("import sys, api.app; api.app.create_app({'DATA_DIR': '/nonexistent'}); "
             "print(' '.join(m for m in sys.modules if m.startswith(('collector', 'requests', 'api'))))")
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.split()
    assert "api.app" in loaded and "collector.reads" in loaded  # the probe saw the API load
    for module in ("collector.storage", "collector.run", "collector.fetch", "requests"):
        assert module not in loaded, f"importing the API loaded {module}"
