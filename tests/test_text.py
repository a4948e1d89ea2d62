"""collector.text: what a router (or a URL with a password in it) may put in front of a reader."""

import json
import string
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from collector.text import log_safe, printable, redact, terminal_json

ESCAPED_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def test_controls_and_bidi_characters_become_visible_escapes():
    assert printable("bell\x07esc\x1b[31mred") == "bell\\x07esc\\x1b[31mred"
    assert printable("\u202eevil\u202c") == "\\u202eevil\\u202c"
    assert printable("del\x7f c1\x9b nl\n") == "del\\x7f c1\\x9b nl\\n"
    assert printable("line\u2028sep") == "line\\u2028sep"
    assert printable("Zoë/tablet ✓") == "Zoë/tablet ✓"  # letters and symbols are kept


def test_the_limit_cuts_the_end_or_the_middle():
    assert printable("abcdefghij", 5) == "abcd…"
    assert printable("abcdefghij", 10) == "abcdefghij"
    cause = "[Errno 24] Too many open files"
    long = "HTTPConnectionPool(...): " + "x" * 500 + " " + cause
    assert printable(long, 100, middle=True).endswith(cause)
    assert len(printable(long, 100, middle=True)) == 100


def test_an_escape_is_never_cut_in_half():
    assert printable("ab\x1b", 4) == "ab…"  # not "ab\\x…"


def test_user_info_in_urls_is_redacted():
    assert redact("http://admin:s3cret@host/cgi-bin/wan.cgi") == "http://admin:***@host/cgi-bin/wan.cgi"
    assert redact("https://token@host:8443/x") == "https://***@host:8443/x"
    assert redact("http://host/x") == "http://host/x"
    # A raw '@' or '/' in the password, a URL inside a message, several URLs.
    assert redact("http://a:p@ss@h/") == "http://a:***@h/"
    assert redact("http://a:pa/ss@h/x") == "http://a:***@h/x"
    assert redact("Failed to parse: 'http://u:pw@h:99999/x', then http://v:pw2@g/") == \
        "Failed to parse: 'http://u:***@h:99999/x', then http://v:***@g/"
    assert redact("http://h/?next=user@example") == "http://h/?next=user@example"
    # A user name that would carry the rest of the user info is not kept either.
    assert redact("http://tok@h:1/x@y") == "http://***@y"


def test_log_safe_redacts_before_cutting():
    secret = "s3cret-" + "z" * 400
    shown = log_safe(f"HTTP 503 from http://admin:{secret}@h/x", 60)
    assert "s3cret" not in shown and len(shown) <= 60


@given(st.text())
def test_printable_output_has_no_control_or_format_character(text):
    shown = printable(text)
    assert not any(unicodedata.category(ch) in ESCAPED_CATEGORIES for ch in shown)
    shown.encode("utf-8")  # no lone surrogate left: it can always be written out


@given(st.text(), st.integers(min_value=1, max_value=300), st.booleans())
def test_printable_respects_its_limit(text, limit, middle):
    shown = printable(text, limit, middle=middle)
    assert len(shown) <= limit
    if len(printable(text)) <= limit:
        assert shown == printable(text)


# Anything a password may hold in a URL that parses, '@' and '/' included; 'Q' marks it.
PASSWORD = st.text(alphabet=string.ascii_letters + string.digits + "!$&'()*+,;=%-._~:@/", max_size=20)
AROUND = st.text(alphabet=st.characters(blacklist_characters="Q"), max_size=40)


@given(PASSWORD, AROUND)
def test_a_password_in_a_url_never_survives_redaction(password, around):
    text = f"{around} http://admin:Q{password}Q@127.0.0.1:8080/cgi-bin/wan.cgi {around}"
    assert "Q" not in redact(text)
    assert "http://admin:***@127.0.0.1:8080/cgi-bin/wan.cgi" in redact(text)


@given(st.recursive(st.text() | st.integers() | st.none(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                    max_leaves=6))
def test_terminal_json_is_the_same_json_with_nothing_a_terminal_would_act_on(value):
    """`report --json`: what prints parses back to the same value, and holds no control,
    format (bidi) or separator character that printable() would escape."""
    out = terminal_json(value)
    assert json.loads(out) == value
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs")
                   for ch in out if ch not in "\n")


def test_terminal_json_keeps_readable_text_readable():
    assert terminal_json({"name": "Zoë/tablet\u202e\x85"}) == '{\n  "name": "Zoë/tablet\\u202e\\u0085"\n}'
