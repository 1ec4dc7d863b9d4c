"""Keeping secrets out of the run log, warnings and command output.

``redact`` hides the values of fields whose name says they hold a secret; ``redact_text`` hides
secrets inside free text (error messages, reprs of headers, JSON): the user and password of URLs,
secret query parameters, ``Authorization: Bearer ...`` and ``name=value`` or ``"name": "value"``
pairs whose name is a secret's. Erring towards hiding a little too much is the safe side.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["REDACTED", "is_secret_field", "redact", "redact_text"]

REDACTED = "***"
_SECRET_FIELD = re.compile(
    r"(pass(word)?|secret|token|api[_-]?key|credential|auth|bearer|(^|[_-])key$)", re.I
)
# Up to the last "@" before any query or fragment: a password may itself hold "@" or "/"; hiding
# a little too much of a URL with "@" in its path is the safe side to err on. Every pattern here
# starts only where a name starts (a look-behind), so that long text is scanned in linear time.
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
    r"access[_-]?key|private[_-]?key|bearer))[\w-]+"
)
_SCHEME = r"(?:(?:Bearer|Basic|Token|Digest)\s+)?"
# name, separator, then a quoted value (up to its closing quote) or a bare one (up to a space,
# quote or separator); an auth scheme in front of the value ("Bearer") is kept, for the reader.
_SECRET_PAIR = re.compile(
    rf"(?P<name>{_SECRET_NAME}[\"']?\s*[:=]\s*)"
    rf"(?:(?P<quote>[\"'])(?P<quoted_scheme>{_SCHEME})[^\"'\n]*(?P=quote)"
    rf"|(?P<scheme>{_SCHEME})[^\s\"',;&#)\]}}]+)",
    re.I,
)
_BEARER = re.compile(r"(?<!\w)(?P<scheme>Bearer\s+)[\w.~+/=-]+", re.I)


def redact_text(text: str) -> str:
    """``text`` with the secrets it holds replaced by ``***``."""
    text = _URL_USERINFO.sub(lambda match: f"{match['scheme']}{REDACTED}@", text)
    text = _SECRET_QUERY.sub(lambda match: f"{match['name']}{REDACTED}", text)
    text = _SECRET_PAIR.sub(_hide_pair_value, text)
    return _BEARER.sub(lambda match: f"{match['scheme']}{REDACTED}", text)


def _hide_pair_value(match: re.Match[str]) -> str:
    if match["quote"]:
        quote = match["quote"]
        return f"{match['name']}{quote}{match['quoted_scheme']}{REDACTED}{quote}"
    return f"{match['name']}{match['scheme']}{REDACTED}"


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
