"""MkDocs hook of the trackhook docs: pages made from the code and the packages' READMEs.

Three directives, written as HTML comments so that a page reads sensibly even unprocessed:

``<!-- include: packages/tracker-mlflow/README.md#What lands where -->``
    The section of that file under the heading (up to the next heading of the same or a higher
    level), headings shifted to sit under the page's, and relative links made plain text (they point
    into the repository, not into the site). Without ``#heading``: the whole file.

``<!-- code: examples/trackhook-jsonl/pyproject.toml -->``
    The whole file as a fenced code block: the tutorial shows the example plugin's real, tested
    files rather than copies.

``<!-- config-model: trackhook_mlflow.config:MlflowConfig -->``
    A table of the pydantic model's fields (name and alias, type, default, description), read from
    the model itself, so the configuration reference never drifts from the code.

A missing file, section or model fails the build: ``mkdocs build --strict`` is run in CI.
"""

from __future__ import annotations

import html
import re
from importlib import import_module
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
_DIRECTIVE = re.compile(r"^<!-- (include|code|config-model): (.+?) -->$", re.MULTILINE)
_LANGUAGES = {".py": "python", ".toml": "toml", ".yaml": "yaml", ".md": "markdown"}
_HEADING = re.compile(r"^(#{1,6}) (.*)$")
_RELATIVE_LINK = re.compile(r"\[([^\]]+)\]\((?!https?:|#|mailto:)[^)]*\)")


class DocsDirectiveError(Exception):
    """A directive names a file, section or model that does not exist."""


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    def expand(match: re.Match[str]) -> str:
        kind, argument = match.group(1), match.group(2).strip()
        level = _level_before(markdown, match.start())
        if kind == "include":
            return include(argument, level)
        if kind == "code":
            return code(argument)
        return config_model_table(argument)

    return _DIRECTIVE.sub(expand, markdown)


def _level_before(markdown: str, position: int) -> int:
    """The level of the last heading above ``position`` (0 if none)."""
    level = 0
    in_code = False
    for line in markdown[:position].splitlines():
        if line.startswith("```"):
            in_code = not in_code
        heading = _HEADING.match(line)
        if heading and not in_code:
            level = len(heading.group(1))
    return level


def include(argument: str, under_level: int) -> str:
    relative, _, section = argument.partition("#")
    path = ROOT / relative
    if not path.is_file():
        raise DocsDirectiveError(f"include: no file {relative}")
    lines = path.read_text(encoding="utf-8").splitlines()
    if section:
        lines = _section(lines, section, relative)
    else:
        lines = [line for line in lines if not line.startswith("# ")]  # the file's own title
    shifted = _shift_headings(lines, under_level)
    return _RELATIVE_LINK.sub(r"\1", "\n".join(shifted))


def code(relative: str) -> str:
    path = ROOT / relative
    if not path.is_file():
        raise DocsDirectiveError(f"code: no file {relative}")
    language = _LANGUAGES.get(path.suffix, "text")
    text = path.read_text(encoding="utf-8").rstrip("\n")
    return f'```{language} title="{relative}"\n{text}\n```'


def _section(lines: list[str], title: str, relative: str) -> list[str]:
    in_code = False
    start: int | None = None
    level = 0
    for index, line in enumerate(lines):
        if line.startswith("```"):
            in_code = not in_code
        heading = None if in_code else _HEADING.match(line)
        if heading is None:
            continue
        if start is None and heading.group(2).strip() == title:
            start, level = index + 1, len(heading.group(1))
        elif start is not None and len(heading.group(1)) <= level:
            return lines[start:index]
    if start is None:
        raise DocsDirectiveError(f"include: no section {title!r} in {relative}")
    return lines[start:]


def _shift_headings(lines: list[str], under_level: int) -> list[str]:
    """Headings of the included text become sub-headings of the heading above the directive."""
    levels = [
        len(match.group(1))
        for line in _outside_code(lines)
        if (match := _HEADING.match(line)) is not None
    ]
    if not levels:
        return lines
    shift = under_level + 1 - min(levels)
    shifted, in_code = [], False
    for line in lines:
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else _HEADING.match(line)
        if match is not None:
            depth = min(max(len(match.group(1)) + shift, 1), 6)
            line = f"{'#' * depth} {match.group(2)}"
        shifted.append(line)
    return shifted


def _outside_code(lines: list[str]) -> list[str]:
    outside, in_code = [], False
    for line in lines:
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code:
            outside.append(line)
    return outside


def config_model_table(reference: str) -> str:
    """A Markdown table of the fields of the pydantic model ``module:Class``."""
    from trackhook.cli._trackers import describe_config_model

    module_name, _, name = reference.partition(":")
    try:
        model = getattr(import_module(module_name), name)
    except (ImportError, AttributeError) as error:
        raise DocsDirectiveError(f"config-model: cannot import {reference}: {error}") from error
    rows = [
        "| field | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for field in describe_config_model(model):
        cells = [
            _code(field.name),
            _code(field.type),
            _code(field.default),
            _text(field.description),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _code(text: str) -> str:
    """Inline code that may hold ``|`` (a table's cell separator, even inside backticks)."""
    return f"<code>{_text(text)}</code>"


def _text(text: str) -> str:
    return html.escape(" ".join(text.split()), quote=False).replace("|", "&#124;")
