"""Redaction rules (pure logic): keys, card numbers, credentials, JWTs, PEM keys, allow lists."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest

from dlq import DLQConfig, new_entry_input
from dlq._config import DLQSettings
from dlq._redact import ALL_RULES, FILTERED, Redactor, parse_redact_allow, redact_text

R = Redactor()
VISA = "4111111111111111"
MASTERCARD = "5500000000000004"
AMEX = "378282246310005"  # 15 digits
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n"
       "4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u\n"
       "-----END RSA PRIVATE KEY-----")


def redact(data: dict, *, redactor: Redactor = R, domain: str = "") -> tuple[dict, list[str]]:
    paths: list[str] = []
    return redactor.data(data, field="request_data", domain=domain, paths=paths), paths


@pytest.mark.parametrize("key", [
    "password", "PASSWORD", "Password", "db_password", "passwordHash", "passwd", "pwd",
    "secret", "client_secret", "clientSecret", "api_key", "API-KEY", "apiKey", "X-Api-Key",
    "apikey", "access_token", "accessToken", "refresh_token", "auth", "Authorization",
    "credentials", "cookie", "Set-Cookie", "session", "sessionid", "user_session", "csrf",
    "csrftoken", "X-CSRF-Token", "private_key", "privateKey", "token", "cvv", "cvc",
])
def test_a_secret_named_key_is_filtered_case_insensitively(key: str) -> None:
    out, paths = redact({key: "s3cr3t-value"})
    assert out == {key: FILTERED}
    assert paths == [f"request_data.{key}"]


@pytest.mark.parametrize("key", ["author", "username", "name", "order_id", "amount", "status",
                                 "tokens_used", "company", "passage"])
def test_ordinary_keys_are_kept(key: str) -> None:
    assert redact({key: "plain value"}) == ({key: "plain value"}, [])


def test_the_whole_value_under_a_secret_key_goes_whatever_its_type() -> None:
    out, paths = redact({"auth": {"user": "bob", "pass": "x"}, "token": 12345,
                         "session": ["a", "b"], "cookie": None, "secret": ""})
    assert out == {"auth": FILTERED, "token": FILTERED, "session": FILTERED,
                   "cookie": None, "secret": ""}  # nothing to hide in None or ""
    assert paths == ["request_data.auth", "request_data.token", "request_data.session"]


def test_keys_are_found_at_any_depth_and_in_lists() -> None:
    data = {"a": {"b": [{"c": {"Password": "p1"}}, {"headers": {"Authorization": "x"}}]},
            "users": [{"name": "u", "api_key": "k"}]}
    out, paths = redact(data)
    assert out["a"]["b"][0]["c"]["Password"] == FILTERED
    assert out["a"]["b"][1]["headers"]["Authorization"] == FILTERED
    assert out["users"][0] == {"name": "u", "api_key": FILTERED}
    assert paths == ["request_data.a.b.0.c.Password", "request_data.a.b.1.headers.Authorization",
                     "request_data.users.0.api_key"]
    assert data["users"][0]["api_key"] == "k"  # the caller's dict is not changed


def test_extra_keys_extend_the_default_list() -> None:
    redactor = Redactor(extra_keys=["iban", "socialSecurityNumber"])
    out, _ = redact({"IBAN": "DE89370400440532013000", "social_security_number": "078-05-1120",
                     "password": "p"}, redactor=redactor)
    assert out == {"IBAN": FILTERED, "social_security_number": FILTERED, "password": FILTERED}


# --- card numbers -------------------------------------------------------------------------


@pytest.mark.parametrize("number", [VISA, MASTERCARD, AMEX, "4111 1111 1111 1111",
                                    "4111-1111-1111-1111", "3782 822463 10005",
                                    "6011111111111117", "4222222222222"])
def test_a_card_number_passing_luhn_keeps_only_its_last_four(number: str) -> None:
    out = redact_text(f"charge of card {number} declined")
    digits = number.replace(" ", "").replace("-", "")
    assert out == f"charge of card [Filtered:****{digits[-4:]}] declined"


@pytest.mark.parametrize("text", [
    "4111111111111112",          # fails Luhn
    "1732863600000",             # epoch milliseconds (Luhn-valid, starts with 1)
    "411111111111",              # 12 digits
    "41111111111111111111",      # 20 digits
    "order 2026-11-29 12:30:00",
    "phone +49 170 1234567",
])
def test_numbers_that_are_not_cards_are_kept(text: str) -> None:
    assert redact_text(text) == text


def test_two_cards_in_one_run_of_digits_are_both_masked() -> None:
    assert redact_text(f"{VISA} {MASTERCARD}") == "[Filtered:****1111] [Filtered:****0004]"


def test_a_card_number_stored_as_an_integer_is_masked() -> None:
    out, paths = redact({"number": int(VISA), "count": 12})
    assert out == {"number": "[Filtered:****1111]", "count": 12}
    assert paths == ["request_data.number"]


# --- credentials, JWTs, PEM keys ------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("Authorization: Bearer abcDEF123456.xyz", "Authorization: Bearer [Filtered]"),
    ("bearer sk_live_51Habc9XyZ", "bearer [Filtered]"),
    ("got Basic dXNlcjpwYXNzd29yZA== from proxy", "got Basic [Filtered] from proxy"),
    ("Token 9f86d081884c7d659a2feaa0c55ad015", "Token [Filtered]"),
])
def test_bearer_and_basic_credentials_are_filtered(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize("text", ["Bearer authentication failed", "Basic plan upgrade failed",
                                  "Basic information missing"])
def test_prose_after_an_auth_scheme_word_is_kept(text: str) -> None:
    assert redact_text(text) == text


def test_a_jwt_is_filtered_wherever_it_appears() -> None:
    assert redact_text(f"token was {JWT}, expired") == f"token was {FILTERED}, expired"
    out, paths = redact({"id": JWT, "nested": [f"x {JWT}"]})
    assert out == {"id": FILTERED, "nested": [f"x {FILTERED}"]}
    assert paths == ["request_data.id", "request_data.nested.0"]


@pytest.mark.parametrize("kind", ["RSA ", "EC ", "", "ENCRYPTED ", "OPENSSH "])
def test_a_pem_private_key_is_filtered(kind: str) -> None:
    pem = PEM.replace("RSA ", kind)
    assert redact_text(f"key:\n{pem}\nend") == f"key:\n{FILTERED}\nend"
    # A key cut off by a truncated message is filtered to the end.
    cut = pem[:90]
    assert redact_text(f"bad {cut}") == f"bad {FILTERED}"


def test_a_public_key_or_certificate_is_kept() -> None:
    cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    assert redact_text(cert) == cert


@pytest.mark.parametrize(("text", "expected"), [
    ("login failed: password=hunter2 user=bob", "login failed: password=[Filtered] user=bob"),
    ("{'api_key': 'zzz', 'id': 3}", "{'api_key': '[Filtered]', 'id': 3}"),
    ('{"client_secret": "abc", "n": 1}', '{"client_secret": "[Filtered]", "n": 1}'),
    ("connect postgres://app:s3cret@db:5432/x", "connect postgres://app:[Filtered]@db:5432/x"),
    ("author: Jane status: failed", "author: Jane status: failed"),
    ("GET /v1/x?api_key=k123&page=2 failed", "GET /v1/x?api_key=[Filtered]&page=2 failed"),
    ("<auth><ns:Password>s3cr3t</ns:Password><user>bob</user></auth>",
     "<auth><ns:Password>[Filtered]</ns:Password><user>bob</user></auth>"),
    ('<apiKey type="live">k-123</apiKey><author>Jane</author>',
     '<apiKey type="live">[Filtered]</apiKey><author>Jane</author>'),
])
def test_secret_pairs_and_url_passwords_in_text_are_filtered(text: str, expected: str) -> None:
    assert redact_text(text) == expected


# --- allow list ---------------------------------------------------------------------------


def test_allowed_paths_keep_their_value_for_that_domain_only() -> None:
    redactor = Redactor(allow={"payment": ["request_data.card.number", "request_data.api_key"]})
    data = {"card": {"number": VISA, "cvv": "123"}, "api_key": "k1", "password": "p"}
    out, paths = redact(data, redactor=redactor, domain="payment")
    assert out == {"card": {"number": VISA, "cvv": FILTERED}, "api_key": "k1",
                   "password": FILTERED}
    assert paths == ["request_data.card.cvv", "request_data.password"]
    other, _ = redact(data, redactor=redactor, domain="webhook")
    assert other["api_key"] == FILTERED and other["card"]["number"] == "[Filtered:****1111]"


def test_an_allowed_path_under_a_secret_key_keeps_only_that_path() -> None:
    redactor = Redactor(allow={"*": ["request_data.auth.api_key", "request_data.items.*.token"]})
    data = {"auth": {"api_key": "keep", "password": "drop", "n": 3, "ok": True},
            "items": [{"token": "t0"}, {"token": "t1", "secret": "s"}]}
    out, paths = redact(data, redactor=redactor, domain="any")
    assert out == {"auth": {"api_key": "keep", "password": FILTERED, "n": FILTERED, "ok": True},
                   "items": [{"token": "t0"}, {"token": "t1", "secret": FILTERED}]}
    assert paths == ["request_data.auth.password", "request_data.auth.n",
                     "request_data.items.1.secret"]


@pytest.mark.parametrize(("value", "message"), [
    ("not json", "must be JSON"),
    ('["a"]', "must map domains"),
    ('{"payment": "request_data.x"}', "must be a list"),
    ('{"payment": ["request_data..x"]}', "is not a dotted path"),
    ('{"": ["a"]}', "non-empty string"),
])
def test_a_malformed_allow_list_names_the_setting(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_redact_allow(value)
    with pytest.raises(pydantic.ValidationError, match="DLQ_REDACT_ALLOW"):
        DLQSettings(redact_allow=value)


def test_settings_read_keys_allow_and_the_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLQ_REDACT_KEYS", "iban, ssn")
    monkeypatch.setenv("DLQ_REDACT_ALLOW", json.dumps({"payment": ["request_data.card"]}))
    monkeypatch.setenv("DLQ_REDACT_ENABLED", "false")
    monkeypatch.setenv("DLQ_TEMPORAL_ENVCONFIG", "false")
    config = DLQConfig.from_settings()
    assert config.redact_keys == ("iban", "ssn")
    assert config.redact_allow == {"payment": ("request_data.card",)}
    assert config.redact_enabled is False and config.redactor.enabled is False


# --- at capture ---------------------------------------------------------------------------


def test_an_entry_is_redacted_when_it_is_built() -> None:
    config = DLQConfig(redact_allow={"payment": ["request_data.card_token"]})
    entry = new_entry_input(
        "payment", "DECLINED", error_message=f"card {VISA} declined; Bearer abcd1234efgh",
        next_action_hint="retry with password=hunter2",
        snapshot_data={"user": {"password": "hunter2"}},
        request_data={"card_token": "tok_keep_me", "headers": {"Cookie": "sid=1"}},
        response_data={"jwt": JWT}, metadata={"private_key": PEM}, config=config)
    assert entry.error_message == "card [Filtered:****1111] declined; Bearer [Filtered]"
    assert entry.next_action_hint == "retry with password=[Filtered]"
    assert entry.snapshot_data == {"user": {"password": FILTERED}}
    assert entry.request_data == {"card_token": "tok_keep_me", "headers": {"Cookie": FILTERED}}
    assert entry.response_data == {"jwt": FILTERED}
    assert entry.metadata == {"private_key": FILTERED}
    assert entry.redacted_paths == [
        "snapshot_data.user.password", "request_data.headers.Cookie", "response_data.jwt",
        "metadata.private_key", "error_message", "next_action_hint"]
    assert entry.data_bytes == sum(len(json.dumps(getattr(entry, f)).encode()) for f in
                                   ("snapshot_data", "request_data", "response_data",
                                    "metadata"))


def test_redaction_can_be_turned_off() -> None:
    entry = new_entry_input("payment", "DECLINED", error_message=f"card {VISA}",
                            request_data={"password": "p"},
                            config=DLQConfig(redact_enabled=False))
    assert entry.request_data == {"password": "p"} and entry.error_message == f"card {VISA}"
    assert entry.redacted_paths == []


def test_an_allowed_text_field_is_kept() -> None:
    entry = new_entry_input("payment", "X", error_message=f"card {VISA}",
                            config=DLQConfig(redact_allow={"payment": ["error_message"]}))
    assert entry.error_message == f"card {VISA}" and entry.redacted_paths == []


# --- the pre-check: which rules can match is decided on the whole entry -----------------

_FRAGMENTS = [VISA, "4111 1111", " 1111 1111", "-", " ", "\n", "\x19", "\u00e9", '"', "'",
              "<password>", "</password>", "<",
              "password", "=", ": ", "hunter2", "Bearer ", "abcDEF12345", "Basic ",
              "dXNlcjpwYXNzd29yZA==", JWT, PEM, "postgres://u:", "pw@db", "api_key", "token",
              "42", "0", "text", "{", "}"]


def _texts() -> Any:
    from hypothesis import strategies as st

    return st.lists(st.sampled_from(_FRAGMENTS), max_size=8).map("".join)


def _json() -> Any:
    from hypothesis import strategies as st

    leaves = st.one_of(_texts(), st.integers(min_value=0, max_value=10**19), st.none(),
                       st.booleans())
    keys = st.one_of(_texts(), st.sampled_from(["password", "name", "headers", "id"]))
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)), max_leaves=12)


def test_the_pre_check_never_skips_a_rule_that_would_match() -> None:
    from hypothesis import given, settings

    @settings(max_examples=400, deadline=None)
    @given(_json())
    def check(data: Any) -> None:
        values = {"domain": "d", "request_data": {"v": data}, "error_message": ""}
        quick = dict(values)
        paths = R.fields(quick, data_fields=("request_data",), text_fields=("error_message",))
        full: list[str] = []
        slow = R._plain({"v": data}, ["request_data"], full, ALL_RULES)
        assert quick["request_data"] == slow
        assert paths == full

    check()
