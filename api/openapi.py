"""The OpenAPI 3 document of every route, served at /api/v1/openapi.json.

Kept beside the routes by hand; tests check that the two list the same paths and
run schemathesis against a real server from this document.
"""

from __future__ import annotations

from functools import lru_cache

# The very expressions the read side parses `?period=`, `?from=` and `?to=` with.
from collector.alerts import KINDS
from collector.endpoints import ENDPOINT_NAMES
from collector.periods import DAY_PATTERN, MONTH_PATTERN

MAC_PATTERN = "^([0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{2}(-[0-9A-Fa-f]{2}){5})$"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **extra) -> dict:
    return {"type": kind, "nullable": True, **extra}


_INT = {"type": "integer", "minimum": 0}
_TIME = {"type": "string", "description": "ISO 8601 with the zone's offset"}
_NULL_TIME = _nullable("string", description="ISO 8601 with the zone's offset, or null")


def _object(properties: dict, required: list[str] | None = None) -> dict:
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else required}


_CACHE_HEADERS = {
    "ETag": {"description": "Changes when the collector commits", "schema": {"type": "string"}},
    "Cache-Control": {"schema": {"type": "string"}},
}


def _json(schema: dict, description: str, headers: dict | None = None) -> dict:
    response = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _error(description: str) -> dict:
    return _json(_ref("Error"), description)


_NOT_MODIFIED = {"description": "Not modified since the ETag or date the client sent",
                 "headers": _CACHE_HEADERS}
_UNAVAILABLE = _error("A database is missing or unreadable; the message names it")
_PRECONDITION_FAILED = _error("If-Match matches no current ETag (`*` always does), or, without "
                              "If-Match, the answer changed after If-Unmodified-Since")


def _get(summary: str, ok: dict, *, parameters: list | None = None, errors: dict | None = None,
         cached: bool = True, reads_data: bool = True, tags: list[str] | None = None) -> dict:
    responses = {"200": ok}
    if cached:
        responses["304"] = _NOT_MODIFIED
    responses["412"] = _PRECONDITION_FAILED
    if reads_data:
        responses["503"] = _UNAVAILABLE
    responses.update(errors or {})
    operation = {"summary": summary, "responses": responses, "tags": tags or ["v1"]}
    if parameters:
        operation["parameters"] = parameters
    return {"get": operation}


_PERIOD_PARAMETERS = [
    {"name": "period", "in": "query", "required": False,
     "description": "YYYY-MM, the month the period starts in; default: the current period",
     "schema": {"type": "string", "pattern": MONTH_PATTERN}},
    {"name": "format", "in": "query", "required": False,
     "description": "json, or csv: a download (`Content-Disposition: attachment`), one row per "
                    "item with a header row; text cells that a spreadsheet would run as a formula "
                    "start with `'`",
     "schema": {"type": "string", "enum": ["json", "csv"], "default": "json"}},
]


def _json_or_csv(schema: dict, description: str) -> dict:
    response = _json(schema, description, {
        **_CACHE_HEADERS,
        "Content-Disposition": {"description": "With format=csv: "
                                               "`attachment; filename=\"netstat-KIND-YYYY-MM.csv\"`",
                                "schema": {"type": "string"}}})
    response["content"]["text/csv"] = {"schema": {"type": "string"}}
    return response


def _history_parameters(path_mac: bool) -> list[dict]:
    params = [
        {"name": "granularity", "in": "query", "required": False,
         "description": "day: one point per local day; month: one point per billing period",
         "schema": {"type": "string", "enum": ["day", "month"], "default": "day"}},
        {"name": "from", "in": "query", "required": False,
         "description": "First day (YYYY-MM-DD) or period (YYYY-MM), by granularity. "
                        "Default: 30 days or 12 periods before `to`",
         "schema": {"type": "string", "anyOf": [{"pattern": DAY_PATTERN},
                                                {"pattern": MONTH_PATTERN}]}},
        {"name": "to", "in": "query", "required": False,
         "description": "Last day or period, inclusive. Default: today or the current period. "
                        "from <= to; at most 366 days or 120 periods",
         "schema": {"type": "string", "anyOf": [{"pattern": DAY_PATTERN},
                                                {"pattern": MONTH_PATTERN}]}},
    ]
    if path_mac:
        params.insert(0, {"name": "mac", "in": "path", "required": True,
                          "description": "aa:bb:cc:dd:ee:ff or AA-BB-CC-DD-EE-FF",
                          "schema": {"type": "string", "pattern": MAC_PATTERN}})
    return params


def _schemas() -> dict:
    totals = {"rx_bytes": _INT, "tx_bytes": _INT, "download_bytes": _INT, "upload_bytes": _INT,
              "total_bytes": _INT}
    return {
        "Error": _object({"error": {"type": "string"}, "status": {"type": "integer"}}),
        "Totals": _object(totals),
        "Period": _object({"label": {"type": "string", "pattern": MONTH_PATTERN},
                           "start": _TIME, "end": _TIME}),
        "Client": _object({
            "mac": {"type": "string"},
            "name": _nullable("string", description="the name in routers.json's `devices`, or null"),
            "owner": _nullable("string", description="the owner in routers.json's `devices`, or null"),
            "hostname": _nullable("string"), "ip": _nullable("string"),
            **totals, "last_seen": _NULL_TIME,
            "routers": {"type": "array", "items": {"type": "string"}},
        }),
        "WanTotals": _object({
            **totals,
            "cap_bytes": _nullable("integer", minimum=0,
                                   description="settings.monthly_cap_gib in bytes (the ISP's "
                                               "allowance per period); null when not set"),
            "forecast_bytes": _nullable("integer", minimum=0,
                                        description="the period's total at its pace so far, as of "
                                                    "the last run; null when too early to tell or "
                                                    "the period is over"),
            "forecast_note": {"type": "string",
                              "description": "how the forecast was made, or why there is none"},
        }),
        "Usage": _object({
            "period": _ref("Period"), "wan": _ref("WanTotals"),
            "clients": {"type": "array", "items": _ref("Client")},
            "updated_at": _NULL_TIME,
        }),
        "Owner": _object({
            "owner": _nullable("string", description="null: every device without an owner"),
            "devices": _INT, "macs": {"type": "array", "items": {"type": "string"}}, **totals,
        }),
        "Owners": _object({
            "period": _ref("Period"), "owners": {"type": "array", "items": _ref("Owner")},
            "total": _ref("Totals"), "updated_at": _NULL_TIME,
        }),
        "Periods": _object({"current": {"type": "string", "pattern": MONTH_PATTERN},
                            "periods": {"type": "array", "items": _ref("Period")}}),
        "Point": _object({"label": {"type": "string"}, "start": _TIME, "end": _TIME, **totals}),
        "History": _object({
            "device": {"type": "string"},
            "granularity": {"type": "string", "enum": ["day", "month"]},
            "from": {"type": "string"}, "to": {"type": "string"},
            "points": {"type": "array", "items": _ref("Point")},
            "total": _ref("Totals"),
        }),
        "Lease": _object({
            "mac": _nullable("string"), "ip": _nullable("string"), "hostname": _nullable("string"),
            "client_id": _nullable("string"),
            "expires_at": _nullable("string", description="null: the lease never expires"),
            "router": _nullable("string"), "updated_at": _NULL_TIME,
        }),
        "Endpoint": _object({
            "endpoint": {"type": "string", "enum": list(ENDPOINT_NAMES)},
            "ok": {"type": "boolean", "description": "the last attempt succeeded"},
            "last_ok_at": _NULL_TIME, "last_attempt_at": _NULL_TIME,
            "last_error": _nullable("string"), "last_error_at": _NULL_TIME,
            "items": _nullable("integer"), "rejected": _nullable("integer"),
        }),
        "Router": _object({
            "router": {"type": "string"}, "ok": {"type": "boolean"},
            "uptime_seconds": _nullable("integer"), "uptime_sampled_at": _NULL_TIME,
            "booted_at": _NULL_TIME, "endpoints": {"type": "array", "items": _ref("Endpoint")},
        }),
        "Routers": _object({
            "routers": {"type": "array", "items": _ref("Router")},
            "last_run": {**_object({
                "started_at": _TIME, "finished_at": _TIME, "endpoints_ok": _INT,
                "endpoints_failed": _INT, "last_fetched_at": _NULL_TIME}), "nullable": True},
        }),
        "Delivery": _object({
            "target": {"type": "string", "description": "the target's kind and line: `mailto #1`"},
            "status": {"type": "string", "enum": ["sent", "pending", "given_up"]},
            "sent_at": _NULL_TIME, "attempts": _INT, "last_error": _nullable("string"),
            "last_attempt_at": _NULL_TIME,
        }),
        "Alert": _object({
            "kind": {"type": "string", "enum": list(KINDS)},
            "period": {"type": "string", "description": "the billing period, or an outage's start"},
            "subject": {"type": "string"}, "threshold": {"type": "string"}, "raised_at": _TIME,
            "title": {"type": "string"}, "body": {"type": "string"},
            "deliveries": {"type": "array", "items": _ref("Delivery")},
        }),
        "Target": _object({
            "target": {"type": "string"}, "sent": _INT, "pending": _INT, "given_up": _INT,
            "last_error": _nullable("string"), "last_attempt_at": _NULL_TIME,
        }),
        "Alerts": _object({"alerts": {"type": "array", "items": _ref("Alert")},
                           "targets": {"type": "array", "items": _ref("Target")}}),
        "Health": _object({
            "status": {"type": "string", "enum": ["ok", "stale", "unavailable"]},
            "reason": _nullable("string"), "last_run_at": _NULL_TIME,
            "last_success_at": _NULL_TIME, "age_seconds": _nullable("number"),
            "max_age_seconds": {"type": "number"}, "endpoints_failed": _nullable("integer"),
        }),
        "PhpError": _object({"error": {"type": "string"}}),
        "PhpAnswer": {"anyOf": [
            _object({"data": {"type": "array", "items": {"type": "object"}}}),
            _object({
                "wan_stats": _object({"rx_bytes": _nullable("integer"),
                                      "tx_bytes": _nullable("integer"),
                                      "last_update": _nullable("string")}),
                "client_stats": {"type": "array", "items": _object({
                    "rx_bytes": _nullable("integer"), "tx_bytes": _nullable("integer"),
                    "hostname": _nullable("string")})},
            }),
        ]},
        "Index": _object({"name": {"type": "string"}, "links": {"type": "object"}}),
    }


@lru_cache(maxsize=1)
def document() -> dict:
    """The OpenAPI 3.0 document (built once per process)."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "netstat-collect API",
            "version": "1",
            "description": "Read-only per-device and WAN traffic totals collected from OpenWrt "
                           "routers. Answers carry an ETag and Last-Modified; they change only "
                           "when the collector commits a run. Only GET and HEAD exist (any other "
                           "method is a 405), and only for the Host names the server is meant to "
                           "be reached by (any other Host is a 400).",
        },
        "paths": {
            "/api/v1/usage": _get(
                "A billing period's WAN total and per-device totals, biggest first",
                _json_or_csv(_ref("Usage"), "The period's totals (zeros when it has no data); "
                                            "as CSV, one row per device (no WAN)"),
                parameters=_PERIOD_PARAMETERS,
                errors={"400": _error("Bad period or format")},
            ),
            "/api/v1/owners": _get(
                "A billing period's device totals per owner (devices without one as owner null), "
                "biggest first",
                _json_or_csv(_ref("Owners"), "The period's totals per owner; they add up to every "
                                             "device's total (the WAN is no one's); as CSV, one "
                                             "row per owner"),
                parameters=_PERIOD_PARAMETERS,
                errors={"400": _error("Bad period or format")},
            ),
            "/api/v1/periods": _get(
                "The periods that have data, newest first",
                _json(_ref("Periods"), "Periods with data", _CACHE_HEADERS),
            ),
            "/api/v1/clients/{mac}/history": _get(
                "A device's traffic per day or per billing period, summed over routers "
                "(download = tx, upload = rx)",
                _json(_ref("History"), "The series, zeros where there was no traffic",
                      _CACHE_HEADERS),
                parameters=_history_parameters(path_mac=True),
                errors={"400": _error("Bad MAC, date, period, granularity or range"),
                        "404": _error("Nothing is recorded about this MAC")},
            ),
            "/api/v1/wan/history": _get(
                "The WAN's traffic per day or per billing period, summed over routers "
                "(download = rx, upload = tx)",
                _json(_ref("History"), "The series, zeros where there was no traffic",
                      _CACHE_HEADERS),
                parameters=_history_parameters(path_mac=False),
                errors={"400": _error("Bad date, period, granularity or range")},
            ),
            "/api/v1/leases": _get(
                "The current DHCP leases of every router",
                _json(_object({"leases": {"type": "array", "items": _ref("Lease")}}),
                      "Leases by router and IP", _CACHE_HEADERS),
            ),
            "/api/v1/routers": _get(
                "Per router and endpoint: the last success, the last error and when",
                _json(_ref("Routers"), "Router health", _CACHE_HEADERS),
            ),
            "/api/v1/alerts": _get(
                "The alerts raised, newest first, and their delivery to each notification target",
                _json(_ref("Alerts"), "Alerts and deliveries", _CACHE_HEADERS),
                parameters=[{"name": "limit", "in": "query", "required": False,
                             "description": "How many alerts, newest first (default 100)",
                             "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
                errors={"400": _error("Bad limit")},
            ),
            "/api/v1/openapi.json": _get(
                "This document", _json({"type": "object"}, "OpenAPI 3 document"),
                reads_data=False, tags=["meta"],
            ),
            "/healthz": _get(
                "200 when both databases are readable and a run fetched data recently",
                _json(_ref("Health"), "Healthy"), cached=False, reads_data=False, tags=["meta"],
                errors={"503": _json(_ref("Health"), "Unhealthy; `reason` says why")},
            ),
            "/api/v1/": _get("Links to everything here", _json(_ref("Index"), "Links"),
                             cached=False, reads_data=False, tags=["meta"]),
            "/metrics": _get(
                "Prometheus metrics: per device and WAN byte counters, the current period, "
                "collector health (docs/api.md lists every metric)",
                {"description": "Prometheus text exposition format 0.0.4",
                 "content": {"text/plain": {"schema": {"type": "string"}}},
                 "headers": _CACHE_HEADERS},
                errors={"503": {"description": "A database is missing, unreadable or not migrated: "
                                               "`netstat_up 0`, the reason in a comment",
                                "content": {"text/plain": {"schema": {"type": "string"}}}}},
                reads_data=False, tags=["metrics"],
            ),
            "/": _get(
                "The dashboard: an HTML page whose script draws these answers",
                {"description": "The page (its script and style are under /static/)",
                 "content": {"text/html": {"schema": {"type": "string"}}},
                 "headers": {"Content-Security-Policy": {"schema": {"type": "string"}}}},
                reads_data=False, tags=["dashboard"],
            ),
            "/api.php": _get(
                "The seed's api.php, unchanged: same status codes and JSON",
                _json(_ref("PhpAnswer"), "clients, wan and leases: {data: [...]}; "
                                         "combined: {wan_stats, client_stats}", _CACHE_HEADERS),
                parameters=[{"name": "action", "in": "query", "required": True,
                             "schema": {"type": "string",
                                        "enum": ["clients", "wan", "leases", "combined"]}}],
                errors={"400": _json(_ref("PhpError"), "No or unknown action"),
                        "500": _json(_ref("PhpError"), "A database is unavailable")},
                reads_data=False, tags=["compatibility"],
            ),
        },
        "components": {"schemas": _schemas()},
    }
