"""collector/export.py: CSV that a spreadsheet opens as data, never as formulas. Pure."""

from __future__ import annotations

import csv
import io
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector import export

# Where a spreadsheet starts a formula (OWASP's list), and full-width forms some read the same.
TRIGGERS = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
PERIOD = {"label": "2026-11", "start": "2026-11-01T00:00:00+00:00", "end": "2026-12-01T00:00:00+00:00"}


def client(mac: str, name: str | None, owner: str | None, hostname: str | None, rx: int, tx: int) -> dict:
    return {"mac": mac, "name": name, "owner": owner, "hostname": hostname, "ip": "10.0.0.2",
            "rx_bytes": rx, "tx_bytes": tx, "download_bytes": tx, "upload_bytes": rx,
            "total_bytes": rx + tx, "last_seen": "2026-11-16T12:30:00+00:00", "routers": ["r1"]}


def parse(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


@pytest.mark.parametrize("text, shown", [
    ("=1+1", "'=1+1"),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("  =1+1", "'  =1+1"),            # white space first does not hide it
    ("\uff1dcmd", "'\uff1dcmd"),      # FULLWIDTH EQUALS SIGN
    ("\t=1", "\\t=1"),                # a tab or CR is shown as an escape: inert text
    ("\r=1", "\\r=1"),
    ("a=1+1", "a=1+1"),               # a formula sign inside is text already
    ("Anna's phone", "Anna's phone"),
    ("\x1b[31mred", "\\x1b[31mred"),  # control characters are shown as escapes
    ("a\u202eb", "a\\u202eb"),
    ("two\nlines", "two\\nlines"),
    ("", ""),
])
def test_text_cells_are_inert(text, shown):
    assert export.cell(text) == shown


def test_numbers_and_nulls():
    assert (export.cell(2**53 - 1), export.cell(0), export.cell(None)) == (2**53 - 1, 0, "")


def test_usage_csv_has_a_header_and_one_row_per_device_with_exact_bytes():
    usage = {"period": PERIOD, "clients": [client("02:00:00:00:00:01", "+cmd", "Anna", "=HYPERLINK(1)",
                                                  2**53 - 2, 1),
                                           client("02:00:00:00:00:02", None, None, None, 0, 0)]}
    text = export.usage_csv(usage)
    assert text.splitlines()[0] == ",".join(export.USAGE_COLUMNS)
    assert text.endswith("\r\n") and text.count("\r\n") == 3
    rows = parse(text)
    assert rows[0] == {"period": "2026-11", "mac": "02:00:00:00:00:01", "name": "'+cmd", "owner": "Anna",
                       "hostname": "'=HYPERLINK(1)", "ip": "10.0.0.2", "download_bytes": "1",
                       "upload_bytes": str(2**53 - 2), "total_bytes": str(2**53 - 1),
                       "rx_bytes": str(2**53 - 2), "tx_bytes": "1", "last_seen": "2026-11-16T12:30:00+00:00"}
    assert (rows[1]["name"], rows[1]["owner"], rows[1]["hostname"]) == ("", "", "")


def test_owners_csv_has_one_row_per_owner_and_the_macs():
    owners = {"period": PERIOD, "owners": [
        {"owner": "-Ben", "devices": 2, "macs": ["02:00:00:00:00:01", "02:00:00:00:00:02"], "rx_bytes": 3,
         "tx_bytes": 4, "download_bytes": 4, "upload_bytes": 3, "total_bytes": 7},
        {"owner": None, "devices": 1, "macs": ["02:00:00:00:00:03"], "rx_bytes": 1, "tx_bytes": 0,
         "download_bytes": 0, "upload_bytes": 1, "total_bytes": 1}]}
    rows = parse(export.owners_csv(owners))
    assert [list(r.values()) for r in rows] == [
        ["2026-11", "'-Ben", "2", "4", "3", "7", "3", "4", "02:00:00:00:00:01 02:00:00:00:00:02"],
        ["2026-11", "", "1", "0", "1", "1", "1", "0", "02:00:00:00:00:03"]]
    assert list(rows[0]) == list(export.OWNER_COLUMNS)


def test_download_names():
    assert export.filename("owners", "2026-11") == "netstat-owners-2026-11.csv"


@given(st.lists(st.tuples(st.text(max_size=40), st.one_of(st.none(), st.text(max_size=20)),
                          st.integers(0, 2**53 - 1), st.integers(0, 2**53 - 1)), max_size=8))
def test_any_names_give_one_line_per_device_inert_cells_and_exact_numbers(devices):
    usage = {"period": PERIOD, "clients": [
        client(f"02:00:00:00:00:{i:02x}", name, owner, name, rx, tx)
        for i, (name, owner, rx, tx) in enumerate(devices)]}
    text = export.usage_csv(usage)
    # Control characters are escaped: every record is one line, however the names look.
    assert len(text.split("\r\n")) == len(devices) + 2
    rows = parse(text)
    assert len(rows) == len(devices)
    for row, (name, owner, rx, tx) in zip(rows, devices, strict=True):
        assert (int(row["upload_bytes"]), int(row["download_bytes"]), int(row["total_bytes"])) == (
            rx, tx, rx + tx)
        for value, original in ((row["name"], name), (row["hostname"], name), (row["owner"], owner)):
            assert value[:1] not in TRIGGERS and value.lstrip()[:1] not in TRIGGERS
            plain = original is not None and not any(
                unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs") for ch in original)
            if plain and original.lstrip()[:1] not in TRIGGERS:
                assert value == original  # nothing to neutralise: kept exactly
            elif plain:
                assert value == "'" + original
