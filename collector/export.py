"""A period's usage and owners as CSV, for spreadsheets: `report --format csv` and the API's
`?format=csv`. Pure: the answers of collector.reads in, text out.

Names, owners and hostnames are chosen by people (the configuration) or by whoever joins
the network (DHCP), and a spreadsheet runs a cell that starts like a formula. So every
text cell is made inert, after OWASP's "CSV Injection" page: control and format
characters (tab and carriage return among them) are shown as escapes (`\\x1b`, `\\t`), as
`report`'s table shows them, and a cell that then starts with `=`, `+`, `-` or `@`, or
with one of them after white space or in its full-width form (which some spreadsheets
read as formulas too), gets a `'` in front. So a CSV printed to a terminal cannot move its
cursor either, and every record is one line. Byte counts are exact integers.
"""

from __future__ import annotations

import csv
import io

from collector.text import printable

# How a formula starts (OWASP), and their full-width forms. OWASP's tab and carriage return
# never start a cell here: printable() has shown them as `\\t` and `\\r`.
_FORMULA_STARTS = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")

USAGE_COLUMNS = ("period", "mac", "name", "owner", "hostname", "ip", "download_bytes", "upload_bytes",
                 "total_bytes", "rx_bytes", "tx_bytes", "last_seen")
OWNER_COLUMNS = ("period", "owner", "devices", "download_bytes", "upload_bytes", "total_bytes",
                 "rx_bytes", "tx_bytes", "macs")


def cell(value: str | int | None) -> str | int:
    """One CSV cell: an integer as it is, None as an empty cell, text escaped and inert."""
    if value is None:
        return ""
    if isinstance(value, int):
        return value
    text = printable(value)
    return "'" + text if text.lstrip()[:1] in _FORMULA_STARTS else text


def _csv(columns: tuple[str, ...], rows) -> str:
    out = io.StringIO()
    # RFC 4180: CRLF between records, quotes where a cell needs them.
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows([cell(row[c]) for c in columns] for row in rows)
    return out.getvalue()


def usage_csv(usage: dict) -> str:
    """One row per device of a reads.usage() answer, in its order (biggest total first)."""
    label = usage["period"]["label"]
    return _csv(USAGE_COLUMNS, ({**c, "period": label} for c in usage["clients"]))


def owners_csv(owners: dict) -> str:
    """One row per owner of a reads.owners() answer; devices without an owner have an empty
    owner cell. The MACs are separated by spaces."""
    label = owners["period"]["label"]
    return _csv(OWNER_COLUMNS, ({**o, "period": label, "macs": " ".join(o["macs"])}
                                for o in owners["owners"]))


def filename(kind: str, period_label: str) -> str:
    """The name a download is saved as: `netstat-usage-2026-11.csv`."""
    return f"netstat-{kind}-{period_label}.csv"
