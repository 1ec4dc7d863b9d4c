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

So that a page reads well on the repository host too, where no hook runs, each directive is
followed in the Markdown source by what it expands to, up to ``<!-- end -->``. This module,
run as a script, writes those expansions::

    python docs/hooks/trackhook_docs.py                 # README.md and every page under docs/
    python docs/hooks/trackhook_docs.py docs/cli.md     # only these files
    python docs/hooks/trackhook_docs.py --check         # exit 1 naming each stale file

and a test fails when one is stale. The site build ignores the written expansion and expands the
directive afresh, so the site never shows a stale copy.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
_KINDS = "include|code|config-model"
_END = "<!-- end -->"
_DIRECTIVE = re.compile(rf"^<!-- ({_KINDS}): (.+?) -->$", re.MULTILINE)
_EXPANDED = re.compile(
    # a directive, then (optionally) its written expansion up to the end marker; the expansion
    # never spans another directive, so a directive without one cannot swallow the next's
    rf"^(<!-- (?:{_KINDS}): [^\n]+? -->)(?:\n(?:(?!<!-- (?:{_KINDS}): ).)*?\n{_END}$)?",
    re.MULTILINE | re.DOTALL,
)
_LANGUAGES = {".py": "python", ".toml": "toml", ".yaml": "yaml", ".md": "markdown"}
_HEADING = re.compile(r"^(#{1,6}) (.*)$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_RELATIVE_LINK = re.compile(r"\[([^\]]+)\]\((?!https?:|#|mailto:)[^)]*\)")


class DocsDirectiveError(Exception):
    """A directive names a file, section or model that does not exist."""


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """The page for the site: every directive replaced by its fresh expansion."""
    return expand_directives(collapse(markdown), keep_directives=False)


def collapse(markdown: str) -> str:
    """The Markdown with each written expansion removed: the directives alone."""
    return _EXPANDED.sub(lambda match: match.group(1), markdown)


def expand_directives(markdown: str, *, keep_directives: bool) -> str:
    """Each directive of ``markdown`` (without written expansions) expanded.

    ``keep_directives``: keep each directive and close its expansion with ``<!-- end -->``, the
    form written into the source; else the expansion alone, for the site.
    """

    def expand(match: re.Match[str]) -> str:
        kind, argument = match.group(1), match.group(2).strip()
        level = _level_before(markdown, match.start())
        if kind == "include":
            expanded = include(argument, level)
        elif kind == "code":
            expanded = code(argument)
        else:
            expanded = config_model_table(argument)
        # blank lines around: the expansion renders as its own blocks, whatever it ends with
        return f"{match.group(0)}\n\n{expanded}\n\n{_END}" if keep_directives else expanded

    return _DIRECTIVE.sub(expand, markdown)


def written(markdown: str) -> str:
    """The Markdown source as it should be written: each directive followed by its expansion."""
    return expand_directives(collapse(markdown), keep_directives=True)


def _level_before(markdown: str, position: int) -> int:
    """The level of the last heading above ``position`` (0 if none)."""
    level = 0
    for line, in_code in _with_code_state(markdown[:position].splitlines()):
        heading = None if in_code else _HEADING.match(line)
        if heading is not None:
            level = len(heading.group(1))
    return level


def _with_code_state(lines: list[str]) -> Iterator[tuple[str, bool]]:
    """Each line, and whether it is part of a fenced code block (its fences included).

    A fence closes only with the same character, at least as long as it opened: a block shown
    inside a four-backtick fence may hold three-backtick fences of its own.
    """
    fence = ""
    for line in lines:
        marker = _FENCE.match(line)
        if not fence and marker is not None:
            fence = marker.group(1)
            yield line, True
        elif fence and marker is not None and _closes(fence, marker.group(1), line):
            fence = ""
            yield line, True
        else:
            yield line, bool(fence)


def _closes(fence: str, marker: str, line: str) -> bool:
    return marker[0] == fence[0] and len(marker) >= len(fence) and line.strip() == marker


def include(argument: str, under_level: int) -> str:
    relative, _, section = argument.partition("#")
    path = ROOT / relative
    if not path.is_file():
        raise DocsDirectiveError(f"include: no file {relative}")
    # The included file's own directives are expanded in place, without their comments: an
    # expansion never holds a directive, so it never grows when written again.
    text = expand_directives(collapse(path.read_text(encoding="utf-8")), keep_directives=False)
    lines = text.splitlines()
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
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)  # longer than any fence of the file's own (a README's)
    return f'{fence}{language} title="{relative}"\n{text}\n{fence}'


def _section(lines: list[str], title: str, relative: str) -> list[str]:
    start: int | None = None
    level = 0
    for index, (line, in_code) in enumerate(_with_code_state(lines)):
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
    shifted = []
    for line, in_code in _with_code_state(lines):
        match = None if in_code else _HEADING.match(line)
        if match is not None:
            depth = min(max(len(match.group(1)) + shift, 1), 6)
            line = f"{'#' * depth} {match.group(2)}"
        shifted.append(line)
    return shifted


def _outside_code(lines: list[str]) -> list[str]:
    return [line for line, in_code in _with_code_state(lines) if not in_code]


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


def pages() -> list[Path]:
    """The Markdown files that may hold directives: the README and the documentation's pages."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def main(arguments: list[str]) -> int:
    """Write (or with ``--check``, check) the expansions of the files named, or of ``pages()``."""
    check = "--check" in arguments
    paths = [Path(argument) for argument in arguments if argument != "--check"] or pages()
    stale = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        fresh = written(text)
        if fresh == text:
            continue
        stale.append(path)
        if not check:
            path.write_text(fresh, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if check else 'wrote'}: {path}")
    if check and stale:
        print("run: python docs/hooks/trackhook_docs.py")
    return 1 if check and stale else 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
