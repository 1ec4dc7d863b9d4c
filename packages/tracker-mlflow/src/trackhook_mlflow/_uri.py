"""Tracking URIs as they may be shown: without the credentials a URI can carry."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["redact_uri"]

_SECRET_QUERY_WORDS = ("token", "password", "secret", "key", "auth", "credential", "signature")


def redact_uri(uri: str) -> str:
    """Return ``uri`` without a user name, password or secret-looking query parameter.

    ``https://user:pw@host/x?token=abc`` becomes ``https://***@host/x?token=***``: the run log and
    every warning show where the values went, never how to log in there.
    """
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable tracking URI>"
    # String surgery rather than urlunsplit, which rewrites URIs such as sqlite:////abs/path.
    if "@" in parts.netloc:
        uri = uri.replace(parts.netloc, "***@" + parts.netloc.rpartition("@")[2], 1)
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(_looks_secret(name) for name, _ in pairs):
            query = urlencode(
                [(name, "***" if _looks_secret(name) else value) for name, value in pairs],
                safe="*",
            )
            uri = uri.replace(parts.query, query, 1)
    return uri


def _looks_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_QUERY_WORDS)
