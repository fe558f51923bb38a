"""Load and validate content/: every problem is reported with its file and line.

Layout:
    content/sources.yaml                 the sources units cite (id, title, publisher, url, date)
    content/glossary.yaml                fixed readings of domain terms
    content/modules/<A..E>/module.yaml   id, order, title, description, objectives, units (in order)
    content/modules/<A..E>/<unit-id>.md  YAML front matter, then `::: ja`, `::: ja-easy`, `::: en`
                                         sections of Markdown, each closed by `:::`
    content/quiz/*.yaml                  the completion test's question bank (catalog.quizbank)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from markupsafe import Markup

from lti_tool.catalog.markdown import render_markdown
from lti_tool.catalog.model import (
    EASY,
    Catalog,
    GlossaryEntry,
    Module,
    SelfCheckQuestion,
    Source,
    Text,
    TextList,
    Unit,
)
from lti_tool.catalog.quizbank import Question, load_questions
from lti_tool.catalog.ruby import check_ruby, strip_ruby
from lti_tool.catalog.scenarios import load_scenario
from lti_tool.catalog.yamlsource import LineDict, LineList, YamlProblem, load_yaml

MODULE_IDS = ("A", "B", "C", "D", "E")
UNIT_ID = re.compile(r"^[a-e][0-9]{2}(-[a-z0-9]+)*$")
SECTION_OPEN = re.compile(r"^:::\s*(ja|ja-easy|en)\s*$")
LINK = re.compile(r"\]\(([^)\s]+)")
MAX_FILE_BYTES = 512 * 1024


@dataclass(frozen=True)
class ContentProblem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class ContentInvalid(Exception):
    def __init__(self, problems: list[ContentProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class _Reporter:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[ContentProblem] = []

    def add(self, path: Path, line: int, message: str) -> None:
        try:
            shown = str(path.relative_to(self.root.parent))
        except ValueError:
            shown = str(path)
        self.problems.append(ContentProblem(shown, line, message))


class _File:
    """One file being read: reports problems against its path."""

    def __init__(self, reporter: _Reporter, path: Path, line_offset: int = 0) -> None:
        self.reporter = reporter
        self.path = path
        self.offset = line_offset

    def problem(self, line: int, message: str) -> None:
        self.reporter.add(self.path, line + self.offset, message)

    def ruby(self, text: str, line: int) -> None:
        for problem in check_ruby(text):
            self.problem(line, problem.message)

    def text(self, data: LineDict, key: str, *, required_languages: bool = True) -> Text | None:
        value = data.get(key)
        line = data.line_of(key)
        if not isinstance(value, LineDict):
            self.problem(line, f"{key}: expected ja and en texts")
            return None
        known = {"ja", "en", EASY}
        for extra in set(value) - known:
            self.problem(value.line_of(extra), f"{key}: unknown language {extra!r}")
        texts: dict[str, str] = {}
        for language in ("ja", "en", EASY):
            item = value.get(language)
            if item is None:
                if language != EASY and required_languages:
                    self.problem(line, f"{key}: missing {language}")
                continue
            if not isinstance(item, str) or not item.strip():
                self.problem(
                    value.line_of(language), f"{key}.{language}: expected a non-empty text"
                )
                continue
            if language != "en":
                self.ruby(item, value.line_of(language))
            texts[language] = item.strip()
        if "ja" not in texts or "en" not in texts:
            return None
        return Text(ja=texts["ja"], en=texts["en"], ja_easy=texts.get(EASY))

    def text_list(self, data: LineDict, key: str) -> TextList | None:
        value = data.get(key)
        line = data.line_of(key)
        if not isinstance(value, LineDict):
            self.problem(line, f"{key}: expected lists under ja and en")
            return None
        lists: dict[str, tuple[str, ...]] = {}
        for language in ("ja", "en", EASY):
            items = value.get(language)
            if items is None:
                if language != EASY:
                    self.problem(line, f"{key}: missing {language}")
                continue
            if not isinstance(items, LineList) or not items:
                self.problem(
                    value.line_of(language), f"{key}.{language}: expected a non-empty list"
                )
                continue
            lists[language] = self._strings(items, f"{key}.{language}", ruby=language != "en")
        if "ja" not in lists or "en" not in lists:
            return None
        if len(lists["ja"]) != len(lists["en"]):
            self.problem(line, f"{key}: ja has {len(lists['ja'])} items, en has {len(lists['en'])}")
        return TextList(ja=lists["ja"], en=lists["en"], ja_easy=lists.get(EASY))

    def _strings(self, items: LineList, where: str, *, ruby: bool) -> tuple[str, ...]:
        good = []
        for index, item in enumerate(items):
            if not isinstance(item, str) or not item.strip():
                self.problem(items.line_of(index), f"{where}: expected text items")
                continue
            if ruby:
                self.ruby(item, items.line_of(index))
            good.append(item.strip())
        return tuple(good)

    def texts(self, data: LineDict, key: str, where: str, low: int, high: int) -> list[Text]:
        """A list of {ja, en} texts (options, prompts), with `low` to `high` items."""
        raw = data.get(key)
        if not isinstance(raw, LineList) or not low <= len(raw) <= high:
            self.problem(data.line_of(key), f"{where}: {key} needs {low} to {high} items")
            return []
        texts = []
        for index, item in enumerate(raw):
            wrapper = LineDict()
            wrapper[key] = item
            wrapper.lines[key] = raw.line_of(index)
            text = self.text(wrapper, key)
            if text is None:
                return []
            texts.append(text)
        return texts

    def whole_number(self, data: LineDict, key: str, low: int, high: int, *, default: int) -> int:
        value = data.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            self.problem(data.line_of(key), f"{key}: a whole number from {low} to {high}")
            return default
        return value

    def https_url(self, data: LineDict, key: str) -> str | None:
        value = data.get(key)
        if value is not None and (not isinstance(value, str) or not value.startswith("https://")):
            self.problem(data.line_of(key), f"{key}: an https:// URL or nothing")
            return None
        return value

    def cited(self, data: LineDict, sources: dict[str, Source], where: str) -> tuple[Source, ...]:
        """The sources a unit, question or scenario cites (at least one, all known)."""
        source_ids = data.get("sources")
        if not isinstance(source_ids, LineList) or not source_ids:
            self.problem(data.line_of("sources"), f"{where}: cite at least one source")
            return ()
        cited = []
        for index, source_id in enumerate(source_ids):
            if source_id in sources:
                cited.append(sources[source_id])
            else:
                self.problem(source_ids.line_of(index), f"{where}: unknown source {source_id!r}")
        return tuple(cited)

    def check_keys(self, data: LineDict, allowed: set[str], where: str) -> None:
        for key in set(data) - allowed:
            self.problem(data.line_of(key), f"{where}: unknown key {key!r}")


def _read(reporter: _Reporter, path: Path) -> str | None:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            reporter.add(path, 1, f"file larger than {MAX_FILE_BYTES // 1024} KiB")
            return None
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        reporter.add(path, 1, "not UTF-8 text")
    except OSError as exc:
        reporter.add(path, 1, f"cannot read: {exc.strerror}")
    return None


def _yaml_file(reporter: _Reporter, path: Path) -> Any:
    text = _read(reporter, path)
    if text is None:
        return None
    try:
        return load_yaml(text)
    except YamlProblem as exc:
        reporter.add(path, exc.line, exc.message)
        return None


def _load_sources(reporter: _Reporter, root: Path) -> dict[str, Source]:
    path = root / "sources.yaml"
    data = _yaml_file(reporter, path)
    sources: dict[str, Source] = {}
    if data is None:
        if not path.exists():
            reporter.add(path, 1, "missing: every unit cites sources listed here")
        return sources
    file = _File(reporter, path)
    if not isinstance(data, LineList):
        file.problem(1, "expected a list of sources")
        return sources
    for index, entry in enumerate(data):
        line = data.line_of(index)
        if not isinstance(entry, LineDict):
            file.problem(line, "expected a source with id, title, publisher")
            continue
        file.check_keys(entry, {"id", "title", "publisher", "url", "date", "note"}, "source")
        source_id = entry.get("id")
        if not isinstance(source_id, str) or not source_id:
            file.problem(line, "source without id")
            continue
        if source_id in sources:
            file.problem(line, f"duplicate source id {source_id!r}")
            continue
        title = file.text(entry, "title")
        publisher = file.text(entry, "publisher")
        url = entry.get("url")
        if url is not None and (not isinstance(url, str) or not url.startswith("https://")):
            file.problem(entry.line_of("url"), f"source {source_id}: url must be https://")
            url = None
        date = entry.get("date")
        if title and publisher:
            sources[source_id] = Source(
                id=source_id,
                title=title,
                publisher=publisher,
                url=url,
                date=str(date) if date is not None else None,
            )
    return sources


def _load_glossary(reporter: _Reporter, root: Path) -> tuple[GlossaryEntry, ...]:
    path = root / "glossary.yaml"
    if not path.exists():
        return ()
    data = _yaml_file(reporter, path)
    file = _File(reporter, path)
    if data is None:
        return ()
    if not isinstance(data, LineList):
        file.problem(1, "expected a list of terms")
        return ()
    entries: list[GlossaryEntry] = []
    seen: set[str] = set()
    for index, entry in enumerate(data):
        line = data.line_of(index)
        if not isinstance(entry, LineDict):
            file.problem(line, "expected a term with term, reading, en")
            continue
        file.check_keys(entry, {"term", "reading", "en", "definition"}, "glossary")
        term, reading, english = entry.get("term"), entry.get("reading"), entry.get("en")
        if not all(isinstance(v, str) and v for v in (term, reading, english)):
            file.problem(line, "glossary entry needs term, reading and en")
            continue
        assert isinstance(term, str) and isinstance(reading, str) and isinstance(english, str)
        if term in seen:
            file.problem(line, f"duplicate glossary term {term!r}")
            continue
        seen.add(term)
        definition = file.text(entry, "definition") if "definition" in entry else None
        entries.append(GlossaryEntry(term=term, reading=reading, en=english, definition=definition))
    return tuple(entries)


def _split_unit(file: _File, text: str) -> tuple[str, int, dict[str, tuple[str, int]]] | None:
    """Front matter (text, first line) and the body sections (text, first line) by language."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        file.problem(1, "a unit starts with '---' and YAML front matter")
        return None
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        file.problem(1, "front matter is not closed with '---'")
        return None
    return "\n".join(lines[1:end]), 2, _sections(file, lines, end + 1)


def _sections(file: _File, lines: list[str], first: int) -> dict[str, tuple[str, int]]:
    """The `::: ja` … `:::` sections after the front matter: text and first line, by language."""
    sections: dict[str, tuple[str, int]] = {}
    current: str | None = None
    start = 0
    buffer: list[str] = []
    for number in range(first, len(lines)):
        line = lines[number]
        opening = SECTION_OPEN.match(line)
        if current is None:
            if opening:
                current, start, buffer = opening.group(1), number + 1, []
                if current in sections:
                    file.problem(number + 1, f"section {current!r} appears twice")
            elif line.strip():
                file.problem(number + 1, "text outside a '::: ja' / '::: en' section")
        elif line.strip() == ":::":
            sections[current] = ("\n".join(buffer), start + 1)
            current = None
        elif opening:
            file.problem(number + 1, f"section {current!r} is not closed before a new one")
            current, start, buffer = opening.group(1), number + 1, []
        else:
            buffer.append(line)
    if current is not None:
        file.problem(start, f"section {current!r} is not closed with ':::'")
    return sections


def _link_terms(body: str, glossary: tuple[GlossaryEntry, ...]) -> tuple[str, list[int]]:
    """Link the first use of each glossary term to the unit's term list (#term-N), with its
    definition as the link's title: a hover or tap shows it, a click jumps to the list."""
    used: list[int] = []
    for index in sorted(range(len(glossary)), key=lambda i: -len(glossary[i].term)):
        entry = glossary[index]
        if entry.definition is None:
            continue  # a fixed reading only (for furigana proposals), not a term to explain
        ruby = re.compile(r"\{" + re.escape(entry.term) + r"\|[^{}\n]+\}")
        match = ruby.search(body)
        if match is None:
            plain = body.find(entry.term)
            if plain < 0 or _inside_markup(body, plain):
                continue
            span = (plain, plain + len(entry.term))
        elif _inside_markup(body, match.start()):
            continue
        else:
            span = match.span()
        title = strip_ruby(entry.definition.ja).replace('"', "'")
        original = body[span[0] : span[1]]
        body = f'{body[: span[0]]}[{original}](#term-{index} "{title}"){body[span[1] :]}'
        used.append(index)
    return body, sorted(used)


def _inside_markup(body: str, position: int) -> bool:
    """True inside a link's text or target, or inside another ruby group."""
    before = body[:position]
    return (
        before.count("[") > before.count("]")
        or before.count("(#term-") > before.count('")')
        or before.count("{") > before.count("}")
    )


def _check_links(file: _File, body: str, first_line: int) -> None:
    for offset, line in enumerate(body.split("\n")):
        for match in LINK.finditer(line):
            target = match.group(1)
            if not target.startswith(("https://", "http://", "mailto:", "tel:", "#")):
                file.problem(first_line + offset, f"link {target!r}: use an absolute https:// URL")


def _self_check_question(
    file: _File, item: Any, line: int, unit_id: str
) -> SelfCheckQuestion | None:
    if not isinstance(item, LineDict):
        file.problem(line, "self_check: expected a question")
        return None
    file.check_keys(item, {"id", "prompt", "options", "answer", "explanation"}, "self_check")
    question_id = item.get("id")
    if not isinstance(question_id, str) or not question_id.startswith(unit_id):
        file.problem(line, f"self_check: id must start with the unit id {unit_id!r}")
        return None
    prompt = file.text(item, "prompt")
    explanation = file.text(item, "explanation")
    options = file.texts(item, "options", "self_check", 2, 8)
    answer = item.get("answer")
    if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < len(options):
        file.problem(item.line_of("answer"), "self_check: answer must be an option's index")
        return None
    if prompt is None or explanation is None:
        return None
    return SelfCheckQuestion(
        id=question_id,
        prompt=prompt,
        options=tuple(options),
        answer=answer,
        explanation=explanation,
    )


def _self_check(file: _File, data: LineDict, unit_id: str) -> tuple[SelfCheckQuestion, ...]:
    items = data.get("self_check")
    if not isinstance(items, LineList) or not items:
        file.problem(data.line_of("self_check"), "self_check: expected a list of questions")
        return ()
    questions = [
        _self_check_question(file, item, items.line_of(index), unit_id)
        for index, item in enumerate(items)
    ]
    return tuple(q for q in questions if q is not None)


UNIT_KEYS = {"id", "title", "minutes", "video", "objectives", "key_points", "self_check", "sources"}


def _front_matter(
    reporter: _Reporter, path: Path
) -> tuple[LineDict, _File, _File, dict[str, tuple[str, int]]] | None:
    """A unit file's front matter (with a reporter whose lines are the file's) and sections."""
    text = _read(reporter, path)
    if text is None:
        return None
    file = _File(reporter, path)
    split = _split_unit(file, text)
    if split is None:
        return None
    front, front_line, sections = split
    try:
        data = load_yaml(front, line_offset=front_line - 1)
    except YamlProblem as exc:
        file.problem(exc.line, exc.message)
        return None
    if not isinstance(data, LineDict):
        file.problem(front_line, "front matter: expected keys id, title, ...")
        return None
    return data, file, _File(reporter, path, line_offset=front_line - 1), sections


def _unit_id(file: _File, data: LineDict, module_id: str, path: Path) -> str | None:
    unit_id = data.get("id")
    if not isinstance(unit_id, str) or not UNIT_ID.match(unit_id):
        file.problem(
            data.line_of("id"), "id: like 'a01-why-coordinators' (module letter, two digits)"
        )
        return None
    if unit_id[0].upper() != module_id:
        file.problem(data.line_of("id"), f"id {unit_id!r} is not in module {module_id}")
    if path.stem != unit_id:
        file.problem(data.line_of("id"), f"id {unit_id!r} differs from the file name")
    return unit_id


@dataclass
class _Bodies:
    html: dict[str, Markup]
    raw: dict[str, str]
    terms: set[int]


def _bodies(
    file: _File, sections: dict[str, tuple[str, int]], glossary: tuple[GlossaryEntry, ...]
) -> _Bodies:
    bodies = _Bodies({}, {}, set())
    for language in ("ja", "en"):
        if language not in sections:
            file.problem(1, f"body: missing '::: {language}' section")
    for language, (body, first_line) in sections.items():
        if not body.strip():
            file.problem(first_line, f"body {language}: empty")
            continue
        if language != "en":
            for offset, line in enumerate(body.split("\n")):
                file.ruby(line, first_line + offset)
        _check_links(file, body, first_line)
        bodies.raw[language] = body
        if language != "en" and glossary:
            body, used = _link_terms(body, glossary)
            bodies.terms.update(used)
        bodies.html[language] = render_markdown(body)
    return bodies


def _load_unit(
    reporter: _Reporter,
    path: Path,
    module_id: str,
    number: int,
    sources: dict[str, Source],
    glossary: tuple[GlossaryEntry, ...] = (),
) -> Unit | None:
    parsed = _front_matter(reporter, path)
    if parsed is None:
        return None
    data, file, front_file, sections = parsed
    front_file.check_keys(data, UNIT_KEYS, "unit")
    unit_id = _unit_id(front_file, data, module_id, path)
    if unit_id is None:
        return None
    title = front_file.text(data, "title")
    objectives = front_file.text_list(data, "objectives")
    key_points = front_file.text_list(data, "key_points")
    self_check = _self_check(front_file, data, unit_id)
    minutes = front_file.whole_number(data, "minutes", 1, 240, default=20)
    video = front_file.https_url(data, "video")
    cited = front_file.cited(data, sources, "sources")
    bodies = _bodies(file, sections, glossary)
    if not (title and objectives and key_points and self_check and cited):
        return None
    if not {"ja", "en"} <= set(bodies.html):
        return None
    terms = sorted(bodies.terms)
    return Unit(
        id=unit_id,
        module_id=module_id,
        number=number,
        title=title,
        minutes=minutes,
        video_url=video,
        objectives=objectives,
        key_points=key_points,
        self_check=self_check,
        sources=cited,
        path=str(path),
        bodies=MappingProxyType(bodies.html),
        sources_text=MappingProxyType(bodies.raw),
        terms=tuple(glossary[i] for i in terms),
        term_indices=tuple(terms),
    )


MODULE_KEYS = {"id", "order", "title", "description", "objectives", "units"}


@dataclass
class _ModuleContext:
    reporter: _Reporter
    directory: Path
    sources: dict[str, Source]
    seen_units: set[str]
    glossary: tuple[GlossaryEntry, ...]


def _module_units(ctx: _ModuleContext, file: _File, data: LineDict, module_id: str) -> list[Unit]:
    """The module's units in its order; unlisted and missing files are reported."""
    unit_ids = data.get("units")
    if not isinstance(unit_ids, LineList) or not unit_ids:
        file.problem(data.line_of("units"), "units: the ordered list of unit ids")
        unit_ids = LineList()
    units: list[Unit] = []
    listed: set[str] = set()
    for index, unit_id in enumerate(unit_ids):
        line = unit_ids.line_of(index)
        if not isinstance(unit_id, str):
            file.problem(line, "units: expected unit ids")
            continue
        if unit_id in ctx.seen_units or unit_id in listed:
            file.problem(line, f"unit {unit_id!r} is listed twice")
            continue
        listed.add(unit_id)
        unit_path = ctx.directory / f"{unit_id}.md"
        if not unit_path.exists():
            file.problem(line, f"unit {unit_id!r} has no file {unit_path.name}")
            continue
        unit = _load_unit(
            ctx.reporter, unit_path, module_id, len(units) + 1, ctx.sources, ctx.glossary
        )
        if unit is not None:
            units.append(unit)
    for orphan in sorted(ctx.directory.glob("*.md")):
        if orphan.stem not in listed:
            ctx.reporter.add(orphan, 1, "unit file not listed in module.yaml")
    ctx.seen_units.update(listed)
    return units


def _load_module(ctx: _ModuleContext) -> Module | None:
    path = ctx.directory / "module.yaml"
    if not path.exists():
        ctx.reporter.add(path, 1, "missing module.yaml")
        return None
    data = _yaml_file(ctx.reporter, path)
    if data is None:
        return None
    file = _File(ctx.reporter, path)
    if not isinstance(data, LineDict):
        file.problem(1, "expected keys id, order, title, description, objectives, units")
        return None
    file.check_keys(data, MODULE_KEYS, "module")
    module_id = data.get("id")
    if module_id != ctx.directory.name:
        file.problem(data.line_of("id"), f"id must be {ctx.directory.name!r} (the folder's name)")
        return None
    order = file.whole_number(data, "order", 0, 99, default=0)
    title = file.text(data, "title")
    description = file.text(data, "description")
    objectives = file.text_list(data, "objectives")
    units = _module_units(ctx, file, data, str(module_id))
    if not (title and description and objectives):
        return None
    return Module(
        id=str(module_id),
        order=order,
        title=title,
        description=description,
        objectives=objectives,
        units=tuple(units),
        path=str(path),
    )


def _load_bank(reporter: _Reporter, root: Path, sources: dict[str, Source]) -> dict[str, Question]:
    folder = root / "quiz"
    if not folder.is_dir():
        return {}
    questions: dict[str, Question] = {}
    seen: set[str] = set()
    for path in sorted(folder.glob("*.yaml")):
        data = _yaml_file(reporter, path)
        if data is None:
            continue
        for question in load_questions(_File(reporter, path), data, path, sources, seen):
            questions[question.id] = question
    return questions


def _load_scenarios(
    reporter: _Reporter, folder: Path, sources: dict[str, Source]
) -> dict[str, Any]:
    scenarios: dict[str, Any] = {}
    if not folder.is_dir():
        return scenarios
    for path in sorted(folder.glob("*.yaml")):
        data = _yaml_file(reporter, path)
        if data is None:
            continue
        scenario = load_scenario(_File(reporter, path), data, path, sources)
        if scenario is None:
            continue
        if scenario.id in scenarios:
            reporter.add(path, 1, f"duplicate scenario id {scenario.id!r}")
            continue
        scenarios[scenario.id] = scenario
    return scenarios


def load_glossary(root: Path) -> tuple[GlossaryEntry, ...]:
    """Only the glossary (for authoring tools), or ContentInvalid naming its problems."""
    reporter = _Reporter(root)
    entries = _load_glossary(reporter, root)
    if reporter.problems:
        raise ContentInvalid(reporter.problems)
    return entries


def load_catalog(root: Path, scenarios_root: Path | None = None) -> Catalog:
    """The whole catalog, or ContentInvalid listing every problem found. Scenarios live in
    `scenarios/` beside the content folder unless `scenarios_root` says otherwise."""
    reporter = _Reporter(root)
    if not root.is_dir():
        raise ContentInvalid([ContentProblem(str(root), 1, "content folder not found")])
    sources = _load_sources(reporter, root)
    glossary = _load_glossary(reporter, root)
    questions = _load_bank(reporter, root, sources)
    scenarios = _load_scenarios(reporter, scenarios_root or root.parent / "scenarios", sources)
    modules: list[Module] = []
    seen_units: set[str] = set()
    modules_dir = root / "modules"
    for module_id in MODULE_IDS:
        directory = modules_dir / module_id
        if not directory.is_dir():
            reporter.add(directory, 1, f"module {module_id} is missing")
            continue
        module = _load_module(_ModuleContext(reporter, directory, sources, seen_units, glossary))
        if module is not None:
            modules.append(module)
    if modules_dir.is_dir():
        for extra in sorted(p for p in modules_dir.iterdir() if p.is_dir()):
            if extra.name not in MODULE_IDS:
                reporter.add(extra, 1, f"unknown module folder {extra.name!r} (A to E)")
    if reporter.problems:
        raise ContentInvalid(reporter.problems)
    modules.sort(key=lambda m: (m.order, m.id))
    units = {unit.id: unit for module in modules for unit in module.units}
    return Catalog(
        modules=tuple(modules),
        units=MappingProxyType(units),
        sources=MappingProxyType(sources),
        glossary=glossary,
        questions=MappingProxyType(questions),
        scenarios=MappingProxyType(scenarios),
    )
