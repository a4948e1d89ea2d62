"""The app factory: `gunicorn 'api.app:create_app()'` or `flask --app api.app run`.

Configuration comes from the environment (NETSTAT_DATA_DIR, NETSTAT_HEALTH_MAX_AGE,
NETSTAT_ALLOWED_HOSTS, and NETSTAT_NOW for tests and replays only) or from
`test_config`. Every answer but the dashboard's page and its static files is JSON,
errors included: domain and HTTP errors are turned into `{"error": ..., "status": ...}`
here, once. Every answer gets the security headers below. Nothing answers with a
redirect (no trailing-slash or double-slash 308s) or an automatic `OPTIONS` page, and a
`Host` that is not one of ours is a 400 (api.hosts).
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import BadRequest, HTTPException, MethodNotAllowed, PreconditionFailed

from api import answers, compat, dashboard, db, hosts, v1
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
        "ALLOWED_HOSTS": hosts.configured_names(os.environ.get("NETSTAT_ALLOWED_HOSTS", ""),
                                                "NETSTAT_ALLOWED_HOSTS"),
    }


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app; test_config overrides DATA_DIR, HEALTH_MAX_AGE, NOW, CACHE_ENTRIES and
    ALLOWED_HOSTS (names beside IP literals, localhost and the machine's own names)."""
    # api/static/ is served at /static/ by dashboard.static_file, not by Flask's own
    # view, whose conditional answers follow Werkzeug's rules instead of ours.
    app = Flask(__name__, static_folder=None)
    # One URL per answer: `/api/v1` is the index itself, `//x` and `/api/v1/usage/` are 404s.
    # Werkzeug would redirect them with an HTML 308 naming the request's Host.
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    # OPTIONS is a 405 like any other method but GET and HEAD (Flask would answer an
    # empty text/html 200); set before the routes are added, which read it.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.config.from_mapping(_from_environment())
    if test_config:
        app.config.update(test_config)
    app.extensions["netstat_hosts"] = hosts.HostPolicy.build(
        hosts.configured_names(app.config["ALLOWED_HOSTS"], "ALLOWED_HOSTS"))
    if float(app.config["HEALTH_MAX_AGE"]) <= 0:
        raise ValueError("NETSTAT_HEALTH_MAX_AGE must be above 0 seconds")
    app.json.sort_keys = False  # keep the documented key order
    app.extensions["netstat_answers"] = answers.AnswerCache(int(app.config["CACHE_ENTRIES"]))

    app.register_blueprint(compat.bp)
    app.register_blueprint(v1.bp)
    app.register_blueprint(v1.root)
    app.register_blueprint(dashboard.bp)
    app.add_url_rule("/static/<path:filename>", endpoint="static", view_func=dashboard.static_file)
    app.before_request(_only_our_hosts)
    # after_request functions run last-registered first: the headers go on the final answer.
    app.after_request(_security_headers)
    app.after_request(_preconditions)
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


def _only_our_hosts() -> None:
    policy: hosts.HostPolicy = current_app.extensions["netstat_hosts"]
    if not policy.allows(request.host):
        raise BadRequest(f"Host not served here: {request.headers.get('Host', '')!r} (a name of "
                         f"this machine that is not its own host name belongs in NETSTAT_ALLOWED_HOSTS)")


def _preconditions(response: Response) -> Response:
    """If-Match and friends on the successful answers that did not evaluate them first.

    Data answers (answers.respond) evaluate them before computing anything; the
    others (the OpenAPI document, the index, /healthz, the dashboard and its files)
    are complete here. Errors ignore preconditions (RFC 9110 section 13.2.1).
    """
    if request.method not in ("GET", "HEAD") or not 200 <= response.status_code < 300:
        return response
    etag, weak = response.get_etag()
    try:
        current = answers.not_modified(etag, response.last_modified, weak=weak)
    except PreconditionFailed as e:
        response.close()
        return _http_error(e)
    if current:
        response.status_code = 304  # Werkzeug drops the body and its headers on the way out
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
