"""Link tokens: bound to one subscriber and one purpose, unforgeable without the secret."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lupus_alerts import tokens

SECRET = b"test-secret-0123456789abcdef"


def test_round_trip_returns_the_subscriber() -> None:
    t = tokens.make_token(1234, "unsubscribe", secret=SECRET)
    assert tokens.check_token(t, "unsubscribe", secret=SECRET) == 1234


@given(st.integers(min_value=0, max_value=2**40), st.sampled_from(tokens.PURPOSES))
def test_tokens_are_url_safe_and_round_trip(sid: int, purpose: str) -> None:
    t = tokens.make_token(sid, purpose, secret=SECRET)
    assert all(c.isalnum() or c in "-_." for c in t)
    assert tokens.check_token(t, purpose, secret=SECRET) == sid


def test_token_for_one_purpose_is_refused_for_the_other() -> None:
    t = tokens.make_token(7, "preferences", secret=SECRET)
    with pytest.raises(tokens.InvalidToken):
        tokens.check_token(t, "unsubscribe", secret=SECRET)


def test_changing_the_subscriber_id_invalidates_the_token() -> None:
    t = tokens.make_token(7, "unsubscribe", secret=SECRET)
    forged = "8" + t[1:]
    with pytest.raises(tokens.InvalidToken):
        tokens.check_token(forged, "unsubscribe", secret=SECRET)


def test_another_secret_does_not_validate() -> None:
    t = tokens.make_token(7, "unsubscribe", secret=SECRET)
    with pytest.raises(tokens.InvalidToken):
        tokens.check_token(t, "unsubscribe", secret=b"another-secret-0123456789")


@pytest.mark.parametrize(
    "bad",
    ["", "7", "7.", ".abc", "07.AAAA", "+7.AAAA", "7.!!!!", "x" * 200, "7.AAAAAAAAAAAAAAAAAAAAAA", "٧.AAAA"],
)
def test_malformed_tokens_are_invalid(bad: str) -> None:
    with pytest.raises(tokens.InvalidToken):
        tokens.check_token(bad, "unsubscribe", secret=SECRET)


def test_every_single_character_change_is_detected() -> None:
    t = tokens.make_token(42, "unsubscribe", secret=SECRET)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    sid, mac = t.split(".")
    for i in range(len(mac)):
        for c in alphabet:
            if c == mac[i]:
                continue
            with pytest.raises(tokens.InvalidToken):
                tokens.check_token(f"{sid}.{mac[:i]}{c}{mac[i + 1 :]}", "unsubscribe", secret=SECRET)


def test_mac_carries_128_bits() -> None:
    mac = tokens.make_token(1, "unsubscribe", secret=SECRET).split(".")[1]
    assert len(base64.urlsafe_b64decode(mac + "==")) == 16


def test_secret_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tokens.SECRET_ENV, "env-secret-0123456789abcdef")
    monkeypatch.delenv("AIRFLOW_CONN_LUPUS_ALERTS_SECRET", raising=False)
    t = tokens.make_token(5, "unsubscribe")
    assert tokens.check_token(t, "unsubscribe", secret="env-secret-0123456789abcdef") == 5


def test_secret_comes_from_the_connection_when_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tokens.SECRET_ENV, raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_LUPUS_ALERTS_SECRET", '{"conn_type": "generic", "password": "conn-secret-0123456789"}'
    )
    t = tokens.make_token(5, "preferences")
    assert tokens.check_token(t, "preferences", secret="conn-secret-0123456789") == 5


def test_no_secret_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tokens.SECRET_ENV, raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_LUPUS_ALERTS_SECRET", raising=False)
    with pytest.raises(tokens.MissingSecret, match="LUPUS_ALERTS_SECRET"):
        tokens.make_token(5, "unsubscribe")
    with pytest.raises(tokens.MissingSecret):
        tokens.check_token("5.AAAA", "unsubscribe")


def test_short_secret_is_refused() -> None:
    with pytest.raises(tokens.MissingSecret, match="at least"):
        tokens.make_token(5, "unsubscribe", secret="short")


def test_unknown_purpose_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        tokens.make_token(5, "delete-account", secret=SECRET)


def test_link_builds_a_url_with_the_token() -> None:
    url = tokens.link("https://x.example.org/lupus-alerts/", "unsubscribe", 9, "unsubscribe", secret=SECRET)
    base, _, query = url.partition("?token=")
    assert base == "https://x.example.org/lupus-alerts/unsubscribe"
    assert tokens.check_token(query, "unsubscribe", secret=SECRET) == 9
