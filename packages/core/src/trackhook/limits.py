"""What a tracker can store, declared as data, and the shared rules that make values fit.

A tracker declares ``limits = TrackerLimits(...)`` as a class attribute. The delivery side applies
the same rules to every tracker, built-in or third-party, so that no adapter re-implements them:

- **param keys**: ``param_key`` formats a parameter's key from its key and step
  (``"{key}_{step}"``).
- **renaming**: a key with characters outside ``key_chars``, longer than ``max_key_length``,
  among ``reserved_keys``, or (with ``path_keys``) not a normal path, becomes ``<key with each
  forbidden character (and for a bad path each "/" and its leading dots) replaced by "_",
  shortened>_<8 hex digits of the SHA-1 of the original key>``. The suffix depends on the
  original key, so two different keys never become the same key, and a key that is already
  storable is never changed.
- **truncation**: a parameter whose text is longer than ``max_param_length`` keeps its first
  characters followed by ``TRUNCATION_MARK`` (``...`` under very small limits); the whole text
  travels in ``ParamRecord.full_value`` so the tracker can store it elsewhere.
- **batches**: ``max_metrics_per_batch``, ``max_params_per_batch`` and ``max_values_per_batch``
  bound each ``trackhook_log_batch`` call.
- **file kinds**: ``file_kinds`` says which kinds of tracked file ``trackhook_log_file`` takes
  (TensorBoard shows images and has no place for other files); the others are counted
  ``skipped``, as for a tracker without the hook.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from trackhook.records import FileKind

__all__ = ["TRUNCATION_MARK", "TighterLimitsRequired", "TrackerLimits", "is_normal_path"]

TRUNCATION_MARK = "...[truncated by trackhook]"
_SHORT_MARK = "..."  # for limits too small to hold TRUNCATION_MARK
_HASH_SUFFIX_LENGTH = 9  # "_" and 8 hex digits
_LEADING_DOTS = re.compile(r"^\.+")


@dataclass(frozen=True)
class TrackerLimits:
    """The storage limits of one tracker. ``None`` means "no limit"."""

    key_chars: str | None = None
    """A regular-expression character class of what a key may hold, e.g. ``[/\\w.\\- ]``."""
    max_key_length: int | None = None
    max_param_length: int | None = None
    param_key: str = "{key}"
    """How a parameter's stored key is formed from ``{key}`` and ``{step}``."""
    max_metrics_per_batch: int | None = None
    max_params_per_batch: int | None = None
    max_values_per_batch: int | None = None
    reserved_keys: frozenset[str] = frozenset()
    """Keys the tracker writes itself (W&B's ``_step``): a user's key of that name is renamed."""
    path_keys: bool = False
    """Keys are paths that must already be normal (``is_normal_path``; MLflow). A key that is not
    is renamed, its ``/`` and leading dots becoming ``_``: a renamed key is one plain name."""
    file_kinds: frozenset[FileKind] = frozenset({"file", "image"})
    """The kinds of file (``FileRecord.kind``) that the tracker's ``trackhook_log_file`` takes;
    files of the other kinds never reach it and are counted ``skipped``."""

    @cached_property
    def _forbidden(self) -> re.Pattern[str] | None:
        if self.key_chars is None:
            return None
        return re.compile(f"(?!{self.key_chars}).", re.DOTALL)

    def why_unstorable(self, key: str) -> str | None:
        """Why the tracker cannot store ``key`` as it is, or ``None`` when it can."""
        forbidden = self._forbidden
        found = forbidden.findall(key) if forbidden is not None else []
        if found:
            characters = ", ".join(repr(character) for character in dict.fromkeys(found))
            return f"it holds {characters}, and keys may hold only {self.key_chars}"
        if self.max_key_length is not None and len(key) > self.max_key_length:
            return f"it has {len(key)} characters, more than {self.max_key_length}"
        if key in self.reserved_keys:
            return "the tracker writes a key of that name itself"
        if self.path_keys and not is_normal_path(key):
            return (
                "keys are paths, and it is not a normal one ('//', an end '/', a '.' or '..' "
                "part, or a leading '..')"
            )
        return None

    def storable_key(self, key: str) -> str:
        """Return ``key`` unchanged if the tracker can store it, else its renamed form."""
        if self.why_unstorable(key) is None:
            return key
        forbidden = self._forbidden
        bad_path = self.path_keys and not is_normal_path(key)
        clean = forbidden.sub("_", key) if forbidden is not None else key
        if bad_path:
            # one name, not a path: no "/" and no leading dots, so no ".." part can remain
            clean = _LEADING_DOTS.sub(lambda dots: "_" * len(dots[0]), clean.replace("/", "_"))
        digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]
        if self.max_key_length is not None:
            clean = clean[: max(self.max_key_length - _HASH_SUFFIX_LENGTH, 0)]
        return f"{clean}_{digest}"

    def fit_param_text(self, text: str) -> str | None:
        """The truncated form of ``text`` if it is too long for the tracker, else ``None``."""
        limit = self.max_param_length
        if limit is None or len(text) <= limit:
            return None
        mark = TRUNCATION_MARK if limit >= 2 * len(TRUNCATION_MARK) else _SHORT_MARK[:limit]
        return text[: limit - len(mark)] + mark

    def tightened(self, **changes: int) -> TrackerLimits:
        """A copy with the given limits lowered (never raised)."""
        lowered: dict[str, Any] = {
            name: min(value, getattr(self, name) or value) for name, value in changes.items()
        }
        return replace(self, **lowered)


def is_normal_path(key: str) -> bool:
    """Whether ``key``, as a relative path, names itself and stays inside its folder.

    MLflow's rule for keys (``path_not_unique``): normalising must not change it, and it must not
    be ``.``, start with ``/`` or with ``..``. A key that passes cannot reach outside the folder it
    is joined to (an artifact's folder), whatever a tracker builds from it.
    """
    normal = posixpath.normpath(key)
    return normal == key and normal != "." and not normal.startswith(("/", ".."))


class TighterLimitsRequired(Exception):
    """Raised by a tracker's hook when its server rejected values that fit the declared limits.

    Servers differ (MLflow servers accept parameters of 6000 or 500 characters, depending on the
    version and store): the delivery thread lowers the tracker's limits by ``changes`` (for example
    ``max_param_length=500``) and offers the same values again, truncated or renamed to fit.
    """

    def __init__(self, reason: str, **changes: int) -> None:
        self.changes = changes
        super().__init__(reason)
