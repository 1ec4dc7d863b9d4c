"""A run's names: readable unique run ids such as ``clean-ride-1048``, and the checks of a run_id
and a tag given by the user, the environment or the command line.

A run_id names files of the run log store (``<run_id>.json``, ``<run_id>.rank-<r>.json``, the
folder ``<run_id>/`` and hidden ``.<run_id>.json.*`` helpers), and both names are shown in tables
and sent to trackers. So they are checked once, before a run starts anything, with one error that
says what is allowed, rather than failing later in a file system call or a tracker's request.

Both must also survive being typed: neither may start or end with a space (a shell, a table or a
tracker's form would lose it, and ``"run "`` would be another run than ``"run"``), and a run_id
may not start with ``-``, since ``trackhook sync -rf`` reads it as an option.
"""

from __future__ import annotations

import secrets

from trackhook.errors import InvalidValueError

__all__ = ["MAX_RUN_ID_BYTES", "MAX_TAG_CHARACTERS", "check_run_id", "check_tag", "generate_run_id"]

MAX_RUN_ID_BYTES = 128
"""The longest run_id, in bytes of UTF-8: its longest file name (``.<run_id>.rank-<r>.json.``
and a 32-digit suffix ``.tmp``) then stays far within the 255 bytes file systems allow."""

MAX_TAG_CHARACTERS = 256
"""The longest tag: the longest experiment name MLflow stores."""

_RUN_ID_RULE = (
    f"a run_id is 1 to {MAX_RUN_ID_BYTES} bytes of printable text (UTF-8), without '/', '\\' "
    "or '.rank-', not starting with '.' or '-' nor ending in '.json', and without spaces at "
    "either end"
)
_TAG_RULE = (
    f"a tag is at most {MAX_TAG_CHARACTERS} characters of printable text, without spaces at "
    "either end"
)

_ADJECTIVES = (
    "able bold brave bright calm clean clever crisp daring eager early fair fast fierce fond "
    "gentle glad golden grand happy honest humble jolly keen kind lively lucky merry mighty "
    "modest neat noble plain proud quick quiet rapid ready rich sharp shiny silent simple "
    "smart snappy solid steady sunny swift tidy vivid warm wise witty young zesty"
).split()
_NOUNS = (
    "badger beacon brook canyon cedar comet coral delta dune eagle ember falcon fern fjord "
    "forest galaxy glacier harbor heron island jasper lagoon lantern maple meadow meteor "
    "nebula oak orbit otter panda pebble pine planet quartz raven reef ride river rocket "
    "sparrow spruce summit tiger tundra valley walrus willow yak zephyr"
).split()


def generate_run_id() -> str:
    """An ``adjective-noun-dddd`` id; 28 million combinations, drawn from a secure source."""
    adjective = secrets.choice(_ADJECTIVES)
    noun = secrets.choice(_NOUNS)
    return f"{adjective}-{noun}-{secrets.randbelow(10_000):04d}"


def check_run_id(run_id: object, *, source: str = "") -> str:
    """Return ``run_id`` if it can name a run, else raise ``InvalidValueError`` naming "run_id".

    :param source: where the run_id came from when the user did not pass it (e.g.
        ``"the environment variable TRACKHOOK_RUN_ID"``), for the message.
    """
    text = _checked_text("run_id", run_id, _RUN_ID_RULE, source)
    problem = _run_id_problem(text)
    if problem is not None:
        raise _invalid("run_id", text, problem, _RUN_ID_RULE, source)
    return text


def check_tag(tag: object, *, source: str = "") -> str:
    """Return ``tag`` if it can name an experiment, else raise ``InvalidValueError`` naming "tag".

    ``source`` as for ``check_run_id``. The empty tag is allowed: the tracker's default experiment.
    """
    text = _checked_text("tag", tag, _TAG_RULE, source)
    if len(text) > MAX_TAG_CHARACTERS:
        raise _invalid("tag", text, f"it has {len(text)} characters", _TAG_RULE, source)
    if text != text.strip():
        raise _invalid("tag", text, _SPACE_AT_AN_END, _TAG_RULE, source)
    return text


def _run_id_problem(run_id: str) -> str | None:
    """What keeps ``run_id`` (printable, valid Unicode) from naming a run's files, if anything."""
    size = len(run_id.encode("utf-8"))
    if not 0 < size <= MAX_RUN_ID_BYTES:
        return f"it is {size} bytes long"
    if "/" in run_id or "\\" in run_id:
        return "a path separator would put its files outside the run log store's folder"
    if run_id != run_id.strip():
        return _SPACE_AT_AN_END
    if run_id.startswith("."):
        return "names starting with '.' are the store's hidden files ('.', '..', temporary files)"
    if run_id.startswith("-"):
        return "the command line would read it as an option (trackhook sync -rf)"
    if ".rank-" in run_id:
        return "'.rank-' marks the run logs of the ranks of a distributed run"
    if run_id.endswith(".json"):
        return "its folder would take the name of the run log of another run"
    return None


_SPACE_AT_AN_END = "it starts or ends with a space, which a shell or a table would not show"


def _checked_text(name: str, value: object, rule: str, source: str) -> str:
    """``value`` if it is a str of valid Unicode and printable characters (spaces allowed)."""
    if not isinstance(value, str):
        raise _invalid(name, value, f"it is of type {type(value).__name__}, not str", rule, source)
    for index, character in enumerate(value):
        if not (character.isprintable() or character == " "):
            problem = f"it holds the unprintable character {character!r} at index {index}"
            raise _invalid(name, value, problem, rule, source)
    return value


def _invalid(name: str, value: object, problem: str, rule: str, source: str) -> InvalidValueError:
    shown = repr(value) if len(repr(value)) <= 80 else f"{repr(value)[:60]}...{repr(value)[-15:]}"
    origin = f" (from {source})" if source else ""
    return InvalidValueError(name, f"{shown}{origin} cannot name a run: {problem}; {rule}")
