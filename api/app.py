"""The app factory: `gunicorn 'api.app:create_app()'` or `flask --app api.app run`.

Configuration comes from the environment (NETSTAT_DATA_DIR, NETSTAT_HEALTH_MAX_AGE,
and NETSTAT_NOW for tests and replays only) or from `test_config`. Every answer but
the dashboard's page and its static files is JSON, errors included: domain and HTTP
errors are turned into `{"error": ..., "status": ...}` here, once. Every answer gets
the security headers below.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from api import answers, compat, dashboard, db, v1
from collector.config import DEFAULT_DATA_DIR
from collector.errors import DataUnavailable

# Two missed 30-minute runs plus ten minutes of slack.
DEFAULT_HEALTH_MAX_AGE = 2 * 30 * 60 + 600
DEFAULT_CACHE_ENTRIES = 256

# On every answer. Hostnames come from DHCP, chosen by whoever joins the network: the
# dashboard sets them as text only, and this policy would stop any script that still got
# into the page (no inline script, nothing from another origin), or a frame around it.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def _number(name: str, text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be a finite number, got {text!r}")
    return value


def _from_environment() -> dict[str, Any]:
    max_age = _number("NETSTAT_HEALTH_MAX_AGE", os.environ.get("NETSTAT_HEALTH_MAX_AGE"))
    return {
        "DATA_DIR": os.environ.get("NETSTAT_DATA_DIR") or DEFAULT_DATA_DIR,
        "HEALTH_MAX_AGE": DEFAULT_HEALTH_MAX_AGE if max_age is None else max_age,
        "NOW": _number("NETSTAT_NOW", os.environ.get("NETSTAT_NOW")),
        "CACHE_ENTRIES": DEFAULT_CACHE_ENTRIES,
    }


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app; test_config overrides DATA_DIR, HEALTH_MAX_AGE, NOW, CACHE_ENTRIES."""
    # api/static/ is served at /static/: the dashboard's script, style and icon.
    app = Flask(__name__, static_folder="static")
    app.config.from_mapping(_from_environment())
    if test_config:
        app.config.update(test_config)
    if float(app.config["HEALTH_MAX_AGE"]) <= 0:
        raise ValueError("NETSTAT_HEALTH_MAX_AGE must be above 0 seconds")
    app.json.sort_keys = False  # keep the documented key order
    app.extensions["netstat_answers"] = answers.AnswerCache(int(app.config["CACHE_ENTRIES"]))

    app.register_blueprint(compat.bp)
    app.register_blueprint(v1.bp)
    app.register_blueprint(v1.root)
    app.register_blueprint(dashboard.bp)
    app.after_request(_security_headers)
    app.teardown_appcontext(db.close_connection)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(DataUnavailable, _unavailable)
    app.register_error_handler(sqlite3.Error, _database_error)
    app.register_error_handler(Exception, _internal_error)
    return app


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _json_error(status: int, message: str, headers: dict | None = None) -> Response:
    return Response(answers.encode_json({"error": message, "status": status}), status=status,
                    headers=headers, content_type=answers.JSON)


def _http_error(e: HTTPException) -> Response:
    status = e.code or 500
    if status == 404 and request.url_rule is None:
        message = f"no such route: {request.path}"
    elif isinstance(e, MethodNotAllowed):
        allowed = ", ".join(sorted(e.valid_methods or ()))
        return _json_error(405, f"method {request.method} not allowed here; allowed: {allowed}",
                           {"Allow": allowed})
    else:
        message = e.description or e.name
    return _json_error(status, message)


def _unavailable(e: DataUnavailable) -> Response:
    return _json_error(503, str(e))


def _database_error(e: sqlite3.Error) -> Response:
    return _json_error(503, f"cannot read the databases in {db.data_dir()}: {e}")


def _internal_error(e: Exception) -> Response:
    # An HTTPException never gets here; anything else is a bug: log it, answer JSON.
    current_app.logger.exception("unhandled error on %s %s", request.method, request.path)
    return _json_error(500, "internal error (logged on the server)")
