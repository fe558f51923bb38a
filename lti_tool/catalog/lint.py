"""The content lint: what is valid but falls short of the quality bar.

- kanji without furigana in `ja` and `ja-easy` text (trainees may read Japanese as a second
  language);
- easy-Japanese sentences over 40 characters (the easy-Japanese guideline keeps them short);
- units without sources and questions without an explanation (the loader already refuses
  both; counted here so the report states it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from lti_tool.catalog.furigana import missing_ruby
from lti_tool.catalog.model import Catalog, Module, Text, TextList
from lti_tool.catalog.ruby import strip_ruby

EASY_SENTENCE_LIMIT = 40
SENTENCE_END = re.compile(r"(?<=[。！？!?])")
# Markdown syntax around the text (bullets, headings, link targets, emphasis); never `|`, which
# ruby markup uses.
MARKDOWN_NOISE = re.compile(r"^\s*(?:[-*+]|\d+\.|#{1,6}|>)\s+|\[|\]\([^)]*\)|[*_`]")


@dataclass(frozen=True)
class Finding:
    kind: str
    where: str
    detail: str


@dataclass
class LintReport:
    findings: list[Finding] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(1 for f in self.findings if f.kind == kind)

    def summary(self) -> str:
        return (
            f"lint: {self.count('kanji-ja')} kanji without furigana in ja, "
            f"{self.count('kanji-easy')} in ja-easy; {self.count('easy-long')} easy-Japanese "
            f"sentences over {EASY_SENTENCE_LIMIT} characters; {self.count('no-sources')} units "
            f"without sources; {self.count('no-explanation')} questions without explanation"
        )


def _texts(value: Text | TextList | None) -> Iterator[tuple[str, str]]:
    if value is None:
        return
    if isinstance(value, Text):
        yield "ja", value.ja
        if value.ja_easy:
            yield "ja-easy", value.ja_easy
        return
    for item in value.ja:
        yield "ja", item
    for item in value.ja_easy or ():
        yield "ja-easy", item


def _plain_lines(markdown: str) -> Iterator[str]:
    for line in markdown.split("\n"):
        cleaned = MARKDOWN_NOISE.sub("", line).strip()
        if cleaned:
            yield cleaned


def _check(report: LintReport, where: str, language: str, text: str) -> None:
    kind = "kanji-easy" if language == "ja-easy" else "kanji-ja"
    for line in _plain_lines(text):
        missing = "".join(missing_ruby(line))
        if missing:
            report.findings.append(Finding(kind, where, f"{missing} in “{strip_ruby(line)[:40]}”"))
        if language == "ja-easy":
            for sentence in SENTENCE_END.split(strip_ruby(line)):
                sentence = sentence.strip()
                if len(sentence) > EASY_SENTENCE_LIMIT:
                    report.findings.append(
                        Finding("easy-long", where, f"{len(sentence)}: “{sentence[:50]}…”")
                    )


Checked = Text | TextList | None


def _module_texts(module: Module) -> Iterator[tuple[str, Checked]]:
    for value in (module.title, module.description, module.objectives):
        yield module.path, value
    for unit in module.units:
        for value in (unit.title, unit.objectives, unit.key_points):
            yield unit.path, value
        for check in unit.self_check:
            for value in (check.prompt, check.explanation, *check.options):
                yield unit.path, value


def _catalog_texts(catalog: Catalog) -> Iterator[tuple[str, Checked]]:
    """Every text the lint reads, with where it comes from."""
    for module in catalog.modules:
        yield from _module_texts(module)
    for question in catalog.questions.values():
        where = f"{question.path} ({question.id})"
        for value in (question.text, question.explanation, *question.options):
            yield where, value
        for pair in question.pairs:
            yield where, pair.left
            yield where, pair.right
    for scenario in catalog.scenarios.values():
        for value in (
            scenario.title,
            scenario.situation,
            scenario.client_words,
            *scenario.prompts,
            *scenario.good_practice,
        ):
            yield scenario.path, value


def lint(catalog: Catalog) -> LintReport:
    report = LintReport()
    for where, value in _catalog_texts(catalog):
        for language, text in _texts(value):
            _check(report, where, language, text)
    for module in catalog.modules:
        for unit in module.units:
            if not unit.sources:
                report.findings.append(Finding("no-sources", unit.path, unit.id))
            for language in ("ja", "ja-easy"):
                if language in unit.sources_text:
                    _check(report, unit.path, language, unit.sources_text[language])
    for question in catalog.questions.values():
        if not question.explanation.ja or not question.explanation.en:
            report.findings.append(Finding("no-explanation", question.path, question.id))
    return report
