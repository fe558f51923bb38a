"""Furigana markup: `{漢字|かんじ}` (whole word) and `{漢字|かん|じ}` (per character) → `<ruby>`.

The convention of DenDen Markdown and Moodle's ruby filter. Pages render
`<ruby>漢字<rp>(</rp><rt>かんじ</rt><rp>)</rp></ruby>`; the reader's furigana switch hides `rt`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from markupsafe import Markup, escape

# A ruby group: no braces, bars or line breaks inside the base; readings separated by bars.
RUBY_PATTERN = re.compile(r"\{([^{}|\n]+)\|([^{}\n]+)\}")


@dataclass(frozen=True)
class RubyProblem:
    column: int
    message: str


def ruby_html(base: str, readings: list[str]) -> str:
    """The HTML for one ruby group; `base` and `readings` are plain text (escaped here)."""
    if len(readings) > 1:
        inner = "".join(
            f"{escape(char)}<rp>(</rp><rt>{escape(reading)}</rt><rp>)</rp>"
            for char, reading in zip(base, readings, strict=True)
        )
        return f"<ruby>{inner}</ruby>"
    return f"<ruby>{escape(base)}<rp>(</rp><rt>{escape(readings[0])}</rt><rp>)</rp></ruby>"


def split_readings(base: str, reading_text: str) -> list[str] | None:
    """The readings of a group, or None when per-character readings do not match the base."""
    readings = [part.strip() for part in reading_text.split("|")]
    if any(not reading for reading in readings):
        return None
    if len(readings) > 1 and len(readings) != len(base):
        return None
    return readings


def check_ruby(text: str) -> list[RubyProblem]:
    """Syntax problems in a line or block of text (columns are 1-based)."""
    problems: list[RubyProblem] = []
    position = 0
    for match in RUBY_PATTERN.finditer(text):
        base, reading_text = match.group(1), match.group(2)
        if split_readings(base, reading_text) is None:
            problems.append(
                RubyProblem(
                    match.start() + 1,
                    f"ruby {match.group(0)!r}: give one reading for the whole word, or exactly one "
                    f"per character ({len(base)})",
                )
            )
        stray = text[position : match.start()]
        problems.extend(_stray_braces(stray, position))
        position = match.end()
    problems.extend(_stray_braces(text[position:], position))
    return problems


def _stray_braces(segment: str, offset: int) -> list[RubyProblem]:
    problems = []
    for index, char in enumerate(segment):
        if char in "{}":
            problems.append(
                RubyProblem(
                    offset + index + 1,
                    f"unmatched {char!r}: ruby is written {{漢字|かんじ}}",
                )
            )
    return problems


@functools.lru_cache(maxsize=8192)
def render_inline(text: str) -> Markup:
    """Plain text with ruby markup (a title, an objective) as safe HTML."""
    out: list[str] = []
    position = 0
    for match in RUBY_PATTERN.finditer(text):
        out.append(str(escape(text[position : match.start()])))
        readings = split_readings(match.group(1), match.group(2))
        out.append(ruby_html(match.group(1), readings) if readings else str(escape(match.group(0))))
        position = match.end()
    out.append(str(escape(text[position:])))
    return Markup("".join(out))  # noqa: S704 - every piece above is escaped


def strip_ruby(text: str) -> str:
    """The text without readings (for <title>, CSV, search)."""
    return RUBY_PATTERN.sub(lambda m: m.group(1), text)
