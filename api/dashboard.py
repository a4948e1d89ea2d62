"""The dashboard at `/`: one static page whose script draws the API's answers.

The page (api/templates/dashboard.html) and its script, style and icon (api/static/,
served at /static/) ship in the package: no build step, and nothing is loaded from
another origin, so it works on a LAN without internet access. All data comes from
/api/v1 and /healthz at run time. Every string from the databases (hostnames come
from DHCP, chosen by whoever joins the network) is set as text by the script, never
parsed as HTML; the Content-Security-Policy that api.app puts on every answer forbids
inline script besides.

The page's URLs are relative (`static/...`, `api/v1/...`), so it also works when a
proxy serves the app under a prefix such as `/netstat/`.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_file

bp = Blueprint("dashboard", __name__)

PAGE = Path(__file__).resolve().parent / "templates" / "dashboard.html"


@bp.get("/")
def page() -> Response:
    """The dashboard page, with an ETag and `no-cache` so an upgrade shows at once."""
    return send_file(PAGE, mimetype="text/html", conditional=True)
