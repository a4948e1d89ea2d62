"""The API under real gunicorn when there is no data yet, and while the collector runs."""

from __future__ import annotations

import pytest
from support import answers_during, collect, gunicorn_server

STATS_MISSING = "no such database (has the collector run yet?)"


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory):
    """gunicorn over a data directory the collector has never written to."""
    base = tmp_path_factory.mktemp("api-empty")
    (base / "data").mkdir()
    with gunicorn_server(base / "data", base / "gunicorn.log") as server:
        server.data_dir = base / "data"
        yield server


@pytest.mark.parametrize("path", ["/api/v1/usage", "/api/v1/periods", "/api/v1/wan/history",
                                  "/api/v1/clients/aa:bb:cc:dd:ee:ff/history", "/api/v1/leases",
                                  "/api/v1/routers"])
def test_v1_without_databases_is_503_naming_the_file(empty_server, path):
    r = empty_server.get(path)
    assert (r.status_code, r.headers["Content-Type"]) == (503, "application/json")
    assert r.json() == {"error": f"{empty_server.data_dir / 'network_stats.db'}: {STATS_MISSING}",
                        "status": 503}


def test_healthz_without_databases_is_503_with_the_reason(empty_server):
    r = empty_server.get("/healthz")
    assert r.status_code == 503
    assert (r.json()["status"], r.json()["reason"]) == (
        "unavailable", f"{empty_server.data_dir / 'network_stats.db'}: {STATS_MISSING}")


@pytest.mark.parametrize("action, error", [
    ("clients", "Could not connect to the stats database."),
    ("wan", "Could not connect to the stats database."),
    ("leases", "Could not connect to the DHCP database."),
    ("combined", "Could not connect to one or more databases."),
])
def test_api_php_without_databases_is_the_seeds_500(empty_server, action, error):
    r = empty_server.get("/api.php", params={"action": action})
    assert (r.status_code, r.headers["Content-Type"], r.text) == (
        500, "application/json", f'{{"error":"{error}"}}')


def test_without_databases_the_app_still_answers_what_needs_none(empty_server):
    assert [empty_server.get(p).status_code for p in ("/", "/api/v1/openapi.json", "/api.php")] == [
        200, 200, 400]


def test_a_run_while_serving_is_seen_whole_and_changes_the_etag(fleet, tmp_path):
    """Readers during the collector's commit see the old totals or the new, never a mix."""
    fleet.add_router("router-1")
    fleet.join("router-1", "aa:00:00:00:00:01", hostname="laptop")
    config = fleet.write_config(tmp_path / "routers.json", settings={"timezone": "UTC"})
    data_dir = tmp_path / "data"
    assert collect(fleet, config, data_dir).code == 0
    fleet.transfer("router-1", "aa:00:00:00:00:01", 1000, 5000, wan_router="router-1")
    fleet.advance(1800)
    assert collect(fleet, config, data_dir).code == 0
    with gunicorn_server(data_dir, tmp_path / "gunicorn.log", now=fleet.now + 1800) as server:
        before = server.get("/api/v1/usage")
        assert before.json()["wan"]["rx_bytes"] == 5000
        fleet.transfer("router-1", "aa:00:00:00:00:01", 2000, 7000, wan_router="router-1")
        fleet.advance(1800)
        result, seen = answers_during(server, "/api/v1/usage",
                                      lambda: collect(fleet, config, data_dir))
        assert result.code == 0, result.stderr
        assert seen and [answer for answer in seen if answer[0] != 200] == []
        assert {body["wan"]["rx_bytes"] for _, body in seen} <= {5000, 12000}
        after = server.get("/api/v1/usage", headers={"If-None-Match": before.headers["ETag"]})
        assert (after.status_code, after.json()["wan"]["rx_bytes"]) == (200, 12000)
        assert after.headers["ETag"] != before.headers["ETag"]
        repeat = server.get("/api/v1/usage", headers={"If-None-Match": after.headers["ETag"]})
        assert repeat.status_code == 304
