"""Keeping secrets out of the run log, warnings and command output.

``redact`` hides the values of fields whose name says they hold a secret (password, token, secret,
api key, credential, auth, bearer, cookie, a name ending in ``key``); ``redact_text`` hides
secrets inside free text (error messages, reprs of headers, JSON):

- the user and password of URLs, and secret query parameters;
- ``name=value``, ``name: value`` and ``"name": "value"`` pairs whose name is a secret's, an
  ``Authorization`` value's scheme word kept (``Authorization: Token ***``, any word of letters);
- ``Cookie:`` and ``Set-Cookie:`` headers, to the end of their line;
- the body of a PEM private key (``-----BEGIN ... PRIVATE KEY-----`` to its ``-----END``, or to
  the end of the text when that was cut off);
- tokens known by their form alone, without a name in front, their type prefix kept: AWS access
  key ids (``AKIA``/``ASIA`` and 16 capitals or digits), GitHub tokens (``ghp_``, ``gho_``,
  ``ghu_``, ``ghs_``, ``ghr_`` and 20 or more letters or digits, ``github_pat_...``), OpenAI-style
  ``sk-`` keys (20 or more characters, a digit among them), Hugging Face ``hf_`` tokens (30 or
  more letters or digits), Slack ``xoxa-``/``xoxb-``/``xoxp-``/``xoxr-``/``xoxs-`` tokens and
  JSON Web Tokens (``eyJ...``, three dot-separated parts);
- a lone ``Bearer`` followed by what looks like a credential: 8 or more characters, or fewer
  holding a digit or one of ``._~+/=-``.

The forms are chosen so that ordinary text stays as it is: ``sk-learn``, ``risk-free``,
``hf_mode``, "Bearer of news" are not secrets. Erring towards hiding a little too much is the safe
side. Every pattern starts matching only where a name or token starts (a look-behind) and never
backtracks over more than one token, so that long text is scanned in linear time.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["REDACTED", "is_secret_field", "redact", "redact_text"]

REDACTED = "***"
_SECRET_FIELD = re.compile(
    r"(pass(word)?|secret|token|api[_-]?key|credential|auth|bearer|cookie|(^|[_-])key$)", re.I
)
# Up to the last "@" before any query or fragment: a password may itself hold "@" or "/"; hiding
# a little too much of a URL with "@" in its path is the safe side to err on.
_URL_USERINFO = re.compile(
    r"(?P<scheme>(?<![a-zA-Z0-9+.\-])[a-zA-Z][a-zA-Z0-9+.\-]*://)"
    r"(?P<userinfo>(?:(?!://)[^\s?#])*)@"
)
_SECRET_QUERY = re.compile(
    r"(?P<name>[?&;][^=&;#\s]*(pass|secret|token|key|sig|auth|credential)[^=&;#\s]*=)[^&;#\s]*",
    re.I,
)
# a whole name (letters, digits, "_" and "-") that holds a secret's word
_SECRET_NAME = (
    r"(?<![\w-])(?=[\w-]*?(?:passw(?:or)?d|secret|token|api[_-]?key|credential|authorization|"
    r"access[_-]?key|private[_-]?key|bearer|cookie))[\w-]+"
)
_SCHEME = r"(?:(?:Bearer|Basic|Token|Digest)\s+)?"
_SCHEMES = frozenset({"bearer", "basic", "token", "digest"})
_SCHEME_WORD = re.compile(r"[A-Za-z]+(?:-[A-Za-z0-9]+)*")
"""An ``Authorization`` scheme as it is shown: letters, then hyphenated parts (AWS4-HMAC-SHA256
is hidden, a credential of letters only would be shown: the rare price of keeping the scheme)."""
_BARE = r"[^\s\"',;&#)\]}}]+"
# name, separator, then a quoted value (up to its closing quote) or a bare one (up to a space,
# quote or separator) with the word after it; an auth scheme in front of the value ("Bearer", or
# any word after "Authorization") is kept, for the reader.
_SECRET_PAIR = re.compile(
    rf"(?P<name>{_SECRET_NAME}[\"']?\s*[:=]\s*)"
    rf"(?:(?P<quote>[\"'])(?P<quoted_scheme>{_SCHEME})[^\"'\n]*(?P=quote)"
    rf"|(?P<first>{_BARE})(?P<second>[ \t]+{_BARE})?)",
    re.I,
)
_COOKIE_HEADER = re.compile(r"(?<![\w-])(?P<name>(?:set-)?cookie[ \t]*:[ \t]*)[^\r\n]+", re.I)
_PRIVATE_KEY = re.compile(
    r"(?P<begin>-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----)(?:(?!-----END )[\s\S])*"
    r"(?P<end>-----END [A-Z0-9 ]*PRIVATE KEY-----)?"
)
_TOKEN_BY_FORM = re.compile(
    r"(?<![A-Za-z0-9_-])(?:"
    r"(?P<aws>AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])"
    r"|(?P<github>gh[pousr]_|github_pat_)[A-Za-z0-9_]{20,}"
    r"|(?P<openai>sk-)(?=[A-Za-z0-9_-]*[0-9])[A-Za-z0-9_-]{20,}"
    r"|(?P<huggingface>hf_)[A-Za-z0-9]{30,}"
    r"|(?P<slack>xox[abprs]-)[A-Za-z0-9-]{10,}"
    r"|(?P<jwt>eyJ)[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
    r")"
)
_BEARER = re.compile(
    r"(?<!\w)(?P<scheme>Bearer\s+)(?=[\w.~+/=-]{8}|[\w.~+/=-]*[0-9._~+/=-])[\w.~+/=-]+", re.I
)


def redact_text(text: str) -> str:
    """``text`` with the secrets it holds replaced by ``***``."""
    text = _PRIVATE_KEY.sub(lambda match: f"{match['begin']}{REDACTED}{match['end'] or ''}", text)
    text = _URL_USERINFO.sub(lambda match: f"{match['scheme']}{REDACTED}@", text)
    text = _SECRET_QUERY.sub(lambda match: f"{match['name']}{REDACTED}", text)
    text = _COOKIE_HEADER.sub(lambda match: f"{match['name']}{REDACTED}", text)
    text = _SECRET_PAIR.sub(_hide_pair_value, text)
    text = _TOKEN_BY_FORM.sub(_hide_token, text)
    return _BEARER.sub(lambda match: f"{match['scheme']}{REDACTED}", text)


def _hide_pair_value(match: re.Match[str]) -> str:
    """The pair with its value hidden; a scheme word in front of a credential stays."""
    if match["quote"]:
        quote = match["quote"]
        return f"{match['name']}{quote}{match['quoted_scheme']}{REDACTED}{quote}"
    name, first, second = match["name"], match["first"], match["second"]
    if second is None:
        return f"{name}{REDACTED}"
    if first.lower() in _SCHEMES:
        return f"{name}{first}{_gap(second)}{REDACTED}"
    if "authorization" in name.lower():  # "<scheme> <credentials>": keep a word that can be one
        shown = first if _SCHEME_WORD.fullmatch(first) else REDACTED
        return f"{name}{shown}{_gap(second)}{REDACTED}"
    return f"{name}{REDACTED}{second}"


def _gap(spaced: str) -> str:
    return spaced[: len(spaced) - len(spaced.lstrip())]


def _hide_token(match: re.Match[str]) -> str:
    """A token known by its form: its type prefix stays (it says what leaked), the rest goes."""
    prefix = next(group for group in match.groups() if group is not None)
    return f"{prefix}{REDACTED}"


def is_secret_field(name: str) -> bool:
    """Whether a field (of a configuration, of headers) named ``name`` holds a secret."""
    return bool(_SECRET_FIELD.search(name))


def redact(value: Any, field: str = "") -> Any:
    """A copy of a JSON-like value with secrets replaced by ``***``."""
    if field and is_secret_field(field) and value not in (None, "", {}):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: redact(inner, str(key)) for key, inner in value.items()}
    if isinstance(value, list):
        return [redact(inner) for inner in value]
    return value
