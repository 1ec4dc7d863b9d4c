"""Secrets never reach the run log, a warning or a command's output."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from trackhook.errors import TrackerLoadError
from trackhook.redaction import redact, redact_text

SECRET = "s3cr3t-Value.42"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"Authorization: Bearer {SECRET}", "Authorization: Bearer ***"),
        (f"authorization: Basic {SECRET}", "authorization: Basic ***"),
        (f"{{'Authorization': 'Bearer {SECRET}'}}", "{'Authorization': 'Bearer ***'}"),
    ],
)
def test_an_authorization_header_is_hidden_and_its_scheme_kept(text: str, shown: str) -> None:
    assert redact_text(text) == shown


def test_a_bearer_token_alone_in_free_text_is_hidden() -> None:
    shown = redact_text(f"401 Unauthorized (sent Bearer {SECRET})")
    assert shown == "401 Unauthorized (sent Bearer ***)"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"api_key={SECRET} rejected", "api_key=*** rejected"),
        (f"api-key: {SECRET}, retry", "api-key: ***, retry"),
        (f"token={SECRET}", "token=***"),
        (f"MLFLOW_TRACKING_TOKEN={SECRET} python x.py", "MLFLOW_TRACKING_TOKEN=*** python x.py"),
    ],
)
def test_a_secret_assignment_in_free_text_is_hidden(text: str, shown: str) -> None:
    assert redact_text(text) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            f"{{'X-Api-Key': '{SECRET}', 'Accept': 'json'}}",
            "{'X-Api-Key': '***', 'Accept': 'json'}",
        ),
        (f'{{"x-api-key": "{SECRET}", "n": 1}}', '{"x-api-key": "***", "n": 1}'),
    ],
)
def test_a_secret_header_in_a_dict_repr_or_json_is_hidden(text: str, shown: str) -> None:
    assert redact_text(text) == shown


def test_a_secret_query_parameter_keeps_the_separator_after_it() -> None:
    assert redact_text(f"https://h/x?token={SECRET};other=1") == "https://h/x?token=***;other=1"


def test_config_fields_named_bearer_or_authorization_and_secret_headers_are_hidden() -> None:
    config = {
        "bearer": SECRET,
        "authorization": SECRET,
        "headers": {"X-Api-Key": SECRET, "Accept": "json"},
        "header_lines": [f"Authorization: Bearer {SECRET}"],
    }
    shown = redact(config)
    assert SECRET not in str(shown)
    assert shown["headers"]["Accept"] == "json"


def test_a_tracker_load_error_hides_the_secret_its_cause_quotes() -> None:
    cause = ImportError(f"cannot reach https://user:{SECRET}@host/x with token={SECRET}")
    assert SECRET not in str(TrackerLoadError("leaky", "leaky-dist", cause))


def test_trackhook_trackers_never_shows_a_secret_default() -> None:
    from trackhook.cli._trackers import describe_config_model

    class Settings(BaseModel):
        api_token: str = Field(default_factory=lambda: SECRET)
        uri: str = f"https://user:{SECRET}@host"
        name: str = "kept"

    shown = describe_config_model(Settings)
    assert SECRET not in str(shown)
    assert [field.default for field in shown] == ["***", "'https://***@host'", "'kept'"]


def test_a_cookie_header_or_config_field_is_hidden() -> None:
    config = {"headers": {"Cookie": f"session={SECRET}; theme=dark"}, "cookie": SECRET}
    assert SECRET not in str(redact(config))
    shown = redact_text(f"Cookie: session={SECRET}; id={SECRET}\nSet-Cookie: a={SECRET}; HttpOnly")
    assert shown == "Cookie: ***\nSet-Cookie: ***"


def test_the_body_of_a_pem_private_key_is_hidden() -> None:
    key = (
        f"-----BEGIN RSA PRIVATE KEY-----\nMIIE{SECRET}\n{SECRET}==\n-----END RSA PRIVATE KEY-----"
    )
    shown = redact_text(f"bad key {key} in config")
    assert (
        shown == "bad key -----BEGIN RSA PRIVATE KEY-----***-----END RSA PRIVATE KEY----- in config"
    )
    cut_off = redact_text(f"-----BEGIN PRIVATE KEY-----\\nMIIE{SECRET}")
    assert cut_off == "-----BEGIN PRIVATE KEY-----***"


@pytest.mark.parametrize(
    ("token", "shown"),
    [
        ("AKIAIOSFODNN7EXAMPLE", "AKIA***"),
        ("ASIA0123456789ABCDEF", "ASIA***"),
        ("ghp_" + "a1B2" * 9, "ghp_***"),
        ("gho_" + "Z9" * 18, "gho_***"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "github_pat_***"),
        ("sk-proj-" + "aB3" * 10, "sk-***"),
        ("hf_" + "AbCdEfGhIj" * 3 + "klmn", "hf_***"),
        ("xoxb-123456789012-abcdefghijkl", "xoxb-***"),
        (
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "eyJ***",
        ),
    ],
)
def test_a_token_known_by_its_form_is_hidden_without_a_name_in_front(
    token: str, shown: str
) -> None:
    assert redact_text(f"request failed ({token}) twice") == f"request failed ({shown}) twice"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"Authorization: Token {SECRET}", "Authorization: Token ***"),
        (f"authorization: Negotiate {SECRET}", "authorization: Negotiate ***"),
        (f"Authorization: {SECRET} rejected", "Authorization: *** ***"),
    ],
)
def test_any_authorization_scheme_word_is_kept_and_its_credential_hidden(
    text: str, shown: str
) -> None:
    assert redact_text(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        "uses sk-learn and a risk-free rate",
        "hf_mode=fast, hf_home=/data",
        "the Bearer of news",
        "ghp_short, AKIA, eyJ alone",
        "key id AKIAIOSFODNN7EXAMPLEX is too long to be one",
    ],
)
def test_ordinary_text_that_resembles_a_token_is_kept(text: str) -> None:
    assert redact_text(text) == text
