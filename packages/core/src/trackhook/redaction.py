"""Keeping secrets out of the run log: credentials in URLs and fields that hold secrets."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["REDACTED", "redact", "redact_text"]

REDACTED = "***"
_SECRET_FIELD = re.compile(
    r"(pass(word)?|secret|token|api[_-]?key|credential|auth|(^|[_-])key$)", re.I
)
# Up to the last "@" before any query or fragment: a password may itself hold "@" or "/"; hiding
# a little too much of a URL with "@" in its path is the safe side to err on.
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^\s?#]*)@")
_SECRET_QUERY = re.compile(
    r"(?P<name>[?&;][^=&#\s]*(pass|secret|token|key|sig|auth|credential)[^=&#\s]*=)[^&#\s]*", re.I
)


def redact_text(text: str) -> str:
    """Hide the user and password of every URL in ``text``, and secret query parameters."""
    text = _URL_USERINFO.sub(lambda match: f"{match['scheme']}{REDACTED}@", text)
    return _SECRET_QUERY.sub(lambda match: f"{match['name']}{REDACTED}", text)


def redact(value: Any, field: str = "") -> Any:
    """A copy of a JSON-like value with secrets replaced by ``***``."""
    if field and _SECRET_FIELD.search(field) and value not in (None, "", {}):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: redact(inner, str(key)) for key, inner in value.items()}
    if isinstance(value, list):
        return [redact(inner) for inner in value]
    return value
