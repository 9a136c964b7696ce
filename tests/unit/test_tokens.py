"""Link tokens: bound to one subscriber's link key and one purpose, dated, unforgeable without the secret."""

from __future__ import annotations

import base64
from datetime import date

import pytest
from factories import make_settings
from hypothesis import given
from hypothesis import strategies as st

from lupus_alerts import tokens

SECRET = b"test-secret-0123456789abcdef"
KEY = "Qm9iJ3Mga2V5IGlzIHJhbmQ"  # 23 base64url characters, as new_link_key() makes them (22)
DAY = date(2026, 11, 27)


def test_round_trip_returns_the_link_key_and_issue_day() -> None:
    t = tokens.make_token(KEY, "unsubscribe", issued=DAY, secret=SECRET)
    claims = tokens.check_token(t, "unsubscribe", secret=SECRET)
    assert (claims.purpose, claims.link_key, claims.issued, claims.legacy_id) == (
        "unsubscribe",
        KEY,
        DAY,
        None,
    )
    assert t.split(".")[:2] == [KEY, str((DAY - date(1970, 1, 1)).days)]


@given(
    st.sampled_from(tokens.PURPOSES),
    st.dates(min_value=date(1970, 1, 1), max_value=date(2200, 1, 1)),
)
def test_tokens_are_url_safe_and_round_trip(purpose: str, day: date) -> None:
    key = tokens.new_link_key()
    t = tokens.make_token(key, purpose, issued=day, secret=SECRET)
    assert all(c.isalnum() or c in "-_." for c in t)
    assert len(t) <= tokens.MAX_TOKEN_CHARS
    claims = tokens.check_token(t, purpose, secret=SECRET)
    assert (claims.link_key, claims.issued) == (key, day)


def test_new_link_keys_are_random_and_128_bits() -> None:
    keys = {tokens.new_link_key() for _ in range(1000)}
    assert len(keys) == 1000
    assert all(len(base64.urlsafe_b64decode(k + "==")) == 16 for k in keys)


def test_token_for_one_purpose_is_refused_for_the_other() -> None:
    t = tokens.make_token(KEY, "preferences", issued=DAY, secret=SECRET)
    with pytest.raises(tokens.InvalidToken):
        tokens.check_token(t, "unsubscribe", secret=SECRET)


def test_changing_the_key_or_the_day_invalidates_the_token() -> None:
    t = tokens.make_token(KEY, "unsubscribe", issued=DAY, secret=SECRET)
    key, day, mac = t.split(".")
    other_key = tokens.new_link_key()
    for forged in (f"{other_key}.{day}.{mac}", f"{key}.{int(day) + 1}.{mac}", f"{key}.{int(day) - 1}.{mac}"):
        with pytest.raises(tokens.InvalidToken):
            tokens.check_token(forged, "unsubscribe", secret=SECRET)


def test_another_secret_does_not_validate() -> None:
    t = tokens.make_token(KEY, "unsubscribe", issued=DAY, secret=SECRET)
    with pytest.raises(tokens.InvalidToken):
        tokens.check_token(t, "unsubscribe", secret=b"another-secret-0123456789")


_GOOD = tokens.make_token(KEY, "unsubscribe", issued=DAY, secret=SECRET)
_MAC = _GOOD.split(".")[2]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        KEY,
        f"{KEY}.",
        f".20419.{_MAC}",
        f"{KEY}.020419.{_MAC}",  # non-canonical day
        f"{KEY}.+20419.{_MAC}",
        f"{KEY}.-1.{_MAC}",
        f"{KEY}.٢٠٤١٩.{_MAC}",  # Arabic-Indic digits
        f"{KEY[:10]}.20419.{_MAC}",  # key too short
        f"{KEY}!.20419.{_MAC}",
        f"{KEY}.20419.{_MAC}.x",
        f"{KEY}.20419.{_MAC}=",  # padding is not part of the canonical form
        "x" * 200,
        f"{KEY}.20419.!!!!",
    ],
)
def test_malformed_tokens_are_invalid(bad: str) -> None:
    # "malformed", not "bad signature": the shape is checked before any MAC is computed
    with pytest.raises(tokens.InvalidToken, match=r"^malformed token$"):
        tokens.check_token(bad, "unsubscribe", secret=SECRET)


def test_every_single_character_change_is_detected() -> None:
    t = tokens.make_token(KEY, "unsubscribe", issued=DAY, secret=SECRET)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    key, day, mac = t.split(".")
    for i in range(len(mac)):
        for c in alphabet:
            if c == mac[i]:
                continue
            with pytest.raises(tokens.InvalidToken):
                tokens.check_token(f"{key}.{day}.{mac[:i]}{c}{mac[i + 1 :]}", "unsubscribe", secret=SECRET)


def test_a_truncated_mac_is_refused_at_every_length() -> None:
    """A MAC is compared whole, never as a prefix of the expected one: every shorter MAC (down to
    none at all) is refused, in both token formats."""
    t = tokens.make_token(KEY, "unsubscribe", issued=DAY, secret=SECRET)
    key, day, mac = t.split(".")
    legacy = tokens.make_legacy_token(7, "unsubscribe", secret=SECRET)
    sid, legacy_mac = legacy.split(".")
    for n in range(len(mac)):
        with pytest.raises(tokens.InvalidToken):
            tokens.check_token(f"{key}.{day}.{mac[:n]}", "unsubscribe", secret=SECRET)
        with pytest.raises(tokens.InvalidToken):
            tokens.check_token(f"{sid}.{legacy_mac[:n]}", "unsubscribe", secret=SECRET)
    assert tokens.check_token(t, "unsubscribe", secret=SECRET).link_key == KEY


def test_mac_carries_128_bits() -> None:
    mac = tokens.make_token(KEY, "unsubscribe", issued=DAY, secret=SECRET).split(".")[2]
    assert len(base64.urlsafe_b64decode(mac + "==")) == 16


def test_first_format_tokens_are_recognised_as_legacy() -> None:
    t = tokens.make_legacy_token(42, "unsubscribe", secret=SECRET)
    claims = tokens.check_token(t, "unsubscribe", secret=SECRET)
    assert (claims.purpose, claims.legacy_id, claims.link_key, claims.issued, claims.is_legacy) == (
        "unsubscribe",
        42,
        None,
        None,
        True,
    )
    assert claims.expired(DAY, 3650)  # no date: never good for an expiring purpose
    with pytest.raises(tokens.InvalidToken):
        tokens.check_token("43." + t.split(".")[1], "unsubscribe", secret=SECRET)
    with pytest.raises(tokens.InvalidToken):
        tokens.check_token(t, "preferences", secret=SECRET)


def test_expiry_counts_whole_days_from_the_issue_day() -> None:
    claims = tokens.check_token(
        tokens.make_token(KEY, "preferences", issued=DAY, secret=SECRET), "preferences", secret=SECRET
    )
    assert not claims.expired(date(2027, 1, 26), 60)  # day 60
    assert claims.expired(date(2027, 1, 27), 60)  # day 61


def test_secret_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tokens.SECRET_ENV, "env-secret-0123456789abcdef")
    monkeypatch.delenv("AIRFLOW_CONN_LUPUS_ALERTS_SECRET", raising=False)
    t = tokens.make_token(KEY, "unsubscribe", issued=DAY)
    assert tokens.check_token(t, "unsubscribe", secret="env-secret-0123456789abcdef").link_key == KEY


def test_secret_comes_from_the_connection_when_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tokens.SECRET_ENV, raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_LUPUS_ALERTS_SECRET", '{"conn_type": "generic", "password": "conn-secret-0123456789"}'
    )
    t = tokens.make_token(KEY, "preferences", issued=DAY)
    assert tokens.check_token(t, "preferences", secret="conn-secret-0123456789").link_key == KEY


def test_secret_comes_from_the_connections_extra_when_it_has_no_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Operators who keep secrets in a connection's extra ({"secret": ...}) rather than its password.
    monkeypatch.delenv(tokens.SECRET_ENV, raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_LUPUS_ALERTS_SECRET",
        '{"conn_type": "generic", "extra": {"secret": "extra-secret-0123456789"}}',
    )
    assert tokens.get_secret() == b"extra-secret-0123456789"


def test_no_secret_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tokens.SECRET_ENV, raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_LUPUS_ALERTS_SECRET", raising=False)
    with pytest.raises(tokens.MissingSecret, match="LUPUS_ALERTS_SECRET"):
        tokens.make_token(KEY, "unsubscribe", issued=DAY)
    with pytest.raises(tokens.MissingSecret):
        tokens.check_token(_GOOD, "unsubscribe")


def test_short_secret_is_refused() -> None:
    with pytest.raises(tokens.MissingSecret, match="at least"):
        tokens.make_token(KEY, "unsubscribe", issued=DAY, secret="short")


def test_unknown_purpose_and_bad_keys_are_programming_errors() -> None:
    with pytest.raises(ValueError):
        tokens.make_token(KEY, "delete-account", issued=DAY, secret=SECRET)
    for bad in ("", "short", "has.dot.in.it.xxxxxxxx", 7):
        with pytest.raises(ValueError):
            tokens.make_token(bad, "unsubscribe", issued=DAY, secret=SECRET)  # type: ignore[arg-type]


def test_link_builds_a_url_with_the_token() -> None:
    token = tokens.make_token(KEY, "unsubscribe", issued=DAY, secret=SECRET)
    url = tokens.link("https://x.example.org/lupus-alerts/", "unsubscribe", token)
    base, _, query = url.partition("?token=")
    assert base == "https://x.example.org/lupus-alerts/unsubscribe"
    assert tokens.check_token(query, "unsubscribe", secret=SECRET).link_key == KEY


@pytest.mark.parametrize(
    "placeholder",
    [
        "change-me-change-me-change-me",
        "CHANGEME-0123456789abcdef",
        "demo-only-link-signing-secret-not-for-production",
        "my-placeholder-secret-value",
        "secret.example.org-0123456789",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "abababababababababababab",
    ],
)
def test_a_placeholder_secret_is_refused(placeholder: str) -> None:
    with pytest.raises(tokens.MissingSecret, match="is a placeholder, not a secret") as refused:
        tokens.make_token(KEY, "unsubscribe", issued=DAY, secret=placeholder)
    # The message hands the operator the command that makes a real one.
    assert str(refused.value).endswith(
        ": generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
    )
    with pytest.raises(tokens.MissingSecret):
        tokens.check_token(_GOOD, "unsubscribe", secret=placeholder)


# -- independent expected values: what the mutation check found undefended (issue 15) ---------

_KAT_SECRET = b"kat-secret-0123456789-abcdefghij"


def _independent_mac(msg: bytes) -> str:
    import base64 as b64
    import hashlib as hl
    import hmac as hm

    return b64.urlsafe_b64encode(hm.new(_KAT_SECRET, msg, hl.sha256).digest()[:16]).rstrip(b"=").decode()


def test_a_legacy_token_is_the_documented_v1_mac_computed_independently() -> None:
    token = tokens.make_legacy_token(42, "unsubscribe", secret=_KAT_SECRET)
    assert token == "42." + _independent_mac(b"lupus-alerts/token/v1|unsubscribe|42")
    assert tokens.check_token(token, "unsubscribe", secret=_KAT_SECRET).legacy_id == 42


def test_a_current_token_is_the_documented_v2_mac_computed_independently() -> None:
    key = "AAAAAAAAAAAAAAAAAAAAAA"
    token = tokens.make_token(key, "preferences", issued=date(1970, 1, 11), secret=_KAT_SECRET)
    assert token == f"{key}.10." + _independent_mac(f"lupus-alerts/token/v2|preferences|{key}|10".encode())


@pytest.mark.parametrize("bad", [-1, True, "7", 7.0])
def test_legacy_tokens_need_a_non_negative_int(bad: object) -> None:
    with pytest.raises(ValueError, match="non-negative int"):
        tokens.make_legacy_token(bad, "unsubscribe", secret=_KAT_SECRET)  # type: ignore[arg-type]


def test_a_mac_that_is_not_base64_is_malformed_with_that_message() -> None:
    with pytest.raises(tokens.InvalidToken, match=r"^malformed token$"):
        tokens.check_token("AAAAAAAAAAAAAAAAAAAAAA.10.A", "unsubscribe", secret=_KAT_SECRET)


def test_links_join_base_and_path_with_one_slash_and_sign_with_the_given_secret() -> None:
    assert (
        tokens.link("https://x.example/a/", "/unsubscribe", "t.1")
        == "https://x.example/a/unsubscribe?token=t.1"
    )
    assert tokens.link("https://x.example/a/XX", "p", "t") == "https://x.example/a/XX/p?token=t"
    settings = make_settings(digest={"public_base_url": "https://alerts.example/"})
    key = "BBBBBBBBBBBBBBBBBBBBBB"
    for make, purpose in ((tokens.unsubscribe_url, "unsubscribe"), (tokens.preferences_url, "preferences")):
        url = make(settings, key, issued=date(2026, 1, 1), secret=_KAT_SECRET)
        token = url.split("token=", 1)[1]
        assert tokens.check_token(token, purpose, secret=_KAT_SECRET).link_key == key


def test_a_well_formed_token_with_a_wrong_mac_is_a_bad_signature_in_both_formats() -> None:
    other = b"another-secret-0123456789"
    current = tokens.make_token(KEY, "unsubscribe", issued=DAY, secret=other)
    legacy = tokens.make_legacy_token(7, "unsubscribe", secret=other)
    for token in (current, legacy):
        with pytest.raises(tokens.InvalidToken, match=r"^bad signature$"):
            tokens.check_token(token, "unsubscribe", secret=SECRET)


def test_an_empty_mac_is_refused() -> None:
    # well-formed but empty: it decodes (to nothing) and fails the comparison
    with pytest.raises(tokens.InvalidToken, match=r"^bad signature$"):
        tokens.check_token(f"{KEY}.20419.", "unsubscribe", secret=SECRET)


def test_a_legacy_token_for_subscriber_zero_round_trips() -> None:
    # the legacy format took any non-negative id; its tokens must keep validating
    token = tokens.make_legacy_token(0, "unsubscribe", secret=SECRET)
    assert tokens.check_token(token, "unsubscribe", secret=SECRET).legacy_id == 0


def test_a_link_path_keeps_its_own_first_letters() -> None:
    assert tokens.link("https://x.example", "Xport", "t") == "https://x.example/Xport?token=t"


@pytest.mark.parametrize("empty", ["", b""])
def test_an_empty_secret_is_a_missing_secret_that_says_how_to_make_one(empty: str | bytes) -> None:
    with pytest.raises(tokens.MissingSecret, match=r"no link-signing secret: set the environment variable"):
        tokens.get_secret(empty)


def test_the_shortest_and_least_varied_secret_allowed_is_accepted() -> None:
    exactly = bytes(range(65, 65 + 8)) * 2  # 16 bytes, 8 distinct: both limits exactly met
    assert len(exactly) == tokens.MIN_SECRET_BYTES
    assert tokens.get_secret(exactly) == exactly
    with pytest.raises(tokens.MissingSecret, match="at least 16 bytes"):
        tokens.get_secret(exactly[:-1])
    with pytest.raises(tokens.MissingSecret, match="placeholder"):
        tokens.get_secret(bytes(range(65, 65 + 7)) * 3)  # 7 distinct bytes


def test_a_secret_that_is_not_utf8_is_accepted_as_bytes() -> None:
    raw = bytes(range(0xE0, 0xF0)) + b"\xff\xfe"
    assert tokens.get_secret(raw) == raw
    assert tokens.check_token(
        tokens.make_token(KEY, "unsubscribe", issued=DAY, secret=raw), "unsubscribe", secret=raw
    )


def test_a_token_can_be_issued_on_the_first_day_of_1970_and_not_before() -> None:
    t = tokens.make_token(KEY, "unsubscribe", issued=date(1970, 1, 1), secret=SECRET)
    assert tokens.check_token(t, "unsubscribe", secret=SECRET).issued == date(1970, 1, 1)
    with pytest.raises(ValueError, match=r"^issue day 1969-12-31 is before 1970$"):
        tokens.make_token(KEY, "unsubscribe", issued=date(1969, 12, 31), secret=SECRET)


def test_programming_errors_say_what_was_wrong() -> None:
    with pytest.raises(ValueError, match=r"^not a link key: 'a b'$"):
        tokens.make_token("a b", "unsubscribe", issued=DAY, secret=SECRET)
    with pytest.raises(
        ValueError, match=r"^unknown token purpose 'x' \(expected one of unsubscribe, preferences\)$"
    ):
        tokens.make_token(KEY, "x", issued=DAY, secret=SECRET)


def test_the_length_limit_admits_exactly_max_token_chars() -> None:
    # Well-formed up to the MAC, so the reason says which check refused it: the length check
    # must let a 96-character token through to the signature and stop a 97-character one.
    mac = base64.urlsafe_b64encode(bytes(31)).rstrip(b"=").decode()
    at_limit = f"{'A' * 43}.123456789.{mac}"
    over = f"{'A' * 43}.1234567890.{mac}"
    assert (len(at_limit), len(over)) == (tokens.MAX_TOKEN_CHARS, tokens.MAX_TOKEN_CHARS + 1)
    with pytest.raises(tokens.InvalidToken, match=r"^bad signature$"):
        tokens.check_token(at_limit, "unsubscribe", secret=SECRET)
    with pytest.raises(tokens.InvalidToken, match=r"^malformed token$"):
        tokens.check_token(over, "unsubscribe", secret=SECRET)


@pytest.mark.parametrize("not_text", [None, 42, _GOOD.encode("ascii")])
def test_a_token_that_is_not_text_is_malformed(not_text: object) -> None:
    # A query parser or a caller may hand over anything: it is refused, never a TypeError.
    with pytest.raises(tokens.InvalidToken, match=r"^malformed token$"):
        tokens.check_token(not_text, "unsubscribe", secret=SECRET)  # type: ignore[arg-type]
