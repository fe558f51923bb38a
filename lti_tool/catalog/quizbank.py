"""The completion test's question bank: content/quiz/*.yaml, validated with file and line.

Each question: id, area (A–E), difficulty (1 easy – 3 hard), type, text (ja/en), the parts its
type needs, explanation (ja/en) and sources. Types:
    single      options + answer (the right option's index)
    multiple    options + answer (list of indices); partial credit, see quiz.scoring
    truefalse   answer (true or false)
    matching    pairs of left/right texts (shown with the right side shuffled)
    short       accepted answers (compared after Japanese normalisation)
A question's `version` is a hash of its content: attempts keep the version they drew.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

from lti_tool.catalog.model import Source, Text
from lti_tool.catalog.yamlsource import LineDict, LineList

QUESTION_TYPES = ("single", "multiple", "truefalse", "matching", "short")
AREAS = ("A", "B", "C", "D", "E")
QUESTION_KEYS = {
    "id",
    "area",
    "difficulty",
    "type",
    "text",
    "options",
    "answer",
    "pairs",
    "accepted",
    "explanation",
    "sources",
}


@dataclass(frozen=True)
class Pair:
    left: Text
    right: Text


@dataclass(frozen=True)
class Question:
    id: str
    area: str
    difficulty: int
    type: str
    text: Text
    options: tuple[Text, ...]
    # single: int; multiple: tuple of ints; truefalse: bool; matching/short: None
    answer: Any
    pairs: tuple[Pair, ...]
    accepted: tuple[str, ...]
    explanation: Text
    sources: tuple[Source, ...]
    version: str
    path: str
    line: int


def _text_dict(text: Text) -> dict[str, str | None]:
    return {"ja": text.ja, "en": text.en, "ja_easy": text.ja_easy}


def question_snapshot(question: Question) -> dict[str, Any]:
    """What an attempt stores of a question: enough to show and score it as it was drawn."""
    return {
        "id": question.id,
        "area": question.area,
        "difficulty": question.difficulty,
        "type": question.type,
        "text": _text_dict(question.text),
        "options": [_text_dict(option) for option in question.options],
        "answer": list(question.answer) if isinstance(question.answer, tuple) else question.answer,
        "pairs": [
            {"left": _text_dict(p.left), "right": _text_dict(p.right)} for p in question.pairs
        ],
        "accepted": list(question.accepted),
        "explanation": _text_dict(question.explanation),
        "sources": [source.id for source in question.sources],
    }


def _version(question: Question) -> str:
    snapshot = question_snapshot(question)
    digest = hashlib.sha256(json.dumps(snapshot, sort_keys=True, ensure_ascii=False).encode())
    return digest.hexdigest()[:12]


def load_questions(
    file: Any, data: Any, path: Path, sources: dict[str, Source], seen: set[str]
) -> list[Question]:
    """Questions from one bank file; `file` is the loader's _File (reports problems)."""
    if not isinstance(data, LineList):
        file.problem(1, "expected a list of questions")
        return []
    questions = []
    for index, entry in enumerate(data):
        line = data.line_of(index)
        if not isinstance(entry, LineDict):
            file.problem(line, "expected a question")
            continue
        question = _question(file, entry, line, path, sources)
        if question is None:
            continue
        if question.id in seen:
            file.problem(line, f"duplicate question id {question.id!r}")
            continue
        seen.add(question.id)
        questions.append(question)
    return questions


@dataclass(frozen=True)
class _Parts:
    """What a question's type adds: options and key, pairs, or accepted answers."""

    options: tuple[Text, ...] = ()
    answer: Any = None
    pairs: tuple[Pair, ...] = ()
    accepted: tuple[str, ...] = ()


def _type_parts(file: Any, entry: LineDict, where: str, kind: str) -> _Parts | None:
    if kind in ("single", "multiple"):
        options = file.texts(entry, "options", where, 2, 8)
        answer = _choice_answer(file, entry, where, kind, len(options))
        if not options or answer is None:
            return None
        return _Parts(
            options=tuple(options), answer=tuple(answer) if isinstance(answer, list) else answer
        )
    if kind == "truefalse":
        answer = entry.get("answer")
        if not isinstance(answer, bool):
            file.problem(entry.line_of("answer"), f"{where}: answer must be true or false")
            return None
        return _Parts(answer=answer)
    if kind == "matching":
        pairs = _pairs(file, entry, where)
        return _Parts(pairs=tuple(pairs)) if pairs else None
    raw = entry.get("accepted")
    if (
        not isinstance(raw, LineList)
        or not raw
        or not all(isinstance(a, str) and a.strip() for a in raw)
    ):
        file.problem(entry.line_of("accepted"), f"{where}: accepted must list the right answers")
        return None
    return _Parts(accepted=tuple(a.strip() for a in raw))


def _classification(file: Any, entry: LineDict, where: str) -> tuple[str, int, str] | None:
    """Area, difficulty and type, each checked."""
    area, difficulty, kind = entry.get("area"), entry.get("difficulty"), entry.get("type")
    ok = True
    if area not in AREAS:
        file.problem(entry.line_of("area"), f"{where}: area must be one of A–E")
        ok = False
    if difficulty not in (1, 2, 3):
        file.problem(entry.line_of("difficulty"), f"{where}: difficulty must be 1, 2 or 3")
        ok = False
    if kind not in QUESTION_TYPES:
        file.problem(
            entry.line_of("type"), f"{where}: type must be one of {', '.join(QUESTION_TYPES)}"
        )
        ok = False
    return (str(area), cast(int, difficulty), str(kind)) if ok else None


def _question(
    file: Any, entry: LineDict, line: int, path: Path, sources: dict[str, Source]
) -> Question | None:
    file.check_keys(entry, QUESTION_KEYS, "question")
    question_id = entry.get("id")
    if not isinstance(question_id, str) or not question_id or len(question_id) > 60:
        file.problem(line, "question without a valid id")
        return None
    where = f"question {question_id}"
    classification = _classification(file, entry, where)
    text = file.text(entry, "text")
    explanation = file.text(entry, "explanation")
    parts = _type_parts(file, entry, where, classification[2]) if classification else None
    cited = file.cited(entry, sources, where)
    if classification is None or parts is None or text is None or explanation is None or not cited:
        return None
    area, difficulty, kind = classification
    question = Question(
        id=question_id,
        area=area,
        difficulty=difficulty,
        type=kind,
        text=text,
        options=parts.options,
        answer=parts.answer,
        pairs=parts.pairs,
        accepted=parts.accepted,
        explanation=explanation,
        sources=cited,
        version="",
        path=str(path),
        line=line,
    )
    return _with_version(question)


def _choice_answer(file: Any, entry: LineDict, where: str, kind: str, count: int) -> Any:
    answer = entry.get("answer")
    line = entry.line_of("answer")
    if kind == "single":
        if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < count:
            file.problem(line, f"{where}: answer must be the index of an option (0–{count - 1})")
            return None
        return answer
    if (
        not isinstance(answer, LineList)
        or not answer
        or not all(
            isinstance(a, int) and not isinstance(a, bool) and 0 <= a < count for a in answer
        )
        or len(set(answer)) != len(answer)
    ):
        file.problem(line, f"{where}: answer must list option indices (0–{count - 1})")
        return None
    return sorted(answer)


def _pairs(file: Any, entry: LineDict, where: str) -> list[Pair]:
    raw = entry.get("pairs")
    if not isinstance(raw, LineList) or len(raw) < 2:
        file.problem(entry.line_of("pairs"), f"{where}: at least two pairs")
        return []
    pairs = []
    for index, pair in enumerate(raw):
        line = raw.line_of(index)
        if not isinstance(pair, LineDict):
            file.problem(line, f"{where}: a pair has left and right")
            return []
        left = file.text(pair, "left")
        right = file.text(pair, "right")
        if left is None or right is None:
            return []
        pairs.append(Pair(left, right))
    rights = [pair.right.en for pair in pairs]
    if len(set(rights)) != len(rights):
        file.problem(entry.line_of("pairs"), f"{where}: right-hand texts must differ")
        return []
    return pairs


def _with_version(question: Question) -> Question:
    return replace(question, version=_version(question))
