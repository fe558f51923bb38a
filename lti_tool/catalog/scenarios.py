"""Case scenarios for group discussion: scenarios/<id>.yaml, validated with file and line.

id: s01-unpaid-overtime          (the file's name)
title: {ja, en}
areas: [B, D, E]                 (the competency areas it exercises)
situation: {ja, en}              (Markdown)
client_words: {ja, en}           (the client's own words)
prompts: [{ja, en}, ...]         (3 to 5 discussion prompts)
good_practice: [{ja, en}, ...]   (for instructors)
sources: [S0, ...]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markupsafe import Markup

from lti_tool.catalog.markdown import render_markdown
from lti_tool.catalog.model import Source, Text
from lti_tool.catalog.yamlsource import LineDict, LineList

SCENARIO_ID = re.compile(r"^s[0-9]{2}(-[a-z0-9]+)+$")
SCENARIO_KEYS = {
    "id",
    "title",
    "areas",
    "situation",
    "client_words",
    "prompts",
    "good_practice",
    "sources",
}


@dataclass(frozen=True)
class Scenario:
    id: str
    title: Text
    areas: tuple[str, ...]
    situation: Text
    situation_html: dict[str, Markup]
    client_words: Text
    prompts: tuple[Text, ...]
    good_practice: tuple[Text, ...]
    sources: tuple[Source, ...]
    path: str

    def situation_for(self, locale: str) -> Markup:
        return self.situation_html["ja" if locale == "ja" else "en"]


def load_scenario(file: Any, data: Any, path: Path, sources: dict[str, Source]) -> Scenario | None:
    if not isinstance(data, LineDict):
        file.problem(1, "expected a scenario (id, title, areas, situation, ...)")
        return None
    file.check_keys(data, SCENARIO_KEYS, "scenario")
    scenario_id = data.get("id")
    if not isinstance(scenario_id, str) or not SCENARIO_ID.match(scenario_id):
        file.problem(data.line_of("id"), "id: like 's01-unpaid-overtime'")
        return None
    if scenario_id != path.stem:
        file.problem(data.line_of("id"), f"id {scenario_id!r} differs from the file name")
    where = f"scenario {scenario_id}"
    areas = data.get("areas")
    if (
        not isinstance(areas, LineList)
        or not areas
        or not all(a in ("A", "B", "C", "D", "E") for a in areas)
    ):
        file.problem(data.line_of("areas"), f"{where}: areas must list letters A–E")
        areas = LineList()
    title = file.text(data, "title")
    situation = file.text(data, "situation")
    words = file.text(data, "client_words")
    prompts = file.texts(data, "prompts", where, 3, 5)
    practice = file.texts(data, "good_practice", where, 1, 10)
    cited = file.cited(data, sources, where)
    if not (title and situation and words and prompts and practice and cited and areas):
        return None
    return Scenario(
        id=scenario_id,
        title=title,
        areas=tuple(areas),
        situation=situation,
        situation_html={"ja": render_markdown(situation.ja), "en": render_markdown(situation.en)},
        client_words=words,
        prompts=tuple(prompts),
        good_practice=tuple(practice),
        sources=cited,
        path=str(path),
    )
