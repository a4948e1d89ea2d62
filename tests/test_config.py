"""routers.json: the seed's format, the settings format, and errors that say what and where."""

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.config import load_config, parse_config, strip_comments
from collector.errors import ConfigError

SEED_EXAMPLE = """{
    "192.168.1.1": {
        "ap_stats": "http://192.168.1.1/cgi-bin/totalwifi.cgi",
        "wan_stats": "http://192.168.1.1/cgi-bin/wan.cgi",
        "dhcp_leases": "http://192.168.1.1/cgi-bin/dhcp.cgi"
    },
    "192.168.1.2": {
        "ap_stats": "http://192.168.1.2/cgi-bin/totalwifi.cgi",
        "wan_stats": "",       // The script will skip fetching for empty URLs
        "dhcp_leases": ""
    }
}
"""


def test_seed_format_with_comments_and_empty_urls(tmp_path):
    path = tmp_path / "routers.json"
    path.write_text(SEED_EXAMPLE)
    config = load_config(path)
    assert [r.key for r in config.routers] == ["192.168.1.1", "192.168.1.2"]
    assert set(config.routers[0].urls) == {"ap_stats", "wan_stats", "dhcp_leases"}
    assert config.routers[1].urls == {"ap_stats": "http://192.168.1.2/cgi-bin/totalwifi.cgi"}
    assert config.settings.month_start_day == 1
    assert config.routers[0].counter_bits == 64
    assert config.warnings == ()


def test_shipped_example_config_is_the_seed_format():
    config = load_config(Path(__file__).resolve().parent.parent / "config" / "routers.json")
    assert [r.key for r in config.routers] == ["192.168.1.1", "192.168.1.2"]


def test_comment_markers_inside_strings_are_kept():
    assert strip_comments('{"a": "http://x//y"} // c') == '{"a": "http://x//y"}     '


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(alphabet='/"\\ab\n\t'),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(alphabet='/"\\ab'), inner, max_size=3), max_leaves=8),
       st.lists(st.text(alphabet='/"\\ab {}'), max_size=4))
def test_comments_anywhere_between_tokens_leave_the_document_and_its_positions(document, comments):
    """Comments after every line of an indented document: the same document, every line and
    column of what is not a comment in place."""
    lines = json.dumps(document, indent=1).split("\n")
    commented = [line + (f" //{comments[i % len(comments)]}" if comments else "")
                 for i, line in enumerate(lines)]
    text = "\n".join(commented)
    stripped = strip_comments(text)
    assert json.loads(stripped) == document
    assert [len(line) for line in stripped.split("\n")] == [len(line) for line in commented]
    assert [line[:len(original)] for line, original in zip(stripped.split("\n"), lines, strict=True)] == lines


def test_settings_format_and_per_router_options():
    config = parse_config({
        "settings": {"month_start_day": 15, "timezone": "Europe/Berlin", "timeout_seconds": 3,
                     "max_rate_mbps": 1000},
        "routers": {"main": {"ap_stats": "http://127.0.0.1:1/a", "timeout": 2, "counter_bits": 32,
                             "name": "Living room"}},
    })
    assert config.settings.month_start_day == 15
    assert config.settings.zone().key == "Europe/Berlin"
    assert config.settings.max_rate_mbps == 1000
    router = config.routers[0]
    assert (router.key, router.name, router.timeout, router.counter_bits) == ("main", "Living room", 2, 32)


def test_router_timeout_defaults_to_the_setting():
    config = parse_config({"settings": {"timeout_seconds": 4},
                           "routers": {"r": {"wan_stats": "http://127.0.0.1:1/w"}}})
    assert config.routers[0].timeout == 4


def test_unknown_keys_are_warned_about():
    config = parse_config({"settings": {"month_start_dya": 3},
                           "routers": {"r": {"ap_stat": "http://127.0.0.1:1/"}}}, "c.json")
    assert config.warnings == (
        "c.json: settings: unknown key 'month_start_dya' ignored",
        "c.json: routers.r: unknown key 'ap_stat' ignored",
    )


# json's own words and columns differ between Python versions (3.13 words a trailing comma
# differently and points at it): the tests pin the file, the line and that it is JSON.
def test_invalid_json_names_the_file_and_line(tmp_path):
    path = tmp_path / "routers.json"
    path.write_text('{\n  "r": {\n    "ap_stats": "http://127.0.0.1/" ,,\n  }\n}\n')
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert re.match(rf"{re.escape(str(path))}: line 3 column \d+: invalid JSON: \S", str(e.value)), e.value


def test_a_trailing_comma_names_its_line_or_the_next(tmp_path):
    """The commonest slip in a hand-edited file: 3.13 points at the comma, before it the brace."""
    path = tmp_path / "routers.json"
    path.write_text('{\n  "r": {\n    "ap_stats": "http://127.0.0.1/",\n  }\n}\n')
    with pytest.raises(ConfigError) as e:
        load_config(path)
    found = re.match(rf"{re.escape(str(path))}: line (\d+) column \d+: invalid JSON: \S", str(e.value))
    assert found, e.value
    assert found.group(1) in ("3", "4"), e.value


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.json")


@pytest.mark.parametrize(
    "document, message",
    [
        ([], "top level: must be a JSON object"),
        ({}, "top level: no routers configured"),
        ({"r": "http://x"}, "r: must be an object"),
        ({"r": {"ap_stats": 5}}, "r.ap_stats: must be a URL string, got 5"),
        ({"r": {"ap_stats": "ftp://h/x"}}, "r.ap_stats: not an http(s) URL"),
        ({"r": {"ap_stats": "http:///x"}}, "r.ap_stats: not an http(s) URL"),
        ({"settings": {"month_start_day": 29}, "routers": {"r": {}}},
         "settings.month_start_day: must be an integer from 1 to 28, got 29"),
        ({"settings": {"month_start_day": True}, "routers": {"r": {}}},
         "settings.month_start_day: must be an integer from 1 to 28"),
        ({"settings": {"timezone": "Mars/Olympus"}, "routers": {"r": {}}},
         "settings.timezone: unknown time zone 'Mars/Olympus'"),
        ({"settings": {"timeout_seconds": 0}, "routers": {"r": {}}},
         "settings.timeout_seconds: must be a number from 0.1 to 600"),
        ({"settings": {"max_rate_mbps": "fast"}, "routers": {"r": {}}},
         "settings.max_rate_mbps: must be a number"),
        ({"routers": {"r": {"counter_bits": 16}}}, "routers.r.counter_bits: must be 32 or 64, got 16"),
        ({"routers": {"r": {"name": ""}}}, "routers.r.name: must be a non-empty string"),
        ({"routers": []}, "routers: must be an object"),
        ({"settings": [], "routers": {"r": {}}}, "settings: must be an object"),
    ],
)
def test_bad_values_name_the_key(document, message):
    with pytest.raises(ConfigError) as e:
        parse_config(json.loads(json.dumps(document)), "f.json")
    assert str(e.value).startswith("f.json: ")
    assert message in str(e.value)


def test_monthly_cap_setting():
    config = parse_config({"settings": {"monthly_cap_gib": 500}, "routers": {"r": {}}})
    assert config.settings.monthly_cap_gib == 500
    assert parse_config({"r": {}}).settings.monthly_cap_gib is None
    with pytest.raises(ConfigError, match="settings.monthly_cap_gib: must be a number"):
        parse_config({"settings": {"monthly_cap_gib": -1}, "routers": {"r": {}}})


@pytest.mark.parametrize(
    "url, message",
    [
        ("http://[::1/x", "r.ap_stats: not a valid URL: unbalanced [ ] around an IPv6 address"),
        ("http://admin:s3cret@[::1/x", "r.ap_stats: not a valid URL: unbalanced [ ] around an IPv6 address"),
        ("http://admin:s3cret@127.0.0.1:65536/x", "r.ap_stats: not a valid URL: the port must be"),
        ("http://admin:s3cret@127.0.0.1:0/x", "r.ap_stats: not a valid URL: the port must be"),
        ("http://admin:s3/cret@127.0.0.1/x", "r.ap_stats: not a valid URL: the port must be"),
        ("http://admin:s3 cret@127.0.0.1/x", "r.ap_stats: not a valid URL: it contains spaces or control"),
        ("http://127.0.0.1/x\x1b[2J", "r.ap_stats: not a valid URL: it contains spaces or control"),
        ("ftp://admin:s3cret@127.0.0.1/x", "r.ap_stats: not an http(s) URL"),
    ],
)
def test_a_bad_url_is_a_configuration_error_naming_the_key_never_the_password(url, message):
    with pytest.raises(ConfigError) as e:
        parse_config({"r": {"ap_stats": url}}, "f.json")
    assert message in str(e.value)
    assert "s3" not in str(e.value) and "cret" not in str(e.value)
    assert "\x1b" not in str(e.value)


def test_a_good_url_with_user_info_is_accepted():
    config = parse_config({"r": {"ap_stats": "http://admin:s3cret@127.0.0.1:8080/cgi-bin/x"}})
    assert config.routers[0].urls["ap_stats"] == "http://admin:s3cret@127.0.0.1:8080/cgi-bin/x"
