"""schemathesis against a real gunicorn, from the OpenAPI document the app serves."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Schemathesis against a real server: the long tier.
pytestmark = pytest.mark.slow

if sys.version_info < (3, 11):
    pytest.skip("schemathesis 4.32+ needs Python 3.11: the contract test runs on 3.11 and later",
                allow_module_level=True)

pytest.importorskip("schemathesis", reason="schemathesis is a test dependency: pip install -e '.[test]'")

# OpenAPI cannot say that `from` is a day or a month according to `granularity`,
# that from <= to, that the span is bounded, or that a day exists in its month:
# requests that fit the document but break those rules get 400, on purpose.
CONFIG = """
[[operations]]
include-path-regex = "/history$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "304", "400", "404"]
"""
MAX_EXAMPLES = 100


def test_schemathesis_finds_no_failure(api_server, tmp_path):
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    proc = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color",
         "run", api_server.url + "/api/v1/openapi.json", "--checks", "all",
         "--max-examples", str(MAX_EXAMPLES), "--seed", "20261201",
         "--generation-database", "none", "--workers", "2", "--request-timeout", "10"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "NO_PROXY": "*"},
    )
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-5000:]
    assert "13 selected / 13 total" in proc.stdout  # every operation was exercised
