"""The immutable Catalog: modules, units, sources and glossary, loaded once at start-up.

The database refers to content only by these stable ids (module "A", unit "a01-…").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from lti_tool.catalog.ruby import render_inline, strip_ruby

LANGUAGES = ("ja", "en")
EASY = "ja-easy"


@dataclass(frozen=True)
class Text:
    """A text in Japanese and English, with an optional easy-Japanese version."""

    ja: str
    en: str
    ja_easy: str | None = None

    def get(self, locale: str, easy: bool = False) -> str:
        if locale == "ja":
            return self.ja_easy if easy and self.ja_easy else self.ja
        return self.en

    def html(self, locale: str, easy: bool = False) -> Markup:
        return render_inline(self.get(locale, easy))

    def plain(self, locale: str, easy: bool = False) -> str:
        return strip_ruby(self.get(locale, easy))


@dataclass(frozen=True)
class TextList:
    ja: tuple[str, ...]
    en: tuple[str, ...]
    ja_easy: tuple[str, ...] | None = None

    def get(self, locale: str, easy: bool = False) -> tuple[str, ...]:
        if locale == "ja":
            return self.ja_easy if easy and self.ja_easy else self.ja
        return self.en

    def html(self, locale: str, easy: bool = False) -> tuple[Markup, ...]:
        return tuple(render_inline(item) for item in self.get(locale, easy))


@dataclass(frozen=True)
class Source:
    id: str
    title: Text
    publisher: Text
    url: str | None
    date: str | None


@dataclass(frozen=True)
class SelfCheckQuestion:
    id: str
    prompt: Text
    options: tuple[Text, ...]
    answer: int
    explanation: Text


@dataclass(frozen=True)
class Unit:
    id: str
    module_id: str
    number: int
    title: Text
    minutes: int
    video_url: str | None
    objectives: TextList
    key_points: TextList
    self_check: tuple[SelfCheckQuestion, ...]
    sources: tuple[Source, ...]
    path: str
    # Rendered, sanitised HTML of the body per language: "ja", "en", and "ja-easy" if given.
    bodies: Mapping[str, Markup] = field(repr=False)
    # The Markdown as written, per language (for the content lint).
    sources_text: Mapping[str, str] = field(repr=False, default_factory=dict)
    # Glossary terms used in the Japanese body, and their anchors (#term-N) there.
    terms: tuple[GlossaryEntry, ...] = ()
    term_indices: tuple[int, ...] = ()

    @property
    def linked_terms(self) -> tuple[tuple[int, GlossaryEntry], ...]:
        return tuple(zip(self.term_indices, self.terms, strict=True))

    @property
    def has_easy(self) -> bool:
        return EASY in self.bodies

    def body(self, locale: str, easy: bool = False) -> Markup:
        if locale == "ja" and easy and self.has_easy:
            return self.bodies[EASY]
        return self.bodies["ja" if locale == "ja" else "en"]


@dataclass(frozen=True)
class Module:
    id: str
    order: int
    title: Text
    description: Text
    objectives: TextList
    units: tuple[Unit, ...]
    path: str

    def unit_index(self, unit_id: str) -> int:
        return next(i for i, unit in enumerate(self.units) if unit.id == unit_id)


@dataclass(frozen=True)
class GlossaryEntry:
    term: str
    reading: str
    en: str
    definition: Text | None


@dataclass(frozen=True)
class Catalog:
    modules: tuple[Module, ...]
    units: Mapping[str, Unit]
    sources: Mapping[str, Source]
    glossary: tuple[GlossaryEntry, ...]
    # The completion test's question bank by id (catalog.quizbank.Question).
    questions: Mapping[str, Any] = field(default_factory=dict)
    # Case scenarios by id (catalog.scenarios.Scenario).
    scenarios: Mapping[str, Any] = field(default_factory=dict)

    def module(self, module_id: str) -> Module | None:
        return next((m for m in self.modules if m.id == module_id), None)

    def unit(self, unit_id: str) -> Unit | None:
        return self.units.get(unit_id)
