"""API v1: usage per device and owner per period (JSON or CSV), history for charts, leases, router
health, and /healthz."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import date, datetime, timedelta

from flask import Blueprint, Response, abort, current_app, request, url_for

from api import answers, db, openapi, queries
from collector import export, reads
from collector.errors import DataUnavailable
from collector.parse import normalise_mac
from collector.periods import MIN_YEAR, parse_day, parse_month
from collector.schema import LEASES_DB, STATS_DB, WAN

bp = Blueprint("v1", __name__, url_prefix="/api/v1")
root = Blueprint("root", __name__)

DEFAULT_DAYS = 30
DEFAULT_MONTHS = 12
# A bounded answer: a chart never needs more, and a request can't ask for a huge one.
MAX_DAYS = 366
MAX_MONTHS = 120
# `?format=` of the period answers (/usage, /owners), and the CSV's media type.
FORMATS = ("json", "csv")
CSV = "text/csv; charset=utf-8"


def _bad(message: str):
    abort(400, description=message)


def _period_answer(kind: str, read: Callable[..., dict], to_csv: Callable[[dict], str]) -> Response:
    """A period's answer (`?period=`, default the current one) as JSON or, with `?format=csv`,
    as a CSV download named after the period."""
    output = request.args.get("format", "json")
    if output not in FORMATS:
        _bad(f"format must be {' or '.join(FORMATS)}, got {output!r}")
    conn = db.connection()
    settings = reads.read_settings(conn)
    label = request.args.get("period")
    try:
        period = reads.resolve_period(settings, label, db.now())
    except ValueError as e:
        _bad(str(e))
    options: dict = {}
    if output == "csv":
        options = {"encode": lambda answer: to_csv(answer).encode(), "content_type": CSV,
                   "headers": {"Content-Disposition":
                               f'attachment; filename="{export.filename(kind, period.label)}"'}}
    # The format is part of the answer's name: the cache and the ETag keep the two apart.
    return answers.respond(
        f"{kind} {output}", (period.label,), lambda: read(conn, period, settings),
        # The default period moves on at a period boundary, with or without a new run.
        not_before=period.start.timestamp() if label is None else None, **options,
    )


@bp.get("/usage")
def usage() -> Response:
    return _period_answer("usage", reads.usage, export.usage_csv)


@bp.get("/owners")
def owners() -> Response:
    return _period_answer("owners", reads.owners, export.owners_csv)


@bp.get("/periods")
def periods() -> Response:
    conn = db.connection()
    settings = reads.read_settings(conn)
    current = reads.resolve_period(settings, None, db.now())
    return answers.respond(
        "periods", (current.label,),
        lambda: {"current": current.label, "periods": reads.periods(conn)},
        not_before=current.start.timestamp(),
    )


def _month_before(label: str, months: int) -> str:
    year, month = parse_month(label)
    index = max(year * 12 + month - 1 - months, MIN_YEAR * 12)
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _history(device: str) -> Response:
    granularity = request.args.get("granularity", "day")
    if granularity not in ("day", "month"):
        _bad(f"granularity must be day or month, got {granularity!r}")
    conn = db.connection()
    settings = reads.read_settings(conn)
    now = db.now()
    args = request.args
    not_before = None
    try:
        if granularity == "day":
            today = datetime.fromtimestamp(now, settings.zone).date()
            last = parse_day(args["to"], "to") if "to" in args else today
            first = (parse_day(args["from"], "from") if "from" in args
                     else max(last - timedelta(days=DEFAULT_DAYS - 1), date(MIN_YEAR, 1, 1)))
            span = (last - first).days + 1
            limit, unit = MAX_DAYS, "days"
            if "to" not in args:
                not_before = datetime(today.year, today.month, today.day,
                                      tzinfo=settings.zone).timestamp()
            first_text, last_text = first.isoformat(), last.isoformat()
        else:
            current = reads.resolve_period(settings, None, now)
            last_text = args["to"] if "to" in args else current.label
            last_year, last_month = parse_month(last_text, "to")
            first_text = args["from"] if "from" in args else _month_before(last_text, DEFAULT_MONTHS - 1)
            first_year, first_month = parse_month(first_text, "from")
            span = (last_year - first_year) * 12 + last_month - first_month + 1
            limit, unit = MAX_MONTHS, "months"
            if "to" not in args:
                not_before = current.start.timestamp()
    except ValueError as e:
        _bad(str(e))
    if span < 1:
        _bad(f"from ({first_text}) is after to ({last_text})")
    if span > limit:
        _bad(f"from {first_text} to {last_text} is {span} {unit}; at most {limit} at a time")

    def compute() -> dict:
        if granularity == "day":
            points = queries.daily_history(conn, device, first, last, settings)
        else:
            points = queries.monthly_history(conn, device, first_text, last_text, settings)
        rx = sum(p["rx_bytes"] for p in points)
        tx = sum(p["tx_bytes"] for p in points)
        download, upload = (rx, tx) if device == WAN else (tx, rx)
        return {"device": device, "granularity": granularity, "from": first_text, "to": last_text,
                "points": points,
                "total": {"rx_bytes": rx, "tx_bytes": tx, "download_bytes": download,
                          "upload_bytes": upload, "total_bytes": rx + tx}}

    return answers.respond(f"history {granularity}", (device, first_text, last_text), compute,
                           not_before=not_before)


@bp.get("/clients/<path:mac>/history")
def client_history(mac: str) -> Response:
    device = normalise_mac(mac)
    if device is None:
        _bad(f"not a MAC address: {mac!r}")
    if not queries.known_device(db.connection(), device):
        abort(404, description=f"no traffic, lease or name recorded for {device}")
    return _history(device)


@bp.get("/wan/history")
def wan_history() -> Response:
    return _history(WAN)


@bp.get("/leases")
def leases() -> Response:
    conn = db.connection()
    if not reads.has_leases(conn):
        raise DataUnavailable(
            f"{db.data_dir() / LEASES_DB}: no such database (has the collector run yet?)")
    settings = reads.read_settings(conn)
    return answers.respond("leases", (), lambda: {"leases": queries.leases(conn, settings)})


@bp.get("/routers")
def routers() -> Response:
    conn = db.connection()
    settings = reads.read_settings(conn)

    def compute() -> dict:
        run = queries.last_run(conn)
        if run is not None:
            run = {k: (v if k.startswith("endpoints") else reads.iso(v, settings.zone))
                   for k, v in run.items()}
        return {"routers": queries.routers(conn, settings), "last_run": run}

    return answers.respond("routers", (), compute)


DEFAULT_ALERTS = 100
MAX_ALERTS = 1000


@bp.get("/alerts")
def alert_log() -> Response:
    """The alerts raised, newest first, and how their delivery to each target went."""
    text = request.args.get("limit", str(DEFAULT_ALERTS))
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_ALERTS:
        _bad(f"limit must be a whole number from 1 to {MAX_ALERTS}, got {text!r}")
    conn = db.connection()
    settings = reads.read_settings(conn)
    now = db.now()
    # The statuses turn from pending to given up with time alone: answers are dated by the hour.
    return answers.respond("alerts", (int(text), int(now // 3600)),
                           lambda: queries.alerts(conn, settings, now, int(text)))


@bp.get("/openapi.json")
def openapi_document() -> Response:
    response = Response(answers.encode_json(openapi.document()), content_type=answers.JSON)
    response.add_etag()  # api.app answers the conditional request
    return response


@root.get("/healthz")
def healthz() -> Response:
    """200 when both databases are readable and a run fetched something recently, else 503."""
    max_age = float(current_app.config["HEALTH_MAX_AGE"])
    body: dict = {"status": "ok", "reason": None, "last_run_at": None, "last_success_at": None,
                  "age_seconds": None, "max_age_seconds": max_age, "endpoints_failed": None}
    try:
        conn = db.connection(require=(STATS_DB, LEASES_DB), optional=())
        settings = reads.read_settings(conn)
        run = queries.last_run(conn)
    except (DataUnavailable, sqlite3.Error) as e:
        body.update(status="unavailable", reason=str(e))
        return _health(body, 503)
    if run is None or run["last_fetched_at"] is None:
        body.update(status="stale", reason="no collector run has fetched anything yet")
        return _health(body, 503)
    age = db.now() - run["last_fetched_at"]
    body.update(last_run_at=reads.iso(run["finished_at"], settings.zone),
                last_success_at=reads.iso(run["last_fetched_at"], settings.zone),
                age_seconds=round(age, 1) + 0.0, endpoints_failed=run["endpoints_failed"])
    if age > max_age:
        body.update(status="stale", reason=(f"the last run that fetched anything finished "
                                            f"{age:.0f}s ago, more than {max_age:.0f}s"))
        return _health(body, 503)
    return _health(body, 200)


def _health(body: dict, status: int) -> Response:
    return Response(answers.encode_json(body), status=status, content_type=answers.JSON,
                    headers={"Cache-Control": "no-store"})


@bp.get("/")
def index() -> Response:
    """Where things are, for a person or a script exploring the API (the dashboard is at /)."""
    links = {
        "dashboard": url_for("dashboard.page"),
        "usage": url_for("v1.usage"),
        "owners": url_for("v1.owners"),
        "periods": url_for("v1.periods"),
        "wan_history": url_for("v1.wan_history"),
        "client_history": "/api/v1/clients/{mac}/history",
        "leases": url_for("v1.leases"),
        "routers": url_for("v1.routers"),
        "alerts": url_for("v1.alert_log"),
        "health": url_for("root.healthz"),
        "openapi": url_for("v1.openapi_document"),
        "api.php": "/api.php?action={clients|wan|leases|combined}",
    }
    return Response(answers.encode_json({"name": "netstat-collect API", "links": links}),
                    content_type=answers.JSON)
