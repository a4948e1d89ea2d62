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

from flask import Blueprint, Response, send_file, send_from_directory

bp = Blueprint("dashboard", __name__)

HERE = Path(__file__).resolve().parent
PAGE = HERE / "templates" / "dashboard.html"
STATIC = HERE / "static"

# conditional=False: api.app answers If-None-Match, If-Match and the rest for these, by
# the same rules as for the data (answers.not_modified). No byte ranges: the files are small.


@bp.get("/")
def page() -> Response:
    """The dashboard page, with an ETag and `no-cache` so an upgrade shows at once."""
    return send_file(PAGE, mimetype="text/html", conditional=False)


def static_file(filename: str) -> Response:
    """/static/FILENAME: the page's script, style and icon, with an ETag and `no-cache`."""
    return send_from_directory(STATIC, filename, conditional=False)
