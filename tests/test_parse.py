"""The three endpoint parsers: everything routers send, good and bad."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.errors import ParseError
from collector.parse import (
    Lease,
    StationSample,
    WanSample,
    normalise_mac,
    parse_ap_stats,
    parse_dhcp_leases,
    parse_wan_stats,
)


def test_ap_stats_three_and_four_fields_with_crlf():
    parsed = parse_ap_stats(b"AA:BB:CC:DD:EE:01 100 200\r\naa-bb-cc-dd-ee-02 5 6 77\r\n")
    assert parsed.items == [
        StationSample("aa:bb:cc:dd:ee:01", 100, 200, None),
        StationSample("aa:bb:cc:dd:ee:02", 5, 6, 77),
    ]
    assert parsed.rejected == []


@pytest.mark.parametrize(
    "line, reason",
    [
        ("aa:bb:cc:dd:ee:01 100", "expected 3 or 4 fields, got 2"),
        ("aa:bb:cc:dd:ee:01 1 2 3 4", "expected 3 or 4 fields, got 5"),
        ("aa:bb:cc:dd:ee 1 2", "bad MAC address"),
        ("zz:bb:cc:dd:ee:01 1 2", "bad MAC address"),
        ("aa:bb:cc:dd:ee:01 -1 2", "counters must be non-negative integers"),
        ("aa:bb:cc:dd:ee:01 1 2.5", "counters must be non-negative integers"),
        ("aa:bb:cc:dd:ee:01 1 x", "counters must be non-negative integers"),
        ("aa:bb:cc:dd:ee:01 1 99999999999999999999", "counters must be non-negative integers"),
        ("aa:bb:cc:dd:ee:01 1 2 -5", "counters must be non-negative integers"),
        ("aa:bb:cc:\x00dd:ee:01 1 2", "NUL byte in line"),
    ],
)
def test_ap_stats_malformed_lines_are_rejected_with_reason(line, reason):
    parsed = parse_ap_stats(f"aa:bb:cc:dd:ee:09 1 1\n{line}\n")
    assert [s.mac for s in parsed.items] == ["aa:bb:cc:dd:ee:09"]
    assert len(parsed.rejected) == 1
    assert parsed.rejected[0].reason == reason
    assert parsed.rejected[0].line_no == 2


def test_ap_stats_duplicate_station_keeps_first():
    parsed = parse_ap_stats("aa:bb:cc:dd:ee:01 1 2\nAA:BB:CC:DD:EE:01 3 4\n")
    assert parsed.items == [StationSample("aa:bb:cc:dd:ee:01", 1, 2)]
    assert parsed.rejected[0].reason == "station listed twice"


def test_ap_stats_empty_body_is_no_stations():
    parsed = parse_ap_stats(b"")
    assert parsed.items == [] and parsed.rejected == []


def test_ap_stats_non_utf8_bytes_are_rejected_not_fatal():
    parsed = parse_ap_stats(b"\xff\xfe\xfd 1 2\naa:bb:cc:dd:ee:01 1 2\n")
    assert len(parsed.items) == 1
    assert parsed.rejected[0].reason == "bad MAC address"


def test_wan_with_and_without_uptime():
    assert parse_wan_stats("wan: 10 20\n").items == [WanSample(10, 20, None)]
    assert parse_wan_stats("wan: 10 20\r\nuptime: 3600.42\r\n").items == [WanSample(10, 20, 3600)]


def test_wan_without_wan_line_is_a_parse_error():
    with pytest.raises(ParseError, match="no valid `wan: RX_BYTES TX_BYTES` line"):
        parse_wan_stats("uptime: 5\n")
    with pytest.raises(ParseError):
        parse_wan_stats("wan: 1 -2\n")


def test_wan_extra_lines_are_reported():
    parsed = parse_wan_stats("hello\nwan: 1 2\nwan: 3 4\nuptime: x\n")
    assert parsed.items == [WanSample(1, 2, None)]
    assert [r.reason for r in parsed.rejected] == [
        "unknown line", "second `wan:` line", "expected `uptime: SECONDS`"]


def test_dhcp_leases_stars_duid_ipv6_and_infinite():
    body = (
        "1732800000 AA:BB:CC:DD:EE:01 192.168.1.10 laptop 01:aa:bb:cc:dd:ee:01\n"
        "0 aa:bb:cc:dd:ee:02 192.168.1.11 * *\n"
        "1732800000 aa:bb:cc:dd:ee:03 192.168.1.12 phone *\n"
        "duid 00:01:00:01:2c:4f:6e:1a:52:54:00:12:34:56\n"
        "1732800000 123456789 fd00::10 laptop6 00:01:00:01:2c:4f:6e:1a\n"
    )
    parsed = parse_dhcp_leases(body)
    assert parsed.items == [
        Lease("aa:bb:cc:dd:ee:01", "192.168.1.10", "laptop", "01:aa:bb:cc:dd:ee:01", 1732800000),
        Lease("aa:bb:cc:dd:ee:02", "192.168.1.11", "", "", 0),
        Lease("aa:bb:cc:dd:ee:03", "192.168.1.12", "phone", "", 1732800000),
    ]
    assert parsed.ignored == 2
    assert parsed.rejected == []


@pytest.mark.parametrize(
    "line, reason",
    [
        ("1 aa:bb:cc:dd:ee:01 192.168.1.300 h *", "bad IPv4 address"),
        ("x aa:bb:cc:dd:ee:01 192.168.1.3 h *", "expiry must be a non-negative integer"),
        ("1 aa:bb:cc:dd:ee:01 192.168.1.3 h", "expected 5 fields, got 4"),
        ("1 nomac 192.168.1.3 h *", "bad MAC address"),
    ],
)
def test_dhcp_malformed_lines(line, reason):
    parsed = parse_dhcp_leases(line + "\n")
    assert parsed.items == []
    assert parsed.rejected[0].reason == reason


def test_hostile_hostname_passes_through_unchanged():
    name = "<img src=x onerror=alert(1)>\u202e\"'  two  spaces" + "x" * 10_000
    parsed = parse_dhcp_leases(f"0 aa:bb:cc:dd:ee:01 10.0.0.2 {name} *\n")
    assert parsed.items[0].hostname == name


def test_line_separators_inside_a_hostname_do_not_split_lines():
    parsed = parse_dhcp_leases("0 aa:bb:cc:dd:ee:01 10.0.0.2 a\u2028b *\n")
    assert parsed.items[0].hostname == "a\u2028b"


def test_normalise_mac():
    assert normalise_mac("AA-BB-CC-DD-EE-FF") == "aa:bb:cc:dd:ee:ff"
    assert normalise_mac("aa:bb-cc:dd:ee:ff") is None  # mixed separators
    assert normalise_mac("aabbccddeeff") is None


@given(st.binary(max_size=2000))
def test_parsers_never_crash_on_any_bytes(body):
    for parse in (parse_ap_stats, parse_dhcp_leases):
        parsed = parse(body)
        assert all(item.mac == normalise_mac(item.mac) for item in parsed.items)
    try:
        parse_wan_stats(body)
    except ParseError:
        pass


@given(st.lists(st.tuples(st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1),
                          st.one_of(st.none(), st.integers(0, 10**7))), max_size=20))
def test_ap_stats_round_trip(rows):
    lines = []
    for i, (rx, tx, conn) in enumerate(rows):
        extra = f" {conn}" if conn is not None else ""
        lines.append(f"02:00:00:00:{i >> 8:02x}:{i & 0xff:02x} {rx} {tx}{extra}")
    parsed = parse_ap_stats("\n".join(lines))
    assert [(s.rx_bytes, s.tx_bytes, s.connected_seconds) for s in parsed.items] == rows


@given(st.binary(max_size=3000), st.lists(st.integers(1, 50), max_size=40))
def test_chunked_bodies_parse_exactly_like_whole_ones(body, cuts):
    """Fetched answers arrive as chunks; a line may be cut anywhere, even inside UTF-8."""
    chunks, start = [], 0
    for size in cuts:
        chunks.append(body[start:start + size])
        start += size
    chunks.append(body[start:])
    for parse in (parse_ap_stats, parse_dhcp_leases):
        whole, split = parse(body), parse(chunks)
        assert (whole.items, whole.rejected, whole.ignored) == (split.items, split.rejected, split.ignored)


def test_chunk_boundary_inside_a_line():
    parsed = parse_ap_stats([b"aa:bb:cc:dd:e", b"e:01 1", b"0 20\naa:bb:cc:dd:ee:02 3 4"])
    assert parsed.items == [StationSample("aa:bb:cc:dd:ee:01", 10, 20),
                            StationSample("aa:bb:cc:dd:ee:02", 3, 4)]


# --- The formats are exactly what the README says (review item 12, items 1 and 3) -------------


@pytest.mark.parametrize("space", ["\u00a0", "\u2028", "\u3000", "\u2003", "\x0b", "\x0c"])
def test_only_ascii_space_and_tab_separate_station_fields(space):
    parsed = parse_ap_stats(f"aa:bb:cc:dd:ee:01{space}1 2\naa:bb:cc:dd:ee:02\t1 2\n")
    assert [s.mac for s in parsed.items] == ["aa:bb:cc:dd:ee:02"]
    assert parsed.rejected_count == 1


def test_only_ascii_space_and_tab_separate_wan_fields():
    with pytest.raises(ParseError):
        parse_wan_stats("wan:\u00a010 20\n")


def test_repeated_keys_follow_one_rule_the_first_wins():
    parsed = parse_wan_stats("wan: 1 2\nuptime: 100\nuptime: 5\nwan: 3 4\n")
    assert parsed.items == [WanSample(1, 2, 100)]
    assert [r.reason for r in parsed.rejected] == ["second `uptime:` line", "second `wan:` line"]


@pytest.mark.parametrize("text", ["123.45.67", "123.", ".5", "12a", "\u0661\u0662", "+5", "1e3"])
def test_uptime_must_be_seconds_with_an_optional_fraction(text):
    parsed = parse_wan_stats(f"wan: 1 2\nuptime: {text}\n")
    assert parsed.items == [WanSample(1, 2, None)]
    assert parsed.rejected[0].reason == "expected `uptime: SECONDS`"


@pytest.mark.parametrize("text", ["\u00a0aa:bb:cc:dd:ee:01", "aa:bb:cc:dd:ee:01\u3000",
                                  "aa:bb:cc:dd:ee:01\n", "aa:bb:cc:dd:ee:0\u0661"])
def test_a_mac_with_anything_but_ascii_blanks_around_it_is_no_mac(text):
    assert normalise_mac(text) is None
    assert normalise_mac(" aa:bb:cc:dd:ee:01\t") == "aa:bb:cc:dd:ee:01"


def test_lone_cr_ends_a_line_and_a_leading_bom_is_skipped():
    body = b"\xef\xbb\xbfaa:bb:cc:dd:ee:01 1 2 3\raa:bb:cc:dd:ee:02 4 5 6\r"
    parsed = parse_ap_stats(body)
    assert [s.mac for s in parsed.items] == ["aa:bb:cc:dd:ee:01", "aa:bb:cc:dd:ee:02"]
    assert parsed.complete
    # The same split across chunks as the fetcher hands them over.
    assert parse_ap_stats([body[:2], body[2:30], body[30:]]).items == parsed.items
    wan = parse_wan_stats("\ufeffwan: 1 2\ruptime: 9\r")
    assert wan.items == [WanSample(1, 2, 9)] and wan.rejected == []


def test_a_bom_anywhere_but_the_start_is_part_of_its_line():
    parsed = parse_ap_stats("aa:bb:cc:dd:ee:01 1 2\n\ufeffaa:bb:cc:dd:ee:02 1 2\n")
    assert [s.mac for s in parsed.items] == ["aa:bb:cc:dd:ee:01"]
    assert not parsed.complete and parsed.rejected[0].line_no == 2


def test_rejected_lines_are_counted_all_but_kept_as_a_few_examples():
    parsed = parse_ap_stats("x\n" * 10_000 + "aa:bb:cc:dd:ee:01 1 2\n")
    assert parsed.rejected_count == 10_000
    assert 0 < len(parsed.rejected) <= 5
    assert parsed.rejected[0].line_no == 1 and len(parsed.items) == 1
