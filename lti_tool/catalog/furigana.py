"""Proposing furigana for an author to review: glossary readings first, then SudachiPy.

Only Japanese text is touched (`ja` and `ja-easy` values in the front matter and the `::: ja` /
`::: ja-easy` body sections); kanji that already carry ruby are left alone. Readings from a
morphological analyser are sometimes wrong (外国人 read がいこくにん by some dictionaries), so the
glossary's fixed readings win and the author reviews every proposal.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from lti_tool.catalog.model import GlossaryEntry
from lti_tool.catalog.ruby import RUBY_PATTERN

KANJI = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff々〆]")
LANG_KEY = re.compile(r"^(\s*)(?:-\s+)?(ja|ja-easy|en)\s*:")
KEY_LINE = re.compile(r"^(\s*)(?:-\s+)?[A-Za-z_][\w-]*\s*:")
SECTION = re.compile(r"^:::\s*(ja|ja-easy|en)\s*$")

Reader = Callable[[str], Sequence[tuple[str, str]]]


def katakana_to_hiragana(text: str) -> str:
    return "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in text)


def sudachi_reader() -> Reader | None:
    """(surface, reading in hiragana) per token, or None when SudachiPy is not installed."""
    try:
        from sudachipy import dictionary
    except ImportError:
        return None
    tokenizer = dictionary.Dictionary(dict="core").tokenizer()

    def read(text: str) -> list[tuple[str, str]]:
        return [
            (m.surface(), katakana_to_hiragana(m.reading_form())) for m in tokenizer.tokenize(text)
        ]

    return read


def _ruby_for_token(surface: str, reading: str) -> str:
    """`{漢字|かんじ}` over the kanji part only, keeping kana before and after outside the ruby."""
    if not KANJI.search(surface) or not reading or reading == surface:
        return surface
    start = 0
    while (
        start < len(surface)
        and start < len(reading)
        and not KANJI.match(surface[start])
        and surface[start] == reading[start]
    ):
        start += 1
    end_s, end_r = len(surface), len(reading)
    while (
        end_s > start
        and end_r > start
        and not KANJI.match(surface[end_s - 1])
        and surface[end_s - 1] == reading[end_r - 1]
    ):
        end_s -= 1
        end_r -= 1
    base, base_reading = surface[start:end_s], reading[start:end_r]
    if not base_reading or "{" in base or "|" in base:
        return surface
    return f"{surface[:start]}{{{base}|{base_reading}}}{surface[end_s:]}"


def _apply_glossary(text: str, glossary: Sequence[GlossaryEntry]) -> str:
    for entry in sorted(glossary, key=lambda e: len(e.term), reverse=True):
        if KANJI.search(entry.term):
            text = _outside_ruby(text, _replacer(entry.term, f"{{{entry.term}|{entry.reading}}}"))
    return text


def _replacer(old: str, new: str) -> Callable[[str], str]:
    def replace(part: str) -> str:
        return part.replace(old, new)

    return replace


def _outside_ruby(text: str, change: Callable[[str], str]) -> str:
    out, position = [], 0
    for match in RUBY_PATTERN.finditer(text):
        out.append(change(text[position : match.start()]))
        out.append(match.group(0))
        position = match.end()
    out.append(change(text[position:]))
    return "".join(out)


def annotate(text: str, glossary: Sequence[GlossaryEntry], reader: Reader | None) -> str:
    """Ruby for every kanji run in `text` that has none yet."""
    text = _apply_glossary(text, glossary)
    if reader is None:
        return text

    def annotate_plain(part: str) -> str:
        if not KANJI.search(part):
            return part
        return "".join(_ruby_for_token(surface, reading) for surface, reading in reader(part))

    return _outside_ruby(text, annotate_plain)


@dataclass(frozen=True)
class Proposal:
    text: str
    changed_lines: int


def propose(source: str, glossary: Sequence[GlossaryEntry], reader: Reader | None) -> Proposal:
    """The unit file with ruby proposed on its Japanese lines."""
    lines = source.split("\n")
    out: list[str] = []
    changed = 0
    in_front = False
    section: str | None = None
    yaml_lang: tuple[int, str] | None = None
    for number, line in enumerate(lines):
        new = line
        if number == 0 and line.strip() == "---":
            in_front = True
        elif in_front and line.strip() == "---":
            in_front = False
        elif in_front:
            yaml_lang, new = _front_line(line, yaml_lang, glossary, reader)
        else:
            opening = SECTION.match(line)
            if opening:
                section = opening.group(1)
            elif line.strip() == ":::":
                section = None
            elif section in ("ja", "ja-easy"):
                new = annotate(line, glossary, reader)
        changed += new != line
        out.append(new)
    return Proposal("\n".join(out), changed)


def _front_line(
    line: str,
    yaml_lang: tuple[int, str] | None,
    glossary: Sequence[GlossaryEntry],
    reader: Reader | None,
) -> tuple[tuple[int, str] | None, str]:
    indent = len(line) - len(line.lstrip())
    lang = LANG_KEY.match(line)
    if lang:
        yaml_lang = (len(lang.group(1)), lang.group(2))
        key_end = line.index(":") + 1
        if lang.group(2) != "en":
            return yaml_lang, line[:key_end] + _yaml_value(line[key_end:], glossary, reader)
        return yaml_lang, line
    if yaml_lang is not None and line.strip() and indent <= yaml_lang[0] and KEY_LINE.match(line):
        yaml_lang = None
    if yaml_lang is not None and yaml_lang[1] != "en" and indent > yaml_lang[0]:
        item = re.match(r"^(\s*-\s+)(.*)$", line)
        if item:
            return yaml_lang, item.group(1) + _yaml_value(item.group(2), glossary, reader).lstrip()
        return yaml_lang, annotate(line, glossary, reader)
    return yaml_lang, line


def _yaml_value(raw: str, glossary: Sequence[GlossaryEntry], reader: Reader | None) -> str:
    """Annotate a YAML scalar, quoting it when ruby braces would otherwise read as YAML."""
    value = raw.strip()
    if not value or value in ("|", ">", "|-", ">-"):
        return raw
    if value[0] in "\"'":
        return raw[: len(raw) - len(raw.lstrip())] + annotate(value, glossary, reader)
    annotated = annotate(value, glossary, reader)
    if annotated == value:
        return raw
    escaped = annotated.replace("\\", "\\\\").replace('"', '\\"')
    return f' "{escaped}"'


def missing_ruby(text: str) -> Iterable[str]:
    """Kanji in `text` that carry no ruby (for the content lint)."""
    for part in RUBY_PATTERN.split(text)[::3]:
        yield from KANJI.findall(part)
