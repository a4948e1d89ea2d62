"""The benchmark's smoke version runs end to end, so `python -m bench` cannot rot.

It checks that every section is there with numbers in it, never how fast anything
was: timings belong in bench/RESULTS.md, not in a pass/fail test on a shared machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# The whole benchmark, small: the long tier.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
SECTIONS = {
    "1": "run-once: wall time and CPU",
    "2": "Disk syncs and transactions per run",
    "3": "Peak memory of a run",
    "4": "Process start-up",
    "5": "Database growth over a year",
    "6": "API under load",
}
# "0.123", "1,234", "2.85x", "0.10 (0.09)": a measured value.
NUMBER = re.compile(r"^\d[\d,]*(\.\d+)?x?( \(\d[\d,]*(\.\d+)?\))?$")


def _sections(report: str) -> dict[str, str]:
    """Numbered section -> its text, from the report's `## N. Title` headings."""
    parts = re.split(r"^## ", report, flags=re.M)
    found = {}
    for part in parts[1:]:
        match = re.match(r"(\d)\. ", part)
        if match:
            found[match.group(1)] = part
    return found


def _table_rows(text: str) -> list[list[str]]:
    """Body rows of every markdown table in text (header and separator rows left out)."""
    rows = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("|") or set(line) <= set("|- "):
            continue
        is_header = i + 1 < len(lines) and set(lines[i + 1]) <= set("|- ") and lines[i + 1]
        if not is_header:
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_smoke_bench_reports_every_section_with_numbers(tmp_path):
    out = tmp_path / "results.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETSTAT_")}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out),
         "--work-dir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=240, cwd=REPO, env=env,
    )
    assert proc.returncode == 0, f"python -m bench --smoke exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    report = out.read_text()
    assert report.strip() == proc.stdout.strip(), "the printed table and the written file differ"
    assert "FAILED" not in report, report
    assert "## Machine" in report and "## Targets (issue 6)" in report

    sections = _sections(report)
    assert sorted(sections) == sorted(SECTIONS), f"sections found: {sorted(sections)}"
    for number, title in SECTIONS.items():
        text = sections[number]
        assert text.startswith(f"{number}. {title}"), f"section {number} is titled {text[:60]!r}"
        rows = _table_rows(text)
        numeric = [row for row in rows if any(NUMBER.match(cell) for cell in row[1:])]
        assert numeric, f"section {number} ({title}) has no table row with a measured number"
