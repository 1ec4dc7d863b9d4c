"""Where a run's event files go: ``<log_dir>/<tag>/<run_id>/``, always inside ``log_dir``.

The tag and the run_id each become one folder name. A name TensorBoard's folders cannot take as
it is (a ``/`` or ``\\``, a character Windows refuses, ``.`` or ``..``, more than 200 characters) is
made valid by the core's renaming rule: each such character becomes ``_``, then ``_`` and the first
8 hex digits of the name's SHA-1 (``a/b`` -> ``a_b_<hash>``), so two names never share a folder and
the same name always finds its folder again.
"""

from __future__ import annotations

from pathlib import Path

from trackhook import RunInfo, TrackerLimits

__all__ = ["folder_name", "run_folder"]

_NAME_RULE = TrackerLimits(key_chars=r"[^/\\\x00-\x1f<>:\"|?*]", max_key_length=200, path_keys=True)


def folder_name(name: str) -> str:
    """``name`` as one folder name (see the module's rule)."""
    return _NAME_RULE.storable_key(name)


def run_folder(log_dir: str, run: RunInfo, default_tag: str) -> Path:
    """The folder of ``run``'s event files; the tag ``default_tag`` stands for an empty tag."""
    tag = run.tag or default_tag
    return Path(log_dir).expanduser() / folder_name(tag) / folder_name(run.run_id)
