"""Readable, unique run ids such as ``clean-ride-1048``, in the style of runnable's."""

from __future__ import annotations

import secrets

__all__ = ["generate_run_id"]

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
